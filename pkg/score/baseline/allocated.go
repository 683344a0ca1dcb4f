package baseline

// Names of kube-scheduler's NodeResourcesFit strategies.
const (
	LeastAllocatedName = "least-allocated"
	MostAllocatedName  = "most-allocated"
)

// LeastAllocated is kube-scheduler's NodeResourcesFit LeastAllocated over
// CPU, memory and GPU (weight 1 each): the mean over the resources the node
// has of trunc((capacity - requested) x 100 / capacity), requested counting
// the task. It spreads. Ties are drawn at random (upstream selectHost).
type LeastAllocated struct{}

// MostAllocated is NodeResourcesFit MostAllocated over CPU, memory and GPU:
// the mean of trunc(requested x 100 / capacity). It packs.
type MostAllocated struct{}

var (
	_ Policy = LeastAllocated{}
	_ Policy = MostAllocated{}
)

// Name implements Policy.
func (LeastAllocated) Name() string { return LeastAllocatedName }

// Score implements Policy.
func (LeastAllocated) Score(n *Node, t *Task) int64 { return allocated(n, t, false) }

// TieBreak implements Policy.
func (LeastAllocated) TieBreak() TieBreak { return TieRandom }

// GPUSelection implements Policy.
func (LeastAllocated) GPUSelection() GPUSelection { return SelectBestFit }

// Name implements Policy.
func (MostAllocated) Name() string { return MostAllocatedName }

// Score implements Policy.
func (MostAllocated) Score(n *Node, t *Task) int64 { return allocated(n, t, true) }

// TieBreak implements Policy.
func (MostAllocated) TieBreak() TieBreak { return TieRandom }

// GPUSelection implements Policy.
func (MostAllocated) GPUSelection() GPUSelection { return SelectBestFit }

func allocated(n *Node, t *Task, most bool) int64 {
	rs := [3]struct{ capacity, free, req int64 }{
		{n.CPUCapacity, n.CPUFree, t.CPUMilli},
		{n.MemCapacity, n.MemFree, t.MemoryMiB},
		{n.GPUCapacity(), n.GPUFree, t.Demand()},
	}
	var sum, k int64
	for _, x := range rs {
		if x.capacity <= 0 {
			continue
		}
		requested := x.capacity - x.free + x.req
		if most {
			sum += requested * MaxScore / x.capacity
		} else {
			sum += (x.capacity - requested) * MaxScore / x.capacity
		}
		k++
	}
	if k == 0 {
		return 0
	}
	return sum / k
}
