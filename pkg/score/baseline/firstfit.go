package baseline

// FirstFitName is the first-fit policy's name.
const FirstFitName = "first-fit"

// FirstFit places a task on the first feasible node of the run's node
// order (the artifact's FirstFitScore scores every node alike and its
// scheduler takes the smallest node name).
type FirstFit struct{}

var _ Policy = FirstFit{}

// Name implements Policy.
func (FirstFit) Name() string { return FirstFitName }

// Score implements Policy: every node alike, the node order decides.
func (FirstFit) Score(*Node, *Task) int64 { return 0 }

// TieBreak implements Policy.
func (FirstFit) TieBreak() TieBreak { return TieFirst }

// GPUSelection implements Policy.
func (FirstFit) GPUSelection() GPUSelection { return SelectBestFit }
