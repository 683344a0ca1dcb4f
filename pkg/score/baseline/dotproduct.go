package baseline

// DotProductName is the dot-product policy's name.
const DotProductName = "dot-product"

// DotProduct is Tetris's alignment heuristic as the artifact runs it
// (DotProductScore with dimension "merge" and normalization "max"): the
// free vector (CPU, GPU) and the request, each over the largest node's
// capacity, and
//
//	score = trunc(MaxScore x (1 - <free, request>/2))
//
// so the node whose free resources align least with the request wins.
type DotProduct struct{}

var _ Policy = DotProduct{}

// Name implements Policy.
func (DotProduct) Name() string { return DotProductName }

// Score implements Policy.
func (DotProduct) Score(n *Node, t *Task) int64 {
	dot := float64(n.CPUFree)/MaxSpecCPU*(float64(t.CPUMilli)/MaxSpecCPU) +
		float64(n.GPUFree)/MaxSpecGPU*(float64(t.Demand())/MaxSpecGPU)
	return int64(MaxScore * (1 - dot/2))
}

// TieBreak implements Policy.
func (DotProduct) TieBreak() TieBreak { return TieFirst }

// GPUSelection implements Policy.
func (DotProduct) GPUSelection() GPUSelection { return SelectBestFit }
