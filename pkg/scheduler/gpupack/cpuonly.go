package gpupack

import (
	"math"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
)

// Pods without GPU requests. A CPU-only pod on a GPU node takes CPU and
// memory that GPU pods need: with too little left, the node's free GPUs
// can no longer be used (pkg/score counts them as stranded, per task type,
// beyond the tasks the free CPU and memory still hold). GPUPack therefore
// scores CPU-only pods too: Score is pkg/score's CPUOnlyRaw of
// ResourceDelta, the GPU capacity of the tasks of each type the pod's CPU
// and memory would take away on the node (at score.CPUOnlyResolution), and,
// between nodes that strand the same, of the free GPU capacity the node's
// CPU and memory still feed (FedCapacity), so the pod goes where it strands
// least, and there first to a node without GPUs, whose GPUs are all in use
// or whose free GPUs its CPU no longer feeds, then to one with CPU to spare
// for its GPUs. Filter is skipped (PreFilter returns Skip;
// kube-scheduler's NodeResourcesFit filters CPU and memory) unless the pod
// lists a GPU resource at 0 (zero.go); Reserve and Bind do nothing. gpusim places CPU-only tasks with the same functions.

const cpuOnlyKey fwk.StateKey = Name + "/cpu-only"

// cpuOnly is a CPU-only pod's CPU (milli) and memory (MiB).
type cpuOnly struct{ cpuMilli, memMiB int64 }

// Clone shares the (immutable) state.
func (c *cpuOnly) Clone() fwk.StateData { return c }

// cpuOnlyRank normalizes CPU-only pods' raws (score.CPUOnlyRaw).
var cpuOnlyRank = score.Rank{Resolution: score.CPUOnlyResolution}

// preFilterCPUOnly records a CPU-only pod's CPU and memory for Score and
// skips Filter, unless the pod lists a GPU resource at 0 (zeros: Filter
// checks the node serves it with a healthy device, zero.go). A pod that
// asks for neither CPU nor memory is not scored either.
func preFilterCPUOnly(cs fwk.CycleState, pod *v1.Pod, zeros bool) *fwk.Status {
	if cpu, mem := podCPUMemory(pod); cpu > 0 || mem > 0 {
		cs.Write(cpuOnlyKey, &cpuOnly{cpuMilli: cpu, memMiB: mem})
	}
	if zeros {
		return nil
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
// score.CPUOnlyResolution, then minus the free GPU capacity the node's CPU
// and memory still feed (score.FedCapacity). A node without GPUs strands
// none and feeds none. A GPU node gpupack cannot see (its topology
// annotation is malformed, its in-use report unreadable, or its device
// plugin has not published yet while it has GPU resources) strands none
// that gpupack knows of but is taken as feeding the most (unseenGPUNode):
// CPU-only pods go there last among the nodes that strand nothing, so
// that they do not pile onto a GPU node whose GPUs appear later.
func (pl *GPUPack) scoreCPUOnly(c *cpuOnly, ni fwk.NodeInfo) int64 {
	view, err := pl.cache.ViewNodeInfo(ni)
	if err != nil {
		if pl.unseenGPUNode(ni.Node()) {
			return score.CPUOnlyRaw(0, math.Inf(1))
		}
		return score.CPUOnlyRaw(0, 0)
	}
	d := pl.workload.Distribution()
	return score.CPUOnlyRaw(score.ResourceDelta(view.State, c.cpuMilli, c.memMiB, d), score.FedCapacity(view.State, d))
}

// unseenGPUNode reports whether node has GPUs gpupack has no view of: a
// topology annotation it could not use, or allocatable resources the
// plugin places (isGPUResource) without one.
func (pl *GPUPack) unseenGPUNode(node *v1.Node) bool {
	if node == nil {
		return false
	}
	if _, ok := node.Annotations[protocol.TopologyAnnotation]; ok {
		return true
	}
	for name, q := range node.Status.Allocatable {
		if !q.IsZero() && pl.isGPUResource(string(name)) {
			return true
		}
	}
	return false
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
