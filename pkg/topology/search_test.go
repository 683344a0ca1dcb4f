package topology_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// checkBestSet compares BestSet(free, size) for every size with the brute
// force, and checks the result stays inside free.
func checkBestSet(t *testing.T, name string, n *topology.Node, ring, sum []float64, free topology.GPUSet) {
	t.Helper()
	shape := n.Shape()
	wantSets, wantQs := bruteBest(ring, sum, free)
	for size := 0; size <= free.Len()+1; size++ {
		set, q, ok := shape.BestSet(free, size)
		if size == 0 || size > free.Len() {
			require.False(t, ok, "%s free=%v size=%d", name, free, size)
			require.Zero(t, set)
			continue
		}
		require.True(t, ok, "%s free=%v size=%d", name, free, size)
		require.True(t, set.SubsetOf(free), "%s free=%v size=%d: %v not in free", name, free, size, set)
		require.Equal(t, size, set.Len(), "%s free=%v size=%d: %v", name, free, size, set)
		require.Equal(t, wantQs[size], q, "%s free=%v size=%d: got %v want %v", name, free, size, set, wantSets[size])
		require.Equal(t, wantSets[size], set, "%s free=%v size=%d (tie-break: smallest mask)", name, free, size)
		require.Equal(t, wantQs[size], shape.Quality(set), "%s Quality(%v)", name, set)
		// The memo answers the same.
		set2, q2, ok2 := shape.BestSet(free, size)
		require.Equal(t, []any{set, q, true}, []any{set2, q2, ok2})
	}
}

// freeMasks is every GPU of n, then 40 random subsets drawn from r.
func freeMasks(n *topology.Node, r *rand.Rand) []topology.GPUSet {
	masks := []topology.GPUSet{n.All()}
	for range 40 {
		masks = append(masks, topology.GPUSet(r.Uint64())&n.All())
	}
	return masks
}

func TestBestSetMatchesBruteForce(t *testing.T) {
	for _, tc := range testNodes() {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			n.Shape().Reset()
			ring, sum := ringTable(n), sumTable(n)
			for _, free := range freeMasks(n, rand.New(rand.NewPCG(42, uint64(len(n.GPUs))))) {
				checkBestSet(t, tc.name, n, ring, sum, free)
			}
		})
	}
}

// TestBestSetSkipsUnusable marks GPUs unhealthy, MIG-enabled or busy and checks
// that the search, fed Usable() minus busy, never returns them, and still
// matches the brute force.
func TestBestSetSkipsUnusable(t *testing.T) {
	for _, tc := range testNodes() {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			r := rand.New(rand.NewPCG(7, uint64(len(n.GPUs))))
			ring, sum := ringTable(n), sumTable(n)
			for range 10 {
				for i := range n.GPUs {
					n.GPUs[i].Healthy = r.IntN(6) != 0
					n.GPUs[i].MIGEnabled = r.IntN(8) == 0
				}
				busy := topology.GPUSet(r.Uint64())
				free := n.Usable() &^ busy
				for i, g := range n.GPUs {
					if !g.Healthy || g.MIGEnabled {
						require.False(t, n.Usable().Has(i))
					}
				}
				checkBestSet(t, tc.name, n, ring, sum, free)
				for size := 1; size <= len(n.GPUs); size++ {
					set, _, ok := n.Shape().BestSet(free, size)
					require.Equal(t, ok, size <= free.Len())
					require.Zero(t, set&busy, "busy GPU handed out")
					for _, i := range set.Indexes() {
						require.True(t, n.GPUs[i].Healthy && !n.GPUs[i].MIGEnabled, "GPU %d unusable", i)
					}
				}
			}
		})
	}
}

// TestQualityMatchesPermutations checks the ring table used as reference, and
// Shape.Quality, against trying every ring, for every subset of the 8-GPU
// machines (and subsets of up to 6 GPUs of the 10- to 16-GPU ones).
func TestQualityMatchesPermutations(t *testing.T) {
	for _, tc := range testNodes() {
		n := tc.node
		ring := ringTable(n)
		maxSize := len(n.GPUs)
		if maxSize > 8 {
			maxSize = 6
		}
		shape := n.Shape()
		for m := topology.GPUSet(1); m < topology.GPUSet(1)<<len(n.GPUs); m++ {
			if m.Len() > maxSize {
				continue
			}
			want := topology.Quality{RingGBps: bruteRingPerm(n, m), SumGBps: bruteSum(n, m)}
			require.Equal(t, want.RingGBps, ring[m], "%s ring table %v", tc.name, m)
			require.Equal(t, want, shape.Quality(m), "%s Quality(%v)", tc.name, m)
		}
	}
}

func TestBestSetDGX1(t *testing.T) {
	shape := fixture.DGX1V100("dgx1").Shape()
	tests := []struct {
		name string
		free topology.GPUSet
		size int
		want topology.GPUSet
		q    topology.Quality
	}{
		{
			// Only {0,1,2,3} and {4,5,6,7} have all 6 pairs NVLinked. No 4-ring
			// of 2-lane links exists (the 2-lane links form the 8-cycle
			// 0-3-2-1-5-6-7-4), so the best ring is 25, e.g. 0-3-2-1-0 =
			// 50,50,50,25. Sum {0,1,2,3} = 01 25 + 02 25 + 03 50 + 12 50 +
			// 13 25 + 23 50 = 225; {4,5,6,7} ties at 225, the smaller mask
			// wins.
			name: "4 of 8 free", free: topology.FirstN(8), size: 4,
			want: topology.SetOf(0, 1, 2, 3), q: topology.Quality{RingGBps: 25, SumGBps: 225},
		},
		{
			// Left {2..7}: NVLink 4-rings are {4,5,6,7} (all 6 pairs NVLinked:
			// 45 25 + 46 25 + 47 50 + 56 50 + 57 25 + 67 50 = 225) and
			// 2-3-7-6-2 (50,25,50,25; sum 23 50 + 26 25 + 37 25 + 67 50 +
			// 27 SYS 6 + 36 SYS 6 = 162). Both ring at 25; {4,5,6,7} has the
			// larger sum.
			name: "4 with 0,1 busy", free: topology.FirstN(8) &^ topology.SetOf(0, 1), size: 4,
			want: topology.SetOf(4, 5, 6, 7), q: topology.Quality{RingGBps: 25, SumGBps: 225},
		},
		{
			// Left {1,2,3,5,6,7}: NVLink 4-rings are 1-2-6-5-1 (50,25,50,50),
			// 2-3-7-6-2 (50,25,50,25) and 1-3-7-5-1 (25,25,25,50), all at 25.
			// Sums: {1,2,5,6} = 12 50 + 15 50 + 26 25 + 56 50 + 16 SYS 6 +
			// 25 SYS 6 = 187; {2,3,6,7} = 162; {1,3,5,7} = 13 25 + 15 50 +
			// 37 25 + 57 25 + 17 6 + 35 6 = 137.
			name: "4 with 0,4 busy", free: topology.FirstN(8) &^ topology.SetOf(0, 4), size: 4,
			want: topology.SetOf(1, 2, 5, 6), q: topology.Quality{RingGBps: 25, SumGBps: 187},
		},
		{
			// The 2-lane links form the ring 0-3-2-1-5-6-7-4-0: 50 all round.
			name: "all 8", free: topology.FirstN(8), size: 8,
			// Sum: 8 two-lane pairs x 50 + 8 one-lane pairs x 25 + the 12
			// cross-socket pairs without NVLink x SYS 6 = 400 + 200 + 72 (every
			// PIX and NODE pair has NVLink).
			want: topology.FirstN(8), q: topology.Quality{RingGBps: 50, SumGBps: 672},
		},
		{
			// The best pair is the lowest 2-lane pair: 0-3 (mask 9) beats
			// 1-2 (mask 6)? No: 1-2 is the smaller mask.
			name: "pair", free: topology.FirstN(8), size: 2,
			want: topology.SetOf(1, 2), q: topology.Quality{RingGBps: 50, SumGBps: 50},
		},
		{
			// Triangles of 2-lane links do not exist (the 2-lane graph is an
			// 8-cycle); triangle 0-1-2 rings at 25 with sum 25+25+50 = 100,
			// as do 0-2-3 (25+50+50 = 125) and 1-2-3 (50+25+50 = 125): 0-2-3
			// (mask 13) beats 1-2-3 (mask 14).
			name: "triangle", free: topology.FirstN(8), size: 3,
			want: topology.SetOf(0, 2, 3), q: topology.Quality{RingGBps: 25, SumGBps: 125},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, q, ok := shape.BestSet(tc.free, tc.size)
			require.True(t, ok)
			require.Equal(t, tc.want, set, "got %v", set)
			require.Equal(t, tc.q, q)
		})
	}
}

func TestBestSetEdgeCases(t *testing.T) {
	shape := fixture.DGX1V100("dgx1").Shape()
	for _, tc := range []struct {
		name string
		free topology.GPUSet
		size int
		ok   bool
	}{
		{"size 0", topology.FirstN(8), 0, false},
		{"negative size", topology.FirstN(8), -1, false},
		{"too few free", topology.SetOf(0, 1), 3, false},
		{"nothing free", 0, 1, false},
		{"GPUs beyond the node ignored", topology.SetOf(0, 9, 20), 2, false},
		{"single", topology.SetOf(5), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, q, ok := shape.BestSet(tc.free, tc.size)
			require.Equal(t, tc.ok, ok)
			if !ok {
				require.Zero(t, set)
				require.Equal(t, topology.Quality{}, q)
			}
		})
	}
	set, q, ok := shape.BestSet(topology.SetOf(5, 6), 1)
	require.True(t, ok)
	require.Equal(t, topology.SetOf(5), set)
	require.True(t, q.Perfect())
	require.True(t, q.Better(topology.Quality{RingGBps: 300, SumGBps: 1e6}))
}

func TestIdeal(t *testing.T) {
	// DGX A100: every pair 12 lanes x 25 = 300; a k-set sums k(k-1)/2 x 300.
	shape := fixture.NVSwitch("dgxa100", "A100", 8, 12).Shape()
	require.Equal(t, topology.Quality{RingGBps: topology.PerfectGBps}, shape.Ideal(1))
	require.Equal(t, topology.Quality{RingGBps: 300, SumGBps: 300}, shape.Ideal(2))
	require.Equal(t, topology.Quality{RingGBps: 300, SumGBps: 28 * 300}, shape.Ideal(8))
	require.Equal(t, topology.Quality{}, shape.Ideal(9))
	// A100 PCIe with bridges: a pair rings at 300; a quad {0,1,2,3} rings
	// through PXB (14): 0-1 300, 1-2 14, 2-3 300, 3-0 14; sum 300+300+4x14.
	shape = fixture.A100PCIeBridged("a100pcie").Shape()
	require.Equal(t, topology.Quality{RingGBps: 300, SumGBps: 300}, shape.Ideal(2))
	require.Equal(t, topology.Quality{RingGBps: 14, SumGBps: 656}, shape.Ideal(4))
}

// TestBestSetLarge checks the heuristic on nodes over 16 GPUs: valid sets,
// qualities that match Quality, and the optimum where it is obvious.
func TestBestSetLarge(t *testing.T) {
	// 32 GPUs, NVSwitch everywhere: every set is optimal; the smallest mask
	// wins.
	n := fixture.Build("nvs32", "GB200", 32, 5, func(int, int) topology.Link {
		return topology.Link{Class: topology.ClassNVSwitch, NVLinks: 18}
	})
	set, q, ok := n.Shape().BestSet(n.All(), 20)
	require.True(t, ok)
	require.Equal(t, topology.FirstN(20), set)
	// 18 lanes x 50 = 900 per pair; 20 GPUs have 190 pairs.
	require.Equal(t, topology.Quality{RingGBps: 900, SumGBps: 190 * 900}, q)

	for seed := range uint64(4) {
		n := fixture.Random(seed+100, 24+int(seed)*10)
		r := rand.New(rand.NewPCG(seed, 3))
		for range 5 {
			free := topology.GPUSet(r.Uint64()) & n.All()
			for _, size := range []int{1, 2, 3, 5, 8, 17, free.Len()} {
				set, q, ok := n.Shape().BestSet(free, size)
				if size > free.Len() {
					require.False(t, ok)
					continue
				}
				require.True(t, ok)
				require.True(t, set.SubsetOf(free))
				require.Equal(t, size, set.Len())
				require.Equal(t, n.Shape().Quality(set), q, "free %v size %d", free, size)
			}
		}
	}
}

// TestSearchStrategiesAgree runs each exact strategy of the search (branch and
// bound, subset DP in both its modes) on every connected group of every level
// of the test machines, and compares with the brute force: the k-subset of
// the group that rings at the level's bandwidth (ring table >= level) with
// the largest pairwise sum, the smallest mask among equals.
func TestSearchStrategiesAgree(t *testing.T) {
	for _, tc := range testNodes() {
		n := tc.node
		if len(n.GPUs) > topology.ExactLimit {
			continue
		}
		ring, sum := ringTable(n), sumTable(n)
		r := rand.New(rand.NewPCG(5, 5))
		calls := 0
		for _, free := range []topology.GPUSet{n.All(), topology.GPUSet(r.Uint64()) & n.All()} {
			topology.ExactStrategies(n.Shape(), free, func(level float64, comp topology.GPUSet, k int, dp, bnb topology.Candidate, bnbDone bool) {
				calls++
				want := topology.Candidate{Sum: -1}
				for sub := topology.GPUSet(0); ; sub = (sub - comp) & comp {
					if sub.Len() == k && ring[sub] >= level && (sum[sub] > want.Sum || (sum[sub] == want.Sum && sub < want.Set)) {
						want = topology.Candidate{Set: sub, Sum: sum[sub]}
					}
					if sub == comp {
						break
					}
				}
				require.Equal(t, want, dp, "%s dp level %v comp %v k %d", tc.name, level, comp, k)
				require.True(t, bnbDone, "%s bnb level %v comp %v k %d: out of budget", tc.name, level, comp, k)
				require.Equal(t, want, bnb, "%s bnb level %v comp %v k %d", tc.name, level, comp, k)
			})
		}
		require.NotZero(t, calls, "%s: no group checked", tc.name)
	}
}

type namedNode struct {
	name string
	node *topology.Node
}

// testNodes are the hand-written and generated machines the search is
// checked on, each a fresh node.
func testNodes() []namedNode {
	return []namedNode{
		{"dgx-1-v100", fixture.DGX1V100("dgx1")},
		{"dgx-a100", fixture.NVSwitch("dgxa100", "A100", 8, 12)},
		{"pcie-4gpu-2socket", fixture.DualSocketPCIe4("pcie4")},
		{"a100-pcie-8gpu-nvbridge", fixture.A100PCIeBridged("a100pcie")},
		{"nvswitch-16gpu", fixture.NVSwitch("nvs16", "V100", 16, 6)},
		{"mixed-16gpu", fixture.DualDGX1("mixed16")},
		{"random-10", fixture.Random(1, 10)},
		{"random-12", fixture.Random(2, 12)},
		{"sparse-12", fixture.Sparse(3, 12)},
		{"sparse-16", fixture.Sparse(4, 16)},
		{"bipartite-16", fixture.Bipartite(16)},
	}
}

// smallRandomNode is an n-GPU node drawn from r: each GPU an NVLink version
// from 0 (unknown) to 6, so pairs mix rates (the smaller known version
// counts), and each pair a link from a palette of 1 to 3 links drawn from
// every class (unknown, SYS up to NVSwitch, 1 to 4 lanes): few links make
// many equal sets, which exercises the tie-break.
func smallRandomNode(t *testing.T, r *rand.Rand, n int) *topology.Node {
	palette := make([]topology.Link, 1+r.IntN(3))
	for k := range palette {
		palette[k] = topology.Link{Class: topology.LinkClass(r.IntN(int(topology.ClassNVSwitch) + 1))}
		if palette[k].Class.IsNVLink() {
			palette[k].NVLinks = 1 + r.IntN(4)
		}
	}
	links := make([][]topology.Link, n)
	for i := range links {
		links[i] = make([]topology.Link, n)
		for j := i + 1; j < n; j++ {
			links[i][j] = palette[r.IntN(len(palette))]
		}
	}
	node := fixture.Build("small", "GPU", n, 0, func(i, j int) topology.Link { return links[i][j] })
	require.NoError(t, node.Validate())
	for i := range node.GPUs {
		node.GPUs[i].NVLinkVersion = r.IntN(7)
	}
	return node
}

// TestBestSetSmallRandomShapes compares the search with the brute force on
// 400 random nodes of 0 to 8 GPUs (fixed seed), for every free mask and
// every size.
func TestBestSetSmallRandomShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(2026, 8))
	for c := range 400 {
		n := smallRandomNode(t, r, r.IntN(9))
		ring, sum := ringTable(n), sumTable(n)
		for free := topology.GPUSet(0); free <= n.All(); free++ {
			checkBestSet(t, fmt.Sprintf("node %d (%d GPUs)", c, len(n.GPUs)), n, ring, sum, free)
		}
	}
}
