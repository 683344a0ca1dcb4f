package baseline

import "github.com/gpupack/gpupack/pkg/topology"

// GPUPackingName is the GPU packing policy's name.
const GPUPackingName = "gpu-packing"

// GPUPacking (the artifact's GpuPackingScore) ranks nodes in three tiers,
// taking the task's GPUs from the least free ones that hold it:
//
//	shares on partly used GPUs only   MaxScore - (sum over them of free x 100/1000)/10, at least 50
//	idle GPUs of a partly used node   MaxScore/2 - idle GPUs taken, at least MaxScore/3
//	an idle node                      max(MaxScore/3 - its GPUs, its GPUs)
//
// so partly used GPUs fill first (fuller first), then partly used nodes,
// and idle nodes last. CPU-only tasks score 0 everywhere (the node order
// decides).
type GPUPacking struct{}

var _ Policy = GPUPacking{}

// Name implements Policy.
func (GPUPacking) Name() string { return GPUPackingName }

// Score implements Policy.
func (GPUPacking) Score(n *Node, t *Task) int64 {
	if t.NumGPU <= 0 {
		return 0
	}
	if n.IdleGPUs == len(n.GPUs) {
		return max(MaxScore/3-int64(n.IdleGPUs), int64(n.IdleGPUs))
	}
	// The GPUs in increasing free share (lowest index first on ties), the
	// first t.NumGPU that hold t.GPUMilli.
	var taken uint64
	idleTaken := 0
	var freePct int64
	for range t.NumGPU {
		pick := -1
		for j, v := range n.GPUs {
			if taken&(1<<uint(j)) == 0 && int64(v) >= t.GPUMilli && (pick < 0 || v < n.GPUs[pick]) {
				pick = j
			}
		}
		if pick < 0 {
			return 0 // infeasible; the caller filters these out
		}
		taken |= 1 << uint(pick)
		if n.GPUs[pick] == topology.MilliPerGPU {
			idleTaken++
		}
		freePct += int64(n.GPUs[pick]) * 100 / topology.MilliPerGPU
	}
	if idleTaken > 0 {
		return max(MaxScore/2-int64(idleTaken), MaxScore/3)
	}
	return max(MaxScore-freePct/10, MaxScore/2)
}

// TieBreak implements Policy.
func (GPUPacking) TieBreak() TieBreak { return TieFirst }

// GPUSelection implements Policy.
func (GPUPacking) GPUSelection() GPUSelection { return SelectBestFit }
