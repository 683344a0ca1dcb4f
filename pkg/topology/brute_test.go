package topology_test

import (
	"math/bits"

	"github.com/gpupack/gpupack/pkg/topology"
)

// Brute-force references for the best-set search, written independently of
// the code under test.

// bruteRingPerm is the best ring bottleneck of set by trying every ring: fix
// the lowest GPU, try every order of the others (k-1)! (each ring twice).
func bruteRingPerm(n *topology.Node, set topology.GPUSet) float64 {
	idx := set.Indexes()
	switch len(idx) {
	case 0:
		return 0
	case 1:
		return topology.PerfectGBps
	case 2:
		return n.Bandwidth(idx[0], idx[1])
	}
	best := 0.0
	used := make([]bool, len(idx))
	used[0] = true
	var walk func(cur, depth int, bottleneck float64)
	walk = func(cur, depth int, bottleneck float64) {
		if depth == len(idx) {
			best = max(best, min(bottleneck, n.Bandwidth(idx[cur], idx[0])))
			return
		}
		for next := range idx {
			if !used[next] {
				used[next] = true
				walk(next, depth+1, min(bottleneck, n.Bandwidth(idx[cur], idx[next])))
				used[next] = false
			}
		}
	}
	walk(0, 1, topology.PerfectGBps)
	return best
}

// bruteSum is the sum of Bandwidth over every pair of set.
func bruteSum(n *topology.Node, set topology.GPUSet) float64 {
	idx := set.Indexes()
	total := 0.0
	for a := range idx {
		for b := a + 1; b < len(idx); b++ {
			total += n.Bandwidth(idx[a], idx[b])
		}
	}
	return total
}

// ringTable is the best ring bottleneck of every subset of the node's GPUs,
// by the textbook bottleneck Held-Karp DP: path[m][e] = best bottleneck of a
// path from m's lowest GPU through exactly m ending at e.
func ringTable(n *topology.Node) []float64 {
	size := len(n.GPUs)
	bw := make([][]float64, size)
	for i := range size {
		bw[i] = make([]float64, size)
		for j := range size {
			bw[i][j] = n.Bandwidth(i, j)
		}
	}
	path := make([][]float64, 1<<size)
	ring := make([]float64, 1<<size)
	for m := 1; m < 1<<size; m++ {
		path[m] = make([]float64, size)
		low := bits.TrailingZeros(uint(m))
		if m == 1<<low {
			path[m][low] = topology.PerfectGBps
			ring[m] = topology.PerfectGBps
			continue
		}
		for e := range size {
			if m&(1<<e) == 0 || e == low {
				continue
			}
			prev := m &^ (1 << e)
			for w := range size {
				if prev&(1<<w) != 0 && path[prev][w] > 0 {
					path[m][e] = max(path[m][e], min(path[prev][w], bw[w][e]))
				}
			}
		}
		if bits.OnesCount(uint(m)) == 2 {
			ring[m] = bw[low][bits.Len(uint(m))-1]
			continue
		}
		for e := range size {
			if e != low && path[m][e] > 0 {
				ring[m] = max(ring[m], min(path[m][e], bw[e][low]))
			}
		}
	}
	return ring
}

// bruteBest returns, for every size, the best subset of free by (ring, sum),
// the smallest mask first among equals, from the ring table.
func bruteBest(ring, sum []float64, free topology.GPUSet) (sets []topology.GPUSet, qs []topology.Quality) {
	k := free.Len()
	sets = make([]topology.GPUSet, k+1)
	qs = make([]topology.Quality, k+1)
	found := make([]bool, k+1)
	// Every subset of free, in increasing mask order.
	for sub := topology.GPUSet(0); ; sub = (sub - free) & free {
		if sub != 0 {
			size := sub.Len()
			q := topology.Quality{RingGBps: ring[sub], SumGBps: sum[sub]}
			if !found[size] || q.Better(qs[size]) {
				sets[size], qs[size], found[size] = sub, q, true
			}
		}
		if sub == free {
			break
		}
	}
	return sets, qs
}

// sumTable is bruteSum of every subset of the node's GPUs.
func sumTable(n *topology.Node) []float64 {
	size := len(n.GPUs)
	sum := make([]float64, 1<<size)
	for m := 1; m < 1<<size; m++ {
		low := bits.TrailingZeros(uint(m))
		rest := m &^ (1 << low)
		sum[m] = sum[rest]
		for j := range size {
			if rest&(1<<j) != 0 {
				sum[m] += n.Bandwidth(low, j)
			}
		}
	}
	return sum
}
