package topology_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// BenchmarkBestSet measures the best-set search on the 16-GPU machines (the
// largest the search solves exactly; random-16gpu has 10 bandwidth levels,
// each searched until one holds a ring of the size) with
// every GPU free: cold (the memo cleared before every call, so each call
// searches), warm (a memo hit), and the brute force of brute_test.go (every
// subset of the size, every ring by permutation) for comparison.
func BenchmarkBestSet(b *testing.B) {
	for _, m := range []namedNode{{"nvswitch-16gpu", fixture.NVSwitch("nvs16", "V100", 16, 6)}, {"mixed-16gpu", fixture.DualDGX1("mixed16")}, {"sparse-16gpu", fixture.Sparse(4, 16)}, {"bipartite-16gpu", fixture.Bipartite(16)}, {"random-16gpu", fixture.Random(6, 16)}} {
		shape := m.node.Shape()
		free := m.node.All()
		for _, size := range []int{2, 4, 8, 9, 12} {
			b.Run(fmt.Sprintf("%s/size=%d/cold", m.name, size), func(b *testing.B) {
				for b.Loop() {
					shape.Reset()
					shape.BestSet(free, size)
				}
			})
			b.Run(fmt.Sprintf("%s/size=%d/warm", m.name, size), func(b *testing.B) {
				shape.BestSet(free, size)
				for b.Loop() {
					shape.BestSet(free, size)
				}
			})
			if size <= 8 {
				b.Run(fmt.Sprintf("%s/size=%d/brute", m.name, size), func(b *testing.B) {
					for b.Loop() {
						bruteForceBest(m.node, free, size)
					}
				})
			}
		}
	}
}

// BenchmarkBestSetColdRandom is the cold search over a spread of free masks
// and sizes on the mixed 16-GPU box (the memo cleared before every call).
func BenchmarkBestSetColdRandom(b *testing.B) {
	n := fixture.DualDGX1("mixed16")
	shape := n.Shape()
	var free []topology.GPUSet
	for i := range 64 {
		free = append(free, topology.GPUSet(uint64(i)*0x9E3779B97F4A7C15>>48)|topology.SetOf(i%16, (i*7)%16, (i*3)%16))
	}
	i := 0
	for b.Loop() {
		f := free[i%len(free)]
		size := 1 + i%f.Len()
		shape.Reset()
		shape.BestSet(f, size)
		i++
	}
}

// BenchmarkNodeShape is the cost of Node.Shape (matrix, key, intern lookup).
func BenchmarkNodeShape(b *testing.B) {
	n := fixture.DualDGX1("mixed16")
	n.Shape()
	for b.Loop() {
		n.Shape()
	}
}

// bruteForceBest is the naive search: every size-subset of free, every ring
// by permutation, the pairwise sum.
func bruteForceBest(n *topology.Node, free topology.GPUSet, size int) (topology.GPUSet, topology.Quality) {
	var best topology.GPUSet
	var bestQ topology.Quality
	for sub := topology.GPUSet(0); ; sub = (sub - free) & free {
		if sub.Len() == size {
			q := topology.Quality{RingGBps: bruteRingPerm(n, sub), SumGBps: bruteSum(n, sub)}
			if best == 0 || q.Better(bestQ) {
				best, bestQ = sub, q
			}
		}
		if sub == free {
			break
		}
	}
	return best, bestQ
}

// BenchmarkBestSetColdSweep runs the cold search for every size on every
// 16-GPU test machine (every GPU free, and two fixed partial masks) and
// reports the slowest single call (max-ns) besides the mean.
func BenchmarkBestSetColdSweep(b *testing.B) {
	nodes := []*topology.Node{fixture.NVSwitch("nvs16", "V100", 16, 6), fixture.DualDGX1("mixed16"), fixture.Sparse(4, 16), fixture.Bipartite(16), fixture.Random(5, 16)}
	frees := []topology.GPUSet{topology.FirstN(16), 0xBEEF, 0x7F3C}
	var worst time.Duration
	calls := 0
	for b.Loop() {
		for _, n := range nodes {
			shape := n.Shape()
			for _, free := range frees {
				for size := 1; size <= free.Len(); size++ {
					shape.Reset()
					start := time.Now()
					shape.BestSet(free, size)
					worst = max(worst, time.Since(start))
					calls++
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls), "ns/call")
	b.ReportMetric(float64(worst.Nanoseconds()), "max-ns")
}
