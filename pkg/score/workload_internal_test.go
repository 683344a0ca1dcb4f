package score

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestObserveFastPathPublishesTheSameSnapshots feeds the same random
// streams of task types to a Workload that builds every candidate snapshot
// (slow, the reference) and to one that computes the candidate's
// probabilities in place (candidate, distanceTo): after every observation
// both must hold the same snapshot, bit for bit, published at the same
// observations. The options cover the paths: trimming to few types, the
// rescale that drops types (half-life 1), tolerance 0 (publish always).
func TestObserveFastPathPublishesTheSameSnapshots(t *testing.T) {
	tests := []struct {
		name  string
		opts  WorkloadOptions
		types int
	}{
		{"plugin defaults, few types", PluginWorkloadOptions(), 4},
		{"plugin defaults, many types", PluginWorkloadOptions(), 90},
		{"trimmed to 16 types", WorkloadOptions{MaxTypes: 16, Tolerance: DefaultTolerance}, 40},
		{"trimmed, prior larger than max", WorkloadOptions{MaxTypes: 4, Tolerance: 0.005}, 10},
		{"fast decay drops types", WorkloadOptions{HalfLife: 1, PriorWeight: 1, Tolerance: 0.02}, 12},
		{"no tolerance", WorkloadOptions{}, 6},
		{"pinned", WorkloadOptions{Pin: true, Tolerance: DefaultTolerance}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fast, err := NewWorkload(tc.opts)
			require.NoError(t, err)
			slow, err := NewWorkload(tc.opts)
			require.NoError(t, err)
			slow.slow = true
			rng := rand.New(rand.NewPCG(7, uint64(tc.types)))
			types := make([]TaskType, tc.types)
			for i := range types {
				switch i % 3 {
				case 0:
					types[i] = TaskType{Kind: KindWhole, Count: 1 << rng.IntN(4), CPUMilli: rng.Int64N(64000)}
				case 1:
					types[i] = TaskType{Kind: KindShared, Milli: 1 + rng.IntN(1000), MemoryMiB: rng.Int64N(1 << 17)}
				default:
					types[i] = TaskType{Kind: KindWhole, Count: 1, Model: "V100", CPUMilli: int64(1000 * i)}
				}
			}
			published := 0
			for i := range 3000 {
				// A skewed mix that drifts: the snapshot moves now and then.
				k := min(len(types)-1, int(rng.ExpFloat64()*float64(1+i/500)))
				before := fast.Distribution()
				fast.Observe(types[k])
				slow.Observe(types[k])
				got, want := fast.Distribution(), slow.Distribution()
				require.Equal(t, want.Types, got.Types, "observation %d", i)
				require.Equal(t, want.P, got.P, "observation %d", i)
				if got != before {
					published++
				}
			}
			if !tc.opts.Pin {
				require.Positive(t, published, "the stream must move the snapshot")
			}
		})
	}
}

// TestLearningTransientSnapshots bounds what the plugin's default
// tolerance trades: a snapshot never lags the learned blend by
// DefaultTolerance or more (total variation), and learning a new mix from
// the prior publishes few snapshots, each of which makes every node plan
// again under it (the last plans and the choice memo are per snapshot).
// The stream is test/throughput's: whole 1, 2 and 4 GPUs at 70/20/10%, one
// core and 1 GiB each, none of them in DefaultPrior. Moving from the prior
// to the mix is a total variation distance of at most 1, so at most
// 1/0.05 = 20 snapshots for the move, plus the mix's own sampling noise
// (its probabilities wander by about sqrt(p(1-p)/n), under 0.05 in total
// once n passes a few hundred): at most 25 in the first 2,000 observations
// and at most 5 in the next 2,000. At the tolerance of 0.01 used before
// (2026-12), the first 2,000 made 93.
func TestLearningTransientSnapshots(t *testing.T) {
	w, err := NewWorkload(PluginWorkloadOptions())
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	counts := []int{1, 1, 1, 1, 1, 1, 1, 2, 2, 4}
	var published [2]int
	for i := range 4000 {
		before := w.Distribution()
		w.Observe(TaskType{Kind: KindWhole, Count: counts[rng.IntN(len(counts))], CPUMilli: 1000, MemoryMiB: 1024})
		after := w.Distribution()
		if after != before {
			published[i/2000]++
		}
		lag := distance(w.trim(w.blend()), after)
		require.Less(t, lag, DefaultTolerance, "observation %d: the snapshot lags the blend by %v", i, lag)
	}
	require.Positive(t, published[0], "the mix must reach the snapshot")
	require.LessOrEqual(t, published[0], 25, "snapshots while learning the mix")
	require.LessOrEqual(t, published[1], 5, "snapshots once it is learned")
}
