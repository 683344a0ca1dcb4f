package gpupack

import (
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/score"
)

// Pods without GPU requests. A CPU-only pod on a GPU node takes CPU and
// memory that GPU pods need: with too little left, the node's free GPUs
// can no longer be used (pkg/score counts them as stranded, per task type,
// beyond the tasks the free CPU and memory still hold). GPUPack therefore
// scores CPU-only pods too: Score is pkg/score's CPUOnlyRaw of
// ResourceDelta, the GPU capacity of the tasks of each type the pod's CPU
// and memory would take away on the node (at score.CPUOnlyResolution), and,
// between nodes that strand the same, of the node's free GPUs, so the pod
// goes where it strands least, and there first to a node whose GPUs are
// all in use or a node without GPUs, then to one with CPU to spare for its
// GPUs. Filter is skipped (PreFilter returns Skip;
// kube-scheduler's NodeResourcesFit filters CPU and memory), as are
// Reserve and Bind. gpusim places CPU-only tasks with the same functions.

const cpuOnlyKey fwk.StateKey = Name + "/cpu-only"

// cpuOnly is a CPU-only pod's CPU (milli) and memory (MiB).
type cpuOnly struct{ cpuMilli, memMiB int64 }

// Clone shares the (immutable) state.
func (c *cpuOnly) Clone() fwk.StateData { return c }

// cpuOnlyRank normalizes CPU-only pods' raws (score.CPUOnlyRaw).
var cpuOnlyRank = score.Rank{Resolution: score.CPUOnlyResolution}

// preFilterCPUOnly records a CPU-only pod's CPU and memory for Score and
// skips Filter. A pod that asks for neither is not scored either.
func preFilterCPUOnly(cs fwk.CycleState, pod *v1.Pod) *fwk.Status {
	if cpu, mem := podCPUMemory(pod); cpu > 0 || mem > 0 {
		cs.Write(cpuOnlyKey, &cpuOnly{cpuMilli: cpu, memMiB: mem})
	}
	return fwk.NewStatus(fwk.Skip)
}

func readCPUOnly(cs fwk.CycleState) (*cpuOnly, bool) {
	d, err := cs.Read(cpuOnlyKey)
	if err != nil {
		return nil, false
	}
	c, ok := d.(*cpuOnly)
	return c, ok
}

// scoreCPUOnly is a CPU-only pod's raw score on a node, score.CPUOnlyRaw:
// minus the GPU capacity its CPU and memory strand there, in steps of
// score.CPUOnlyResolution, then minus the node's free GPUs. A node without
// a usable GPU view (no GPUs, or none gpupack can place on) strands none
// and has no free GPU for gpupack's pods.
func (pl *GPUPack) scoreCPUOnly(c *cpuOnly, ni fwk.NodeInfo) int64 {
	view, err := pl.cache.ViewNodeInfo(ni)
	if err != nil {
		return score.CPUOnlyRaw(0, 0)
	}
	return score.CPUOnlyRaw(score.ResourceDelta(view.State, c.cpuMilli, c.memMiB, pl.workload.Distribution()), view.State.FreeCapacity())
}

// normalizeCPUOnly is NormalizeScore for CPU-only pods: score.Rank's
// Normalize over the raws (no link quality).
func normalizeCPUOnly(scores fwk.NodeScoreList) {
	ranked := make([]score.Ranked, len(scores))
	for i, ns := range scores {
		ranked[i].Raw = ns.Score
	}
	cpuOnlyRank.Normalize(ranked)
	for i := range scores {
		scores[i].Score = ranked[i].Score
	}
}
