package config

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/score"
)

// TaskType is the prior entry as the task type pkg/score learns and weighs.
// An unknown Kind is an error; the rest is score.TaskType.Validate's. A
// shared entry's count of 1 (one share of one GPU, as a user may write it)
// is dropped: the task types pkg/score learns from shared pods have none,
// and the prior's type must be the same to be learned on.
func (p TaskTypeWeight) TaskType() (score.TaskType, error) {
	t := score.TaskType{Count: int(p.Count), Milli: int(p.Milli), MIGProfile: p.MIGProfile, Model: p.Model}
	switch p.Kind {
	case TaskWhole:
		t.Kind = score.KindWhole
	case TaskShared:
		t.Kind = score.KindShared
		if t.Count == 1 {
			t.Count = 0
		}
	case TaskMIG:
		t.Kind = score.KindMIG
	default:
		return t, fmt.Errorf("kind %q: want %s, %s or %s", p.Kind, TaskWhole, TaskShared, TaskMIG)
	}
	return t, nil
}

// Options are the workload options of these args, as the plugin learns
// with them: the prior (an entry whose TaskType fails is an error naming
// it, prior[i]), its weight, the half-life and pinning; the snapshot pacing
// is score's (score.PluginWorkloadOptions, which gpusim's online mode
// learns with too).
func (w *WorkloadArgs) Options() (score.WorkloadOptions, error) {
	prior := make([]score.Weighted, 0, len(w.Prior))
	for i, p := range w.Prior {
		t, err := p.TaskType()
		if err != nil {
			return score.WorkloadOptions{}, fmt.Errorf("prior[%d]: %w", i, err)
		}
		prior = append(prior, score.Weighted{Type: t, Weight: float64(p.Weight)})
	}
	wo := score.PluginWorkloadOptions()
	wo.Prior, wo.PriorWeight = prior, float64(w.PriorWeight)
	wo.HalfLife, wo.Pin = float64(w.HalfLife), w.Pin
	return wo, nil
}
