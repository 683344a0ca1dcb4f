package topology_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestGPUSet(t *testing.T) {
	s := topology.SetOf(0, 3, 5, 63, 64, -1) // 64 and -1 are ignored
	require.Equal(t, 4, s.Len())
	require.Equal(t, []int{0, 3, 5, 63}, s.Indexes())
	require.True(t, s.Has(3))
	require.False(t, s.Has(4))
	require.False(t, s.Has(64))
	require.False(t, s.Has(-1))
	require.Equal(t, "{0,3,5,63}", s.String())
	require.Equal(t, "{}", topology.GPUSet(0).String())
	require.Equal(t, topology.SetOf(0, 5, 63), s.Remove(3))
	require.Equal(t, topology.SetOf(0, 1, 3, 5, 63), s.Add(1))
	require.Equal(t, topology.SetOf(3), s.Intersect(topology.SetOf(1, 3)))
	require.Equal(t, topology.SetOf(0, 1, 3, 5, 63), s.Union(topology.SetOf(1, 3)))
	require.Equal(t, topology.SetOf(0, 5, 63), s.Minus(topology.SetOf(3, 4)))
	require.True(t, topology.SetOf(3, 5).SubsetOf(s))
	require.False(t, topology.SetOf(3, 4).SubsetOf(s))
	require.Equal(t, 0, s.Lowest())
	require.Equal(t, -1, topology.GPUSet(0).Lowest())
	require.Equal(t, topology.GPUSet(0b111), topology.FirstN(3))
	require.Equal(t, topology.GPUSet(0), topology.FirstN(-2))
	require.Equal(t, ^topology.GPUSet(0), topology.FirstN(64))
	require.Equal(t, 64, topology.FirstN(100).Len())
}

func TestUsable(t *testing.T) {
	n := fixture.DGX1V100("dgx1")
	n.GPUs[1].Healthy = false
	n.GPUs[6].MIGEnabled = true
	require.Equal(t, topology.SetOf(0, 2, 3, 4, 5, 7), n.Usable())
	require.Equal(t, topology.FirstN(8), n.All())
}

func TestQualityOrder(t *testing.T) {
	single := topology.Quality{RingGBps: topology.PerfectGBps}
	ring25 := topology.Quality{RingGBps: 25, SumGBps: 225}
	ring25Less := topology.Quality{RingGBps: 25, SumGBps: 187}
	ring50 := topology.Quality{RingGBps: 50, SumGBps: 100}
	require.True(t, single.Better(ring50))
	require.True(t, single.Perfect())
	require.False(t, ring50.Perfect())
	require.True(t, ring50.Better(ring25)) // a faster ring wins over a larger sum
	require.True(t, ring25.Better(ring25Less))
	require.False(t, ring25Less.Better(ring25))
	require.False(t, ring25.Better(ring25))
	require.True(t, ring25.Equal(topology.Quality{RingGBps: 25, SumGBps: 225}))
	require.True(t, ring25.Better(topology.Quality{}))
	// The single-GPU sentinel keeps ratios finite.
	require.Equal(t, 1.0, single.RingGBps/topology.PerfectGBps)
}

func TestShapeInterning(t *testing.T) {
	a, b := fixture.DGX1V100("dgx1"), fixture.DGX1V100("dgx1")
	b.GPUs[0].UUID = "other"
	b.GPUs[3].Healthy = false
	require.Same(t, a.Shape(), b.Shape(), "same matrix, same shape")
	require.NotSame(t, a.Shape(), fixture.NVSwitch("dgxa100", "A100", 8, 12).Shape())
	c := fixture.DGX1V100("dgx1")
	c.Links[0][1].NVLinks, c.Links[1][0].NVLinks = 2, 2
	require.NotSame(t, a.Shape(), c.Shape())
	// Different classes with the same figures share a shape too: only the
	// matrix of bandwidths counts.
	d := fixture.DGX1V100("dgx1")
	for i := range d.GPUs {
		d.GPUs[i].NVLinkVersion = 3 // 25 per lane, like version 2
	}
	require.Same(t, a.Shape(), d.Shape())
	s := a.Shape()
	require.Equal(t, 8, s.Len())
	require.Equal(t, 50.0, s.Bandwidth(0, 3))
	require.Equal(t, 6.0, s.Bandwidth(0, 5))
	require.Zero(t, s.Bandwidth(0, 8))
	require.Equal(t, 0, (&topology.Node{}).Shape().Len())
	_, _, ok := (&topology.Node{}).Shape().BestSet(^topology.GPUSet(0), 1)
	require.False(t, ok)
}

// TestShapeConcurrent runs BestSet, Quality and Shape from many goroutines
// (meaningful with -race).
func TestShapeConcurrent(t *testing.T) {
	n := fixture.DualDGX1("mixed16")
	ring, sum := ringTable(n), sumTable(n)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				free := topology.GPUSet(uint64(i*7919+g*104729)) & n.All()
				size := 1 + i%8
				set, q, ok := n.Shape().BestSet(free, size)
				if !ok {
					continue
				}
				if !set.SubsetOf(free) || q != (topology.Quality{RingGBps: ring[set], SumGBps: sum[set]}) {
					t.Errorf("free %v size %d: %v %v", free, size, set, q)
				}
				if i%50 == 0 {
					n.Shape().Reset()
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func TestSetOfUUIDs(t *testing.T) {
	n := &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a"}, {Index: 1, UUID: "GPU-b"}, {Index: 2, UUID: "GPU-c"}}}
	set, unknown := n.SetOfUUIDs([]string{"GPU-c", "GPU-a", "GPU-x"})
	// GPU-a is index 0 and GPU-c index 2: bits 0 and 2 = 0b101 = 5.
	require.Equal(t, topology.GPUSet(5), set)
	require.Equal(t, []string{"GPU-x"}, unknown)
	set, unknown = n.SetOfUUIDs(nil)
	require.Zero(t, set)
	require.Empty(t, unknown)
}
