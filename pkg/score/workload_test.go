package score_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
)

var (
	whole1 = score.TaskType{Kind: score.KindWhole, Count: 1}
	whole2 = score.TaskType{Kind: score.KindWhole, Count: 2}
	whole8 = score.TaskType{Kind: score.KindWhole, Count: 8}
	half   = score.TaskType{Kind: score.KindShared, Milli: 500}
)

func probs(d *score.Distribution) map[score.TaskType]float64 {
	m := map[score.TaskType]float64{}
	for i, t := range d.Types {
		m[t] = d.P[i]
	}
	return m
}

func requireProbs(t *testing.T, want map[score.TaskType]float64, d *score.Distribution) {
	t.Helper()
	requireProbsDelta(t, want, d, 1e-12)
}

func requireProbsDelta(t *testing.T, want map[score.TaskType]float64, d *score.Distribution, delta float64) {
	t.Helper()
	got := probs(d)
	require.Len(t, got, len(want), "types %v", d.Types)
	for tt, p := range want {
		require.InDelta(t, p, got[tt], delta, "p(%s)", tt)
	}
}

func TestWorkloadDecayAndPrior(t *testing.T) {
	tests := []struct {
		name    string
		opts    score.WorkloadOptions
		observe []score.TaskType
		want    map[score.TaskType]float64
		delta   float64 // 1e-12 when 0
	}{
		{
			// Half-life 1: each observation weighs twice the one before.
			// whole 1 gets 1, whole 2 gets 2; sum 3, next weight 4, so the
			// decayed count is 3/4: whole 1 = 1/3 * 3/4 = .25, whole 2 =
			// 2/3 * 3/4 = .5; the prior (whole 8) is worth 1. Total 1.75:
			// p = .25/1.75 = 1/7, .5/1.75 = 2/7, 1/1.75 = 4/7.
			name:    "decay",
			opts:    score.WorkloadOptions{Prior: []score.Weighted{{Type: whole8, Weight: 3}}, PriorWeight: 1, HalfLife: 1},
			observe: []score.TaskType{whole1, whole2},
			want:    map[score.TaskType]float64{whole1: 1.0 / 7, whole2: 2.0 / 7, whole8: 4.0 / 7},
		},
		{
			// No decay to speak of (half-life 1e9): 3 observations of
			// whole 1 are worth 3 (less 6 ln2/1e9 ~ 4e-9 of decay), the
			// prior (half/whole 8 at 1:1) 1: whole 1 = 3/4, the others 1/8
			// each, within 1e-9.
			name:    "prior weight",
			opts:    score.WorkloadOptions{Prior: []score.Weighted{{Type: half, Weight: 1}, {Type: whole8, Weight: 1}}, PriorWeight: 1, HalfLife: 1e9},
			observe: []score.TaskType{whole1, whole1, whole1},
			want:    map[score.TaskType]float64{whole1: 0.75, half: 0.125, whole8: 0.125},
			delta:   1e-9,
		},
		{
			name:    "pin ignores observations",
			opts:    score.WorkloadOptions{Prior: []score.Weighted{{Type: half, Weight: 1}, {Type: whole8, Weight: 3}}, Pin: true},
			observe: []score.TaskType{whole1, whole1},
			want:    map[score.TaskType]float64{half: 0.25, whole8: 0.75},
		},
		{
			name:    "invalid observations are ignored",
			opts:    score.WorkloadOptions{Prior: []score.Weighted{{Type: half, Weight: 1}}},
			observe: []score.TaskType{{Kind: score.KindWhole, Count: 0}, {Kind: score.KindShared, Milli: 2000}},
			want:    map[score.TaskType]float64{half: 1},
		},
		{
			// Tolerance .2, prior whole 1 worth 1, no decay to speak of.
			// whole 2 once: 1/2, 1/2, distance .5 from the prior: published.
			// Twice: 1/3, 2/3, distance 1/6 < .2 from 1/2, 1/2: kept back.
			// Three times: 1/4, 3/4, distance 1/4: published.
			name:    "tolerance: two observations",
			opts:    score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 1}}, PriorWeight: 1, HalfLife: 1e9, Tolerance: 0.2},
			observe: []score.TaskType{whole2, whole2},
			want:    map[score.TaskType]float64{whole1: 0.5, whole2: 0.5},
			delta:   1e-8,
		},
		{
			name:    "tolerance: three observations",
			opts:    score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 1}}, PriorWeight: 1, HalfLife: 1e9, Tolerance: 0.2},
			observe: []score.TaskType{whole2, whole2, whole2},
			want:    map[score.TaskType]float64{whole1: 0.25, whole2: 0.75},
			delta:   1e-8,
		},
		{
			// Tolerance .2, interval 3, max lag .6, prior whole 1 worth 1.
			// whole 2 once: 1/2, 1/2, distance .5 >= .2 but 1 observation
			// since the snapshot < 3 and .5 < .6: kept back.
			name: "interval: held back",
			opts: score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 1}}, PriorWeight: 1, HalfLife: 1e9,
				Tolerance: 0.2, SnapshotInterval: 3, MaxLag: 0.6},
			observe: []score.TaskType{whole2},
			want:    map[score.TaskType]float64{whole1: 1},
		},
		{
			// Twice: 1/3, 2/3, distance 2/3 >= the max lag .6: published
			// within the interval.
			name: "interval: max lag reached",
			opts: score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 1}}, PriorWeight: 1, HalfLife: 1e9,
				Tolerance: 0.2, SnapshotInterval: 3, MaxLag: 0.6},
			observe: []score.TaskType{whole2, whole2},
			want:    map[score.TaskType]float64{whole1: 1.0 / 3, whole2: 2.0 / 3},
			delta:   1e-8,
		},
		{
			// Max lag 0.9, never reached: whole 2 (weights 1:1, distance
			// 1/2 from the prior), whole 1 (2:1, distance 1/3), whole 2
			// (2:2, distance 1/2): the third observation ends the interval
			// and publishes 1/2, 1/2.
			name: "interval: published once it has passed",
			opts: score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 1}}, PriorWeight: 1, HalfLife: 1e9,
				Tolerance: 0.2, SnapshotInterval: 3, MaxLag: 0.9},
			observe: []score.TaskType{whole2, whole1, whole2},
			want:    map[score.TaskType]float64{whole1: 0.5, whole2: 0.5},
			delta:   1e-8,
		},
		{
			// MaxTypes 2 keeps the 2 most popular, renormalized: prior
			// 5:3:2 -> whole 1 .5/.8 = .625, whole 2 .3/.8 = .375.
			name: "max types",
			opts: score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 5}, {Type: whole2, Weight: 3}, {Type: half, Weight: 2}}, MaxTypes: 2},
			want: map[score.TaskType]float64{whole1: 0.625, whole2: 0.375},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := score.NewWorkload(tt.opts)
			require.NoError(t, err)
			for _, o := range tt.observe {
				w.Observe(o)
			}
			requireProbsDelta(t, tt.want, w.Distribution(), max(tt.delta, 1e-12))
		})
	}
}

func TestWorkloadDefaults(t *testing.T) {
	// No prior: DefaultPrior, whose weights add up to 1.
	w, err := score.NewWorkload(score.WorkloadOptions{})
	require.NoError(t, err)
	want := map[score.TaskType]float64{}
	var total float64
	for _, p := range score.DefaultPrior() {
		want[p.Type] += p.Weight
		total += p.Weight
	}
	require.InDelta(t, 1, total, 1e-12)
	requireProbs(t, want, w.Distribution())
	requireProbs(t, want, score.DefaultDistribution())
	// A nil Workload is the default distribution.
	var none *score.Workload
	require.Same(t, score.DefaultDistribution(), none.Distribution())
	none.Observe(whole1) // no panic
}

func TestWorkloadBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts score.WorkloadOptions
		want string
	}{
		{"negative prior weight", score.WorkloadOptions{PriorWeight: -1}, "prior weight -1 must be a finite number >= 0"},
		{"NaN prior weight", score.WorkloadOptions{PriorWeight: math.NaN()}, "prior weight NaN"},
		{"half-life below 1", score.WorkloadOptions{HalfLife: 0.5}, "half-life 0.5 must be a finite number >= 1"},
		{"infinite half-life", score.WorkloadOptions{HalfLife: math.Inf(1)}, "half-life +Inf"},
		{"tolerance 1", score.WorkloadOptions{Tolerance: 1}, "tolerance 1 must be in [0, 1)"},
		{"NaN tolerance", score.WorkloadOptions{Tolerance: math.NaN()}, "tolerance NaN must be in [0, 1)"},
		{"negative max types", score.WorkloadOptions{MaxTypes: -1}, "max types -1 must be positive"},
		{"negative snapshot interval", score.WorkloadOptions{Tolerance: 0.01, SnapshotInterval: -1}, "snapshot interval -1 must be >= 0"},
		{"max lag at the tolerance", score.WorkloadOptions{Tolerance: 0.05, MaxLag: 0.05}, "max lag 0.05 must be 0 or in (tolerance 0.05, 1]"},
		{"max lag above 1", score.WorkloadOptions{Tolerance: 0.01, MaxLag: 1.5}, "max lag 1.5 must be 0 or in (tolerance 0.01, 1]"},
		{"NaN max lag", score.WorkloadOptions{Tolerance: 0.01, MaxLag: math.NaN()}, "max lag NaN"},
		{"interval without tolerance", score.WorkloadOptions{SnapshotInterval: 10}, "snapshot interval and max lag need a tolerance > 0"},
		{"max lag without tolerance", score.WorkloadOptions{MaxLag: 0.5}, "snapshot interval and max lag need a tolerance > 0"},
		{"invalid prior type", score.WorkloadOptions{Prior: []score.Weighted{{Type: score.TaskType{Kind: score.KindShared, Milli: 0}, Weight: 1}}}, "prior: entry 0: shared task type: milli 0 not in 1..1000"},
		{"negative prior weight entry", score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 1}, {Type: whole2, Weight: -1}}}, "prior: entry 1 (whole:2): weight -1 must be a finite number >= 0"},
		{"zero total", score.WorkloadOptions{Prior: []score.Weighted{{Type: whole1, Weight: 0}}}, "total weight must be positive"},
		{"MIG without profile", score.WorkloadOptions{Prior: []score.Weighted{{Type: score.TaskType{Kind: score.KindMIG, Count: 1}, Weight: 1}}}, "MIG task type needs a profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := score.NewWorkload(tt.opts)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}
