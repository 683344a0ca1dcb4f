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
// scores CPU-only pods too: Score is pkg/score's ResourceDelta, the GPU
// capacity the pod's CPU and memory would strand on the node, ranked by
// score.Rank at score.CPUOnlyResolution, so the pod goes where it strands
// least (a node whose GPUs are all in use, one with CPU to spare for its
// GPUs, or a node without GPUs). Filter is skipped (PreFilter returns Skip;
// kube-scheduler's NodeResourcesFit filters CPU and memory), as are
// Reserve and Bind. gpusim places CPU-only tasks with the same functions.

const cpuOnlyKey fwk.StateKey = Name + "/cpu-only"

// cpuOnly is a CPU-only pod's CPU (milli) and memory (MiB).
type cpuOnly struct{ cpuMilli, memMiB int64 }

// Clone shares the (immutable) state.
func (c *cpuOnly) Clone() fwk.StateData { return c }

// cpuOnlyRank ranks CPU-only pods' nodes.
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

// scoreCPUOnly is a CPU-only pod's raw score on a node: minus the GPU
// capacity its CPU and memory strand there, in steps of
// score.CPUOnlyResolution. A node without a usable GPU view strands none.
func (pl *GPUPack) scoreCPUOnly(c *cpuOnly, ni fwk.NodeInfo) int64 {
	view, err := pl.cache.ViewNodeInfo(ni)
	if err != nil {
		return cpuOnlyRank.Raw(0)
	}
	return cpuOnlyRank.Raw(score.ResourceDelta(view.State, c.cpuMilli, c.memMiB, pl.workload.Distribution()))
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
