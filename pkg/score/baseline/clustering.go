package baseline

// GPUClusteringName is the GPU clustering policy's name.
const GPUClusteringName = "gpu-clustering"

// GPUClustering (the artifact's GpuClusteringScore) keeps tasks of one
// kind (a share, 1 GPU, 2 GPUs, ...: Task.Kind) together. With
// used = trunc(MaxScore/4 x (MaxSpecGPU - gpuFree)/MaxSpecGPU):
//
//	node runs only the task's kind        75 + used
//	node runs it and other kinds          50 + used
//	idle node (no GPU task)               25 + used
//	node runs other kinds only                 used
//
// CPU-only tasks score 0 everywhere (the node order decides).
type GPUClustering struct{}

var _ Policy = GPUClustering{}

// Name implements Policy.
func (GPUClustering) Name() string { return GPUClusteringName }

// Score implements Policy.
func (GPUClustering) Score(n *Node, t *Task) int64 {
	k := t.Kind()
	if k == 0 {
		return 0
	}
	used := int64(MaxScore/4) * (MaxSpecGPU - n.GPUFree) / MaxSpecGPU
	switch {
	case n.Kinds == k:
		return used + MaxScore*3/4
	case n.Kinds&k != 0:
		return used + MaxScore*2/4
	case n.Kinds == 0:
		return used + MaxScore/4
	}
	return used
}

// TieBreak implements Policy.
func (GPUClustering) TieBreak() TieBreak { return TieFirst }

// GPUSelection implements Policy.
func (GPUClustering) GPUSelection() GPUSelection { return SelectBestFit }
