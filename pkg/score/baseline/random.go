package baseline

// RandomName is the random policy's name.
const RandomName = "random"

// Random places a task on a feasible node drawn uniformly (the artifact's
// RandomScore draws one node in PreScore and scores it alone MaxScore) and a
// share on a random GPU that holds it (GPU selection "random").
type Random struct{}

var _ Policy = Random{}

// Name implements Policy.
func (Random) Name() string { return RandomName }

// Score implements Policy: every node alike, the tie draw decides.
func (Random) Score(*Node, *Task) int64 { return 0 }

// TieBreak implements Policy.
func (Random) TieBreak() TieBreak { return TieRandom }

// GPUSelection implements Policy.
func (Random) GPUSelection() GPUSelection { return SelectRandom }
