package baseline

import "github.com/gpupack/gpupack/pkg/topology"

// Task is what a policy sees of a task.
type Task struct {
	CPUMilli  int64
	MemoryMiB int64
	// NumGPU is the number of GPUs (0: CPU-only).
	NumGPU int
	// GPUMilli is the share of each GPU, topology.MilliPerGPU for whole GPUs.
	GPUMilli int64
}

// Demand is the task's GPU demand in milli-GPU.
func (t *Task) Demand() int64 { return int64(t.NumGPU) * t.GPUMilli }

// Shared reports whether the task takes a share of one GPU.
func (t *Task) Shared() bool { return t.NumGPU == 1 && t.GPUMilli < topology.MilliPerGPU }

// Kinds is a set of GPU task kinds, the artifact's GPU clustering tags: bit
// 0 for a share of one GPU, bit k for k whole GPUs (k >= 31 share bit 30).
type Kinds uint32

// Kind is the task's clustering tag as a one-bit set; 0 for a CPU-only task
// (the artifact gives CPU-only tasks no tag).
func (t *Task) Kind() Kinds {
	switch {
	case t.NumGPU <= 0:
		return 0
	case t.Shared():
		return 1
	default:
		return 1 << uint(min(t.NumGPU, 30))
	}
}

// Node is what a policy sees of a node: its capacity and what is left.
type Node struct {
	CPUCapacity int64 // milli-CPU
	CPUFree     int64
	MemCapacity int64 // MiB
	MemFree     int64
	// GPUs is the free share of each GPU (topology.MilliPerGPU when idle).
	GPUs []int32
	// GPUFree is the sum of GPUs.
	GPUFree int64
	// IdleGPUs counts the GPUs entirely free.
	IdleGPUs int
	// Kinds is the union of Task.Kind over the tasks running on the node.
	Kinds Kinds
	// Model is the node's GPU model (FGD's typical pods may constrain it).
	Model string
}

// GPUCapacity is the node's GPU capacity in milli-GPU.
func (n *Node) GPUCapacity() int64 { return int64(len(n.GPUs)) * topology.MilliPerGPU }

// NewNode is an idle node with that capacity.
func NewNode(cpuMilli, memMiB int64, gpus int) Node {
	g := make([]int32, gpus)
	for i := range g {
		g[i] = topology.MilliPerGPU
	}
	return Node{CPUCapacity: cpuMilli, CPUFree: cpuMilli, MemCapacity: memMiB, MemFree: memMiB,
		GPUs: g, GPUFree: int64(gpus) * topology.MilliPerGPU, IdleGPUs: gpus}
}

// Fits reports whether t fits n's free CPU, memory and GPUs (GPU models are
// the caller's business).
func (n *Node) Fits(t *Task) bool {
	if t.CPUMilli > n.CPUFree || t.MemoryMiB > n.MemFree {
		return false
	}
	if t.NumGPU <= 0 {
		return true
	}
	if n.GPUFree < t.Demand() {
		return false
	}
	if !t.Shared() {
		return n.IdleGPUs >= t.NumGPU
	}
	for _, g := range n.GPUs {
		if int64(g) >= t.GPUMilli {
			return true
		}
	}
	return false
}

// Apply takes p for t from n (p as Devices returns it for n and t).
func (n *Node) Apply(t *Task, p Placement) {
	n.CPUFree -= t.CPUMilli
	n.MemFree -= t.MemoryMiB
	if t.NumGPU <= 0 {
		return
	}
	n.Kinds |= t.Kind()
	if t.Shared() {
		if n.GPUs[p.Share] == topology.MilliPerGPU {
			n.IdleGPUs--
		}
		n.GPUs[p.Share] -= int32(t.GPUMilli)
	} else {
		for i := range p.Whole.All() {
			n.GPUs[i] = 0
		}
		n.IdleGPUs -= t.NumGPU
	}
	n.GPUFree -= t.Demand()
}
