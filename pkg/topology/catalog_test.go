package topology_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// discover returns the topology of a catalog machine, as the device plugin
// sees it.
func discover(t *testing.T, name string, opts ...fake.Option) *topology.Node {
	t.Helper()
	n, err := fake.Topology(name, opts...)
	require.NoError(t, err)
	return n
}

// requireRoundTrip checks that n validates and survives the annotation codec.
func requireRoundTrip(t *testing.T, n *topology.Node) {
	t.Helper()
	require.NoError(t, n.Validate())
	s, err := protocol.EncodeTopology(n)
	require.NoError(t, err)
	decoded, err := protocol.DecodeTopology(s)
	require.NoError(t, err)
	require.Equal(t, n, decoded)
}

// TestCatalogBestSet checks, on every catalog machine, that the best-set
// search matches the brute force for every size, with every GPU free and with
// many random free masks (some GPUs also unhealthy), and that it never hands
// out a GPU that is not free; and that the node survives the annotation
// codec.
func TestCatalogBestSet(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			n := discover(t, name)
			requireRoundTrip(t, n)

			shape := n.Shape()
			shape.Reset()
			ring, sum := ringTable(n), sumTable(n)
			r := rand.New(rand.NewPCG(2026, uint64(len(n.GPUs))))
			for k, free := range freeMasks(n, r) {
				if k%4 == 3 { // mark a GPU unhealthy: it must drop out
					bad := r.IntN(len(n.GPUs))
					n.GPUs[bad].Healthy = false
					free &= n.Usable()
					n.GPUs[bad].Healthy = true
					require.False(t, free.Has(bad))
				}
				wantSets, wantQs := bruteBest(ring, sum, free)
				for size := 1; size <= len(n.GPUs)+1; size++ {
					set, q, ok := shape.BestSet(free, size)
					if size > free.Len() {
						require.False(t, ok, "free %v size %d", free, size)
						continue
					}
					require.True(t, ok)
					require.True(t, set.SubsetOf(free), "free %v size %d: %v", free, size, set)
					require.Equal(t, size, set.Len())
					require.Equal(t, wantQs[size], q, "free %v size %d: got %v want %v", free, size, set, wantSets[size])
					require.Equal(t, wantSets[size], set, "free %v size %d", free, size)
				}
			}
		})
	}
}

// TestCatalogDGX1 checks the catalog's DGX-1 V100 against the hand-worked
// answers of TestBestSetDGX1 (same link map, so the same sets).
func TestCatalogDGX1(t *testing.T) {
	shape := discover(t, fake.DGX1V100).Shape()
	all := topology.FirstN(8)
	set, q, ok := shape.BestSet(all, 4)
	require.True(t, ok)
	// {0,1,2,3}: all 6 pairs NVLinked, ring 25, sum 225 (see TestBestSetDGX1).
	require.Equal(t, topology.SetOf(0, 1, 2, 3), set)
	require.Equal(t, topology.Quality{RingGBps: 25, SumGBps: 225}, q)
	set, q, ok = shape.BestSet(all&^topology.SetOf(0, 1), 4)
	require.True(t, ok)
	require.Equal(t, topology.SetOf(4, 5, 6, 7), set)
	require.Equal(t, topology.Quality{RingGBps: 25, SumGBps: 225}, q)
}

// TestCatalogMIG: MIG-enabled GPUs validate, encode, and are not usable as
// whole GPUs.
func TestCatalogMIG(t *testing.T) {
	n := discover(t, fake.DGXA100, fake.WithMIG(map[int][]string{0: {"3g.20gb", "3g.20gb"}, 5: {"1g.5gb"}}))
	requireRoundTrip(t, n)
	require.Equal(t, topology.FirstN(8)&^topology.SetOf(0, 5), n.Usable())
	set, _, ok := n.Shape().BestSet(n.Usable(), 6)
	require.True(t, ok)
	require.Equal(t, topology.SetOf(1, 2, 3, 4, 6, 7), set)
}
