package baseline

// BestFitName is the best-fit policy's name.
const BestFitName = "best-fit"

// BestFit (the artifact's BestFitScore) prefers the node left with the least
// CPU and GPU, each over the largest node's capacity, weighted 1/2:
//
//	score = trunc(MaxScore x (1 - (0.5 (cpuFree - cpu)/MaxSpecCPU + 0.5 (gpuFree - gpu)/MaxSpecGPU)))
//
// (its min-max NormalizeScore keeps the order and the ties of scores within
// [0, 100], so it is left out).
type BestFit struct{}

var _ Policy = BestFit{}

// Name implements Policy.
func (BestFit) Name() string { return BestFitName }

// Score implements Policy.
func (BestFit) Score(n *Node, t *Task) int64 {
	// The artifact's order of operations, so truncation agrees.
	left := float64(n.CPUFree-t.CPUMilli)/MaxSpecCPU*0.5 + float64(n.GPUFree-t.Demand())/MaxSpecGPU*0.5
	return int64((1 - left) * MaxScore)
}

// TieBreak implements Policy.
func (BestFit) TieBreak() TieBreak { return TieFirst }

// GPUSelection implements Policy.
func (BestFit) GPUSelection() GPUSelection { return SelectBestFit }
