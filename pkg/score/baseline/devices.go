package baseline

import "github.com/gpupack/gpupack/pkg/topology"

// Placement is the GPUs a task gets on a node: Share is the GPU of a share
// (-1 otherwise), Whole the whole GPUs.
type Placement struct {
	Share int
	Whole topology.GPUSet
}

// Devices picks t's GPUs on n by sel (rng serves SelectRandom). ok is false
// when n cannot hold t's GPUs; a CPU-only task gets Placement{Share: -1}.
func Devices(n *Node, t *Task, sel GPUSelection, rng Rand) (p Placement, ok bool) {
	p.Share = -1
	switch {
	case t.NumGPU <= 0:
		return p, true
	case t.Shared() && sel == SelectRandom:
		p.Share = RandomGPU(n, t.GPUMilli, rng)
		return p, p.Share >= 0
	case t.Shared():
		p.Share = BestFitGPU(n, t.GPUMilli)
		return p, p.Share >= 0
	}
	p.Whole = IdleGPUs(n, t.NumGPU)
	return p, p.Whole.Len() == t.NumGPU
}

// BestFitGPU is the GPU with the least free share that still holds milli
// (lowest index on ties), or -1.
func BestFitGPU(n *Node, milli int64) int {
	best := -1
	for j, g := range n.GPUs {
		if int64(g) >= milli && (best < 0 || g < n.GPUs[best]) {
			best = j
		}
	}
	return best
}

// RandomGPU is a GPU drawn uniformly among those that hold milli, or -1.
func RandomGPU(n *Node, milli int64, rng Rand) int {
	pick, k := -1, 0
	for j, g := range n.GPUs {
		if int64(g) >= milli {
			k++
			if rng.IntN(k) == 0 {
				pick = j
			}
		}
	}
	return pick
}

// IdleGPUs is the k lowest-indexed entirely free GPUs (fewer if the node
// has fewer).
func IdleGPUs(n *Node, k int) topology.GPUSet { return IdleOf(n.GPUs, k) }

// IdleOf is the k lowest-indexed entries of gpus (free shares per GPU) that
// are entirely free (fewer if there are fewer).
func IdleOf(gpus []int32, k int) topology.GPUSet {
	var s topology.GPUSet
	for j, g := range gpus {
		if k == 0 {
			break
		}
		if g == topology.MilliPerGPU {
			s |= topology.SetOf(j)
			k--
		}
	}
	return s
}
