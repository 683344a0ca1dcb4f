package topology_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// withoutNodes are the test machines the BestSetWithout tests run on: every
// kind up to 64 GPUs, irregular NVLink maps above 16 GPUs included (where
// the search goes greedy), and odd sizes (17, 33, 18).
func withoutNodes() []struct {
	name string
	node *topology.Node
} {
	return []struct {
		name string
		node *topology.Node
	}{
		{"dgx1", fixture.DGX1V100("w")},
		{"dualdgx1", fixture.DualDGX1("w")},
		{"nvswitch-16", fixture.NVSwitch("w", "H100", 16, 18)},
		{"pcie-24", fixture.PCIe("w", "T4", 24)},
		{"pcie-40", fixture.PCIe("w", "T4", 40)},
		{"random-16", fixture.Random(2, 16)},
		{"random-17", fixture.Random(11, 17)},
		{"random-24", fixture.Random(4, 24)},
		{"random-33", fixture.Random(12, 33)},
		{"random-40", fixture.Random(5, 40)},
		{"random-64", fixture.Random(3, 64)},
		{"random-64b", fixture.Random(8, 64)},
		{"random-64c", fixture.Random(13, 64)},
		{"sparse-17", fixture.Sparse(14, 17)},
		{"sparse-20", fixture.Sparse(6, 20)},
		{"sparse-48", fixture.Sparse(15, 48)},
		{"sparse-64", fixture.Sparse(3, 64)},
		{"sparse-64b", fixture.Sparse(9, 64)},
		{"sparse-64c", fixture.Sparse(16, 64)},
		{"bipartite-18", fixture.Bipartite(18)},
		{"bipartite-32", fixture.Bipartite(32)},
		{"bipartite-64", fixture.Bipartite(64)},
	}
}

// forEachWithoutNode runs check as a subtest on each of withoutNodes, with
// the node's shape, its GPU count and a source of random numbers seeded by
// that count and seed.
func forEachWithoutNode(t *testing.T, seed uint64, check func(t *testing.T, node *topology.Node, shape *topology.Shape, n int, r *rand.Rand)) {
	for _, tc := range withoutNodes() {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.node.GPUs)
			check(t, tc.node, tc.node.Shape(), n, rand.New(rand.NewPCG(uint64(n), seed)))
		})
	}
}

// requireWithoutAnswers checks, for each size, that BestSetWithout(free,
// gone, size) answers what BestSet(free &^ gone, size) answers (set,
// quality and ok) for each of gones in turn. The plain answers are searched
// with the memo cleared, so neither side reads the other's; the
// BestSetWithout answers are asked in turn after one clearing, so each one
// after the first is asked with the trace the ones before left warm.
func requireWithoutAnswers(t *testing.T, shape *topology.Shape, free topology.GPUSet, gones []topology.GPUSet, sizes []int) {
	t.Helper()
	type answer struct {
		set topology.GPUSet
		q   topology.Quality
		ok  bool
	}
	for _, size := range sizes {
		want := make([]answer, len(gones))
		for i, gone := range gones {
			shape.Reset()
			want[i].set, want[i].q, want[i].ok = shape.BestSet(free&^gone, size)
		}
		shape.Reset()
		for i, gone := range gones {
			var got answer
			got.set, got.q, got.ok = shape.BestSetWithout(free, gone, size)
			require.Equal(t, want[i], got, fmt.Sprintf("free %#x without %#x, size %d (in turn %d)", uint64(free), uint64(gone), size, i))
		}
	}
}

// BestSetWithout(free, gone, size) answers what BestSet(free &^ gone, size)
// answers, on seeded random masks of every test machine, for gone sets of
// one to four GPUs (some of them outside free) and sizes from 1 to the free
// count.
func TestBestSetWithoutMatchesBestSet(t *testing.T) {
	forEachWithoutNode(t, 17, func(t *testing.T, node *topology.Node, shape *topology.Shape, n int, r *rand.Rand) {
		for trial := range 3 {
			free := node.All()
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
			requireWithoutAnswers(t, shape, free, gones, sizes(free.Len()))
		}
	})
}

// BestSetWithout answers as BestSet(free &^ gone, size) also for sizes of
// zero or less, and for gone sets that cover large parts of the node (a
// whole group, half the node); each gone set is asked cold and then, with
// GPU 0 gone too, with the trace warm.
func TestBestSetWithoutEdges(t *testing.T) {
	forEachWithoutNode(t, 99, func(t *testing.T, node *topology.Node, shape *topology.Shape, n int, r *rand.Rand) {
		for trial := range 6 {
			free := node.All()
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
				requireWithoutAnswers(t, shape, free, []topology.GPUSet{gone, gone | topology.SetOf(0)}, []int{-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16})
			}
		}
	})
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
