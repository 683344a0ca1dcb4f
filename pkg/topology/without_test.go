package topology_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// BestSetWithout(free, gone, size) answers what BestSet(free &^ gone, size)
// answers (set, quality and ok), on seeded random masks of every kind of
// test machine up to 64 GPUs, irregular NVLink maps above 16 GPUs included
// (where the search goes greedy), for gone sets of one to four GPUs (some of
// them outside free) and sizes from 1 to the free count. The plain answers
// are searched with the memo cleared, so neither side reads the other's.
func TestBestSetWithoutMatchesBestSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		node *topology.Node
	}{
		{"dgx1", fixture.DGX1V100("w")},
		{"dualdgx1", fixture.DualDGX1("w")},
		{"nvswitch-16", fixture.NVSwitch("w", "H100", 16, 18)},
		{"pcie-24", fixture.PCIe("w", "T4", 24)},
		{"random-16", fixture.Random(2, 16)},
		{"random-24", fixture.Random(4, 24)},
		{"random-40", fixture.Random(5, 40)},
		{"random-64", fixture.Random(3, 64)},
		{"random-64b", fixture.Random(8, 64)},
		{"sparse-20", fixture.Sparse(6, 20)},
		{"sparse-64", fixture.Sparse(3, 64)},
		{"sparse-64b", fixture.Sparse(9, 64)},
		{"bipartite-32", fixture.Bipartite(32)},
		{"bipartite-64", fixture.Bipartite(64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shape := tc.node.Shape()
			n := len(tc.node.GPUs)
			r := rand.New(rand.NewPCG(uint64(n), 17))
			for trial := range 3 {
				free := tc.node.All()
				if trial > 0 { // a partly used node
					for range n / 3 * trial {
						free &^= topology.SetOf(r.IntN(n))
					}
				}
				var gones []topology.GPUSet
				for g := range 10 {
					gone := topology.SetOf(r.IntN(n))
					for range g % 4 {
						gone |= topology.SetOf(r.IntN(n))
					}
					gones = append(gones, gone)
				}
				for _, size := range sizes(free.Len()) {
					type answer struct {
						set topology.GPUSet
						q   topology.Quality
						ok  bool
					}
					shape.Reset()
					want := make([]answer, len(gones))
					for i, gone := range gones {
						shape.Reset()
						want[i].set, want[i].q, want[i].ok = shape.BestSet(free&^gone, size)
					}
					shape.Reset()
					for i, gone := range gones {
						var got answer
						got.set, got.q, got.ok = shape.BestSetWithout(free, gone, size)
						require.Equal(t, want[i], got, fmt.Sprintf("free %#x without %#x, size %d", uint64(free), uint64(gone), size))
					}
				}
			}
		})
	}
}

// sizes are the set sizes tried on a free count of n: 1 to 8, then a few
// up to n.
func sizes(n int) []int {
	var out []int
	for k := 1; k <= n; k++ {
		if k <= 8 || k == n-1 || k == n || k%5 == 0 {
			out = append(out, k)
		}
	}
	return out
}
