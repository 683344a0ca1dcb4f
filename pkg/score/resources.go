package score

import "math"

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

// fits reports whether t's CPU and memory fit the node's free ones minus
// (cpu, mem) (true when the State does not know them).
func (s *State) fitsLess(t TaskType, cpu, mem int64) bool {
	if !s.res {
		return true
	}
	return (t.CPUMilli <= 0 || t.CPUMilli <= s.cpuFree-cpu) && (t.MemoryMiB <= 0 || t.MemoryMiB <= s.memFree-mem)
}

// takeResources returns s, or a copy of s (sharing its usage slices: not to
// be mutated) with cpu and mem less free when s knows its resources and the
// request takes some.
func (s *State) takeResources(cpu, mem int64) *State {
	if !s.res || (cpu <= 0 && mem <= 0) {
		return s
	}
	w := *s
	w.cpuFree -= max(0, cpu)
	w.memFree -= max(0, mem)
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
		n = max(0, s.cpuFree-cpu) / t.CPUMilli
	}
	if t.MemoryMiB > 0 {
		n = min(n, max(0, s.memFree-mem)/t.MemoryMiB)
	}
	return n
}

// taskCap is the GPU capacity (in GPUs) that the tasks of type t the node's
// free CPU and memory hold can take: +Inf when unbounded.
func (s *State) taskCap(t TaskType) float64 {
	n := s.tasksLess(t, 0, 0)
	if n < 0 {
		return math.Inf(1)
	}
	switch t.Kind {
	case KindWhole:
		return float64(n) * float64(t.Count)
	case KindShared:
		return float64(n) * float64(t.Milli) / 1000
	}
	if n == 0 {
		return 0
	}
	return math.Inf(1)
}

// takesFit reports whether taking cpu and mem changes how many tasks of
// one of d's task types the node holds (otherwise the node's
// fragmentation and choices are the same before and after).
func (s *State) takesFit(cpu, mem int64, d *Distribution) bool {
	if !s.res || (cpu <= 0 && mem <= 0) {
		return false
	}
	if d.id == 0 { // built by hand, not indexed
		for _, t := range d.Types {
			if s.tasksLess(t, 0, 0) != s.tasksLess(t, cpu, mem) {
				return true
			}
		}
		return false
	}
	for _, m := range d.needy {
		if t := d.Types[m]; s.tasksLess(t, 0, 0) != s.tasksLess(t, cpu, mem) {
			return true
		}
	}
	return false
}

// ResourceDelta is the node's fragmentation change when a task takes cpu
// (milli) and mem (MiB) and no GPU (a CPU-only task on a GPU node): every
// task type of which the node then holds fewer tasks can take less of the
// node's free GPUs (taskCap). 0 when s does not know its free CPU and
// memory, and on nodes whose GPUs, not CPU, bound what the types can take.
func ResourceDelta(s *State, cpuMilli, memMiB int64, d *Distribution) float64 {
	if d == nil {
		d = defaultDistribution
	}
	if !s.takesFit(cpuMilli, memMiB, d) {
		return 0
	}
	return Fragmentation(s.takeResources(cpuMilli, memMiB), d) - Fragmentation(s, d)
}

// BucketCPU rounds a CPU request (milli) up to whole eighths of a core and
// those up to the ladder h, 1.25 h, 1.5 h, 1.75 h, 2 h (h a power of two;
// so 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10, 12, 14, 16
// cores above one core): at most 25% over and 4 buckets per doubling, so
// that the learned task types do not explode. 0 stays 0 (not known).
func BucketCPU(milli int64) int64 {
	const unit = 125
	return ladder((milli+unit-1)/unit) * unit
}

// BucketMemory rounds a memory request (MiB) up to the same ladder (1,
// 1.25, 1.5, 1.75, 2, 2.5, 3 ... GiB above 1 GiB). 0 stays 0.
func BucketMemory(mib int64) int64 { return ladder(mib) }

// ladder rounds x > 0 up to the next h, 1.25 h, 1.5 h or 1.75 h for h a
// power of two (x itself below 8): at most 25% over, 4 steps per doubling.
func ladder(x int64) int64 {
	if x <= 8 {
		return max(0, x)
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
