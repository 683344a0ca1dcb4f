package topology_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// BestSetWithout answers as BestSet(free &^ gone, size) also for sizes of
// zero or less, and for gone sets that cover large parts of the node (a
// whole group, half the node).
func TestReviewBestSetWithoutEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		node *topology.Node
	}{
		{"random-17", fixture.Random(11, 17)},
		{"random-33", fixture.Random(12, 33)},
		{"random-64", fixture.Random(13, 64)},
		{"sparse-17", fixture.Sparse(14, 17)},
		{"sparse-48", fixture.Sparse(15, 48)},
		{"sparse-64", fixture.Sparse(16, 64)},
		{"bipartite-18", fixture.Bipartite(18)},
		{"bipartite-64", fixture.Bipartite(64)},
		{"dualdgx1", fixture.DualDGX1("w")},
		{"pcie-40", fixture.PCIe("w", "T4", 40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shape := tc.node.Shape()
			n := len(tc.node.GPUs)
			r := rand.New(rand.NewPCG(uint64(n), 99))
			for trial := range 6 {
				free := tc.node.All()
				for range trial * n / 8 {
					free &^= topology.SetOf(r.IntN(n))
				}
				for g := range 12 {
					var gone topology.GPUSet
					switch g % 3 {
					case 0: // a contiguous block (a board, a group)
						lo := r.IntN(n)
						hi := min(n, lo+4+r.IntN(n/2))
						for i := lo; i < hi; i++ {
							gone |= topology.SetOf(i)
						}
					case 1: // half the node at random
						for i := range n {
							if r.IntN(2) == 0 {
								gone |= topology.SetOf(i)
							}
						}
					default: // one GPU
						gone = topology.SetOf(r.IntN(n))
					}
					for _, size := range []int{-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16} {
						shape.Reset()
						ws, wq, wok := shape.BestSet(free&^gone, size)
						shape.Reset()
						gs, gq, gok := shape.BestSetWithout(free, gone, size)
						msg := fmt.Sprintf("free %#x without %#x, size %d", uint64(free), uint64(gone), size)
						require.Equal(t, wok, gok, msg)
						require.Equal(t, ws, gs, msg)
						require.Equal(t, wq, gq, msg)
						// and with the trace warm
						gs, gq, gok = shape.BestSetWithout(free, gone|topology.SetOf(0), size)
						shape.Reset()
						ws, wq, wok = shape.BestSet(free&^(gone|topology.SetOf(0)), size)
						require.Equal(t, []any{ws, wq, wok}, []any{gs, gq, gok}, msg+" (+GPU 0)")
					}
				}
			}
		})
	}
}
