package baseline

import (
	"fmt"
	"math"

	"github.com/gpupack/gpupack/pkg/topology"
)

// FGDName is the FGD policy's name.
const FGDName = "fgd"

// FGD is the FGD paper's policy as its artifact's FGDScore plugin runs it
// (Weng et al., ATC'23; hkust-adsl/kubernetes-scheduler-simulator,
// pkg/simulator/plugin/fgd_score.go), with the artifact's experiment
// settings (dimExtMethod share, gpuSelMethod FGDScore, no NormalizeScore):
//
//   - The workload is the pod list's typical pods (TypicalPods).
//   - A node's fragmentation is FragAmount over them.
//   - A task's score on a node is the fragmentation's decrease, squashed:
//     trunc(MaxScore x sigmoid((before - after)/1000)); 50 means no change.
//   - A share goes on the GPU whose use gives the highest score (the
//     lowest-indexed on ties, the integer score compared); whole GPUs are
//     the lowest-indexed idle ones; after-states take the task's CPU too.
//   - Ties between nodes: TieFirst (the artifact's scheduler).
//
// It is not in the registry: it needs the pod list (NewFGD), and it picks
// devices by its own score (Place), not by a GPUSelection.
type FGD struct {
	pods   []TypicalPod
	access map[string][]bool
}

// NewFGD is FGD over the typical pods, for nodes of the given GPU models
// (others are served too, more slowly).
func NewFGD(pods []TypicalPod, models []string) (*FGD, error) {
	if len(pods) == 0 {
		return nil, fmt.Errorf("fgd: no typical pods")
	}
	for _, p := range pods {
		if p.Freq < 0 || p.Freq > 1 || math.IsNaN(p.Freq) {
			return nil, fmt.Errorf("fgd: typical pod %+v: frequency not in [0, 1]", p)
		}
		if p.NumGPU < 0 || p.GPUMilli < 0 || p.CPUMilli < 0 || (p.NumGPU == 0) != (p.GPUMilli == 0) {
			return nil, fmt.Errorf("fgd: typical pod %+v: bad resources", p)
		}
	}
	f := &FGD{pods: pods, access: map[string][]bool{}}
	for _, m := range models {
		f.access[m] = f.accessOf(m)
	}
	return f, nil
}

// Name is the policy's name.
func (*FGD) Name() string { return FGDName }

// TieBreak is how the artifact's scheduler breaks ties.
func (*FGD) TieBreak() TieBreak { return TieFirst }

// Pods is the typical pods.
func (f *FGD) Pods() []TypicalPod { return f.pods }

func (f *FGD) accessOf(model string) []bool {
	a := make([]bool, len(f.pods))
	for k, p := range f.pods {
		a[k] = Accessible(model, p.Spec)
	}
	return a
}

func (f *FGD) accessFor(model string) []bool {
	if a, ok := f.access[model]; ok {
		return a
	}
	return f.accessOf(model)
}

// Frag is n's fragmentation (FragAmount) in milli-GPU.
func (f *FGD) Frag(n *Node) float64 {
	return FragAmount(f.pods, f.accessFor(n.Model), n.CPUFree, n.GPUs)
}

// fgdScore is the artifact's score of a fragmentation change.
func fgdScore(before, after float64) int64 {
	x := (before - after) / 1000
	return int64(1.0 / (1.0 + math.Exp(-x)) * float64(MaxScore))
}

// Place scores t on the feasible node n whose fragmentation is before
// (Frag(n), passed in so callers can keep it while n is unchanged) and picks
// its devices; ok is false when n cannot hold t's GPUs.
func (f *FGD) Place(n *Node, t *Task, before float64) (score int64, p Placement, ok bool) {
	p.Share = -1
	access := f.accessFor(n.Model)
	cpu := n.CPUFree - t.CPUMilli
	var buf [topology.MaxGPUs]int32
	gpus := buf[:copy(buf[:], n.GPUs)]
	switch {
	case t.NumGPU <= 0:
		return fgdScore(before, FragAmount(f.pods, access, cpu, gpus)), p, true
	case t.Shared():
		for j, g := range n.GPUs {
			if int64(g) < t.GPUMilli || seenBefore(n.GPUs[:j], g) {
				// Same free share as an earlier GPU: same after-state, same
				// score, and the earlier GPU wins the tie.
				continue
			}
			gpus[j] -= int32(t.GPUMilli)
			s := fgdScore(before, FragAmount(f.pods, access, cpu, gpus))
			gpus[j] = g
			if p.Share < 0 || s > score {
				score, p.Share = s, j
			}
		}
		return score, p, p.Share >= 0
	}
	p.Whole = IdleOf(n.GPUs, t.NumGPU)
	if p.Whole.Len() != t.NumGPU {
		return 0, p, false
	}
	for i := range p.Whole.All() {
		gpus[i] -= int32(t.GPUMilli)
	}
	return fgdScore(before, FragAmount(f.pods, access, cpu, gpus)), p, true
}

func seenBefore(gpus []int32, g int32) bool {
	for _, h := range gpus {
		if h == g {
			return true
		}
	}
	return false
}
