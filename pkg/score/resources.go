package score

import (
	"math"

	"github.com/gpupack/gpupack/pkg/topology"
)

// CPU and memory awareness. FGD counts, for a task type the node's free CPU
// or memory cannot hold, all of the node's free GPU capacity as fragment
// ("lack CPU"). That sees only the last task: a node whose CPU is nearly
// gone still looks unfragmented for as long as one more task fits, so work
// that takes CPU and little GPU (CPU-only tasks, small GPU shares with many
// cores) drains GPU nodes' CPU until whole GPUs are left with no cores to
// run on. gpupack counts, for each task type, the tasks of that type the
// node's free CPU and memory can still hold, n = min(cpuFree / cpu,
// memFree / mem) rounded down, and the GPU capacity they can take, n x the
// type's GPUs (count, or share of one GPU); the free capacity beyond it is
// stranded for that type (taskCap). n = 0 is FGD's "lack CPU" case.
//
// A State knows its node's free CPU and memory only when SetFree was
// called; a TaskType or Request with 0 CPU (or memory) does not need any.

// SetFree records the node's free CPU (milli-cores) and memory (MiB):
// allocatable minus requested. Before the first call the State does not
// consider CPU and memory at all.
func (s *State) SetFree(cpuMilli, memMiB int64) {
	s.res, s.cpuFree, s.memFree = true, cpuMilli, memMiB
}

// FreeResources returns the free CPU (milli) and memory (MiB) SetFree
// recorded; known is false when it was never called.
func (s *State) FreeResources() (cpuMilli, memMiB int64, known bool) {
	return s.cpuFree, s.memFree, s.res
}

// less is free - take for take >= 0 (a negative take counts 0), at least
// math.MinInt64: a node's free CPU or memory is negative when its pods
// request more than it has, and a request may be as large as an int64;
// wrapped around, the difference would make a huge request free the node.
func less(free, take int64) int64 {
	take = max(0, take)
	if free < math.MinInt64+take {
		return math.MinInt64
	}
	return free - take
}

// takeResources returns s, or a copy of s (sharing its usage slices: not to
// be mutated) with cpu and mem less free when s knows its resources and the
// request takes some.
func (s *State) takeResources(cpu, mem int64) *State {
	if !s.res || (cpu <= 0 && mem <= 0) {
		return s
	}
	w := *s
	w.cpuFree = less(w.cpuFree, cpu)
	w.memFree = less(w.memFree, mem)
	return &w
}

// tasksLess is how many tasks of type t the node's free CPU and memory
// minus (cpu, mem) hold; -1 when unbounded (the State does not know its
// resources, or t needs neither).
func (s *State) tasksLess(t TaskType, cpu, mem int64) int64 {
	if !s.res || (t.CPUMilli <= 0 && t.MemoryMiB <= 0) {
		return -1
	}
	n := int64(math.MaxInt64)
	if t.CPUMilli > 0 {
		n = max(0, less(s.cpuFree, cpu)) / t.CPUMilli
	}
	if t.MemoryMiB > 0 {
		n = min(n, max(0, less(s.memFree, mem))/t.MemoryMiB)
	}
	return n
}

// taskCap is the GPU capacity (in GPUs) the node's free CPU and memory can
// feed for task type t under the distribution d: the larger of
//
//   - what the tasks of t the node still holds take, n x t's GPUs (count,
//     or share of one GPU), and
//   - what the workload's mix takes with that CPU and memory, at the mix's
//     CPU and memory per GPU of demand (mixPerGPU): cpuFree / cpuPerGPU,
//     memFree / memPerGPU, the smaller;
//
// 0 when not one task of t fits (FGD's "lack CPU"), +Inf when t or the
// State has no CPU or memory to count. The free capacity beyond it is
// stranded for t.
//
// Why the mix: a GPU that CPU-lighter tasks can still be fed on is not idle
// for lack of CPU. Counting a CPU-heavy type's own bound alone (n x GPUs)
// made every GPU-rich host fragmented for the CPU-heaviest sharing types
// (on a fresh 96-core, 8-GPU host a 12-core, 0.25-GPU type feeds 2 GPUs:
// 6 "stranded"), so any whole-GPU task there showed a gain, as large on an
// entirely free host as on a partly used one, and hosts' free 8-GPU groups
// were broken early (openb gpushare40, seed 42: 588 entirely free 8-GPU
// nodes broken by task 6400 vs fgd's 443; 8-GPU tasks failing from task
// 6316 vs 8231). n x GPUs still counts where it is larger: the last cores
// of a node that hold one more task of t.
func (s *State) taskCap(t TaskType, d *Distribution) float64 {
	n := s.tasksLess(t, 0, 0)
	if n < 0 {
		return math.Inf(1)
	}
	var own float64
	switch t.Kind {
	case KindWhole:
		own = float64(n) * float64(t.Count)
	case KindShared:
		own = float64(n) * float64(t.Milli) / topology.MilliPerGPU
	default:
		if n == 0 {
			return 0
		}
		return math.Inf(1)
	}
	if n == 0 {
		return 0
	}
	if d.tasksOnly {
		return own
	}
	return max(own, s.mixCap(d))
}

// mixCap is the GPU capacity the node's free CPU and memory feed at the
// mix's CPU and memory per GPU (+Inf when the mix needs neither).
func (s *State) mixCap(d *Distribution) float64 {
	cpu, mem := d.mixRates()
	c := math.Inf(1)
	if cpu > 0 {
		c = float64(max(0, s.cpuFree)) / cpu
	}
	if mem > 0 {
		c = min(c, float64(max(0, s.memFree))/mem)
	}
	return c
}

// mixRates is mixPerGPU as NewDistribution kept it (computed now for a
// Distribution built by hand, which was not indexed).
func (d *Distribution) mixRates() (cpu, mem float64) {
	if d.id == 0 {
		return d.mixPerGPU()
	}
	return d.cpuPerGPU, d.memPerGPU
}

// mixPerGPU is the distribution's CPU (milli) and memory (MiB) per GPU of
// demand: sum p_m cpu_m / sum p_m gpus_m (GPU types only; 0 when there are
// none).
func (d *Distribution) mixPerGPU() (cpu, mem float64) {
	var gpus float64
	for m, t := range d.Types {
		g := typeGPUs(t)
		if g <= 0 {
			continue // MIG types
		}
		cpu += d.P[m] * float64(t.CPUMilli)
		mem += d.P[m] * float64(t.MemoryMiB)
		gpus += d.P[m] * g
	}
	if gpus <= 0 {
		return 0, 0
	}
	return cpu / gpus, mem / gpus
}

// takesFit reports whether taking cpu and mem changes what the node's CPU
// and memory feed for one of d's task types (taskCap: the mix's capacity
// when the mix needs that resource, or how many tasks of a type the node
// holds; only the latter for d.tasksOnly, which has no mix share);
// otherwise the node's fragmentation and choices are the same before and
// after.
func (s *State) takesFit(cpu, mem int64, d *Distribution) bool {
	if !s.res || (cpu <= 0 && mem <= 0) {
		return false
	}
	if !d.tasksOnly {
		cpg, mpg := d.mixRates()
		if (cpu > 0 && cpg > 0) || (mem > 0 && mpg > 0) {
			return true
		}
	}
	for _, t := range d.Types {
		if s.tasksLess(t, 0, 0) != s.tasksLess(t, cpu, mem) {
			return true
		}
	}
	return false
}

// ResourceDelta is the node's fragmentation change when a task takes cpu
// (milli) and mem (MiB) and no GPU (a CPU-only task on a GPU node), in
// GPUs, >= 0: the GPU capacity of the tasks of each type that the node's
// free CPU and memory then no longer hold, while its free GPUs could take
// them, weighted by the types' popularity. Each type's capacity on the
// node is its own tasks' GPUs alone here (n x GPUs, taskCap without the
// mix's share): the cost is the task slots the pod's cores and memory
// take away, sum p_m x (lost tasks of m) x GPUs of m where those GPUs are
// free. 0 when s does not know its free CPU and memory, and on nodes whose
// GPUs, not CPU and memory, bound what every type can take.
//
// Why not the mix here: the mix's share of taskCap (a core feeds 1 /
// the mix's cores per GPU) compares GPU placements, where it keeps
// GPU-rich hosts from looking fragmented for CPU-heavy types (see
// taskCap). For a pod that takes only cores it charged every core at the
// mix's average rate on nodes short of CPU for the mix, and nothing where
// the mix still fits, whether or not a task of any type was lost; CPU-only
// pods then drained hosts whose CPU-heavy GPU tasks still had free GPUs.
// gpusim, openb cpu250 (a quarter of the tasks CPU-only), 10 seeds: 93.88
// with the mix, 94.39 with lost tasks (fgd 93.27); the 10 other traces
// move by -0.02..+0.02.
func ResourceDelta(s *State, cpuMilli, memMiB int64, d *Distribution) float64 {
	if d == nil {
		d = defaultDistribution
	}
	d = d.tasksBound()
	if !s.takesFit(cpuMilli, memMiB, d) {
		return 0
	}
	return Fragmentation(s.takeResources(cpuMilli, memMiB), d) - Fragmentation(s, d)
}

// FedCapacity is the node's free GPU capacity, in GPUs, that its free CPU
// and memory still feed under the workload d: sum over task types m of
// p_m x min(free capacity, the GPUs the tasks of m that the free CPU and
// memory hold take) (taskCap without the mix, as ResourceDelta). 0 on a
// node whose GPUs are all in use, and on one whose free CPU and memory
// hold no task of any type; the free capacity when the State does not
// know its free CPU and memory (SetFree). d nil is the default prior.
func FedCapacity(s *State, d *Distribution) float64 {
	if d == nil {
		d = defaultDistribution
	}
	total := s.FreeCapacity()
	if total <= 0 {
		return 0
	}
	d = d.tasksBound()
	var fed float64
	for m, t := range d.Types {
		fed += d.P[m] * min(total, s.taskCap(t, d))
	}
	return fed
}

// BucketCPU rounds a CPU request (milli) up to whole eighths of a core and
// those up to the ladder h, 1.25 h, 1.5 h, 1.75 h, 2 h (h a power of two;
// so 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10, 12, 14, 16
// cores above one core): at most 25% over and 4 buckets per doubling, so
// that the learned task types do not explode. 0 stays 0 (not known).
//
// Requests too large for any node (above 2^57 milli-cores) are not
// rounded; the result never overflows (a Kubernetes quantity can be as
// large as an int64).
func BucketCPU(milli int64) int64 {
	const unit = 125
	if milli > maxLadder {
		return milli
	}
	return ladder((max(0, milli)+unit-1)/unit) * unit
}

// maxLadder is the largest value ladder rounds (and BucketCPU): 2^57, so
// that rounding up by at most a factor 2 (and BucketCPU's unit of 125 <
// 2^7 on at most 2^57/125 units) stays within int64.
const maxLadder = 1 << 57

// BucketMemory rounds a memory request (MiB) up to the same ladder (1,
// 1.25, 1.5, 1.75, 2, 2.5, 3 ... GiB above 1 GiB). 0 stays 0.
func BucketMemory(mib int64) int64 { return ladder(mib) }

// ladder rounds x > 0 up to the next h, 1.25 h, 1.5 h or 1.75 h for h a
// power of two (x itself below 8): at most 25% over, 4 steps per doubling.
// x above maxLadder is returned as it is (no bucket that large matters).
func ladder(x int64) int64 {
	if x <= 8 {
		return max(0, x)
	}
	if x > maxLadder {
		return x
	}
	h := int64(8)
	for h < 1<<60 && h*2 < x {
		h <<= 1
	}
	// h < x <= 2h
	for q := int64(5); q <= 8; q++ {
		if v := h * q / 4; x <= v {
			return v
		}
	}
	return 2 * h
}

// Bucketed returns t with its CPU and memory rounded up by BucketCPU and
// BucketMemory.
func (t TaskType) Bucketed() TaskType {
	t.CPUMilli, t.MemoryMiB = BucketCPU(t.CPUMilli), BucketMemory(t.MemoryMiB)
	return t
}
