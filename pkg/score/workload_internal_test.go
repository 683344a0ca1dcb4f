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
