package score

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestObserveBoundsDistinctTypes streams task types that are all distinct
// after bucketing into the plugin's Workload (a cluster whose pods each
// ask an odd share with their own CPU: 1000 shares x 6 CPU buckets, and
// model names with odd characters). The decayed histogram used to keep
// every type it had seen until the weights' rescale (inc > 1e100, after
// HalfLife x log2(1e100) = 332,193 observations at the default half-life),
// and Observe re-sorted all of them (rekey, candidate) on every new type:
// 5,000 distinct pods took 6.5 s, 15,000 took 50 s, each Observe in the
// plugin's Reserve costing milliseconds. The histogram now holds at most
// histTypesPerMaxType x MaxTypes = 8 x 128 = 1024 types, evicting the
// lightest (the least recently and least often seen).
func TestObserveBoundsDistinctTypes(t *testing.T) {
	tests := []struct {
		name string
		opts WorkloadOptions
		// want is the bound on the histogram's types.
		want int
	}{
		{"plugin defaults: 8 x 128", PluginWorkloadOptions(), 1024},
		{"max types 4: 8 x 4", WorkloadOptions{MaxTypes: 4, Tolerance: DefaultTolerance}, 32},
		// 8 x MaxInt overflows: the bound saturates, nothing is evicted
		// (all 3000 kept, none of them dropped by an overflowed bound).
		{"max types MaxInt: no eviction", WorkloadOptions{MaxTypes: math.MaxInt, Tolerance: DefaultTolerance}, 3000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWorkload(tc.opts)
			require.NoError(t, err)
			const n = 3000
			for i := range n {
				tt := TaskType{Kind: KindShared, Milli: 1 + i%1000, CPUMilli: int64(1000 << (i / 1000))}
				if i%7 == 0 {
					tt.Model = fmt.Sprintf("m|x y\x00%d", i)
				}
				w.Observe(tt)
			}
			w.mu.Lock()
			// Keys inserted and deleted in place are what sorting them
			// afresh gives.
			inPlace := slices.Clone(w.keys)
			w.rekey()
			require.Equal(t, w.keys, inPlace)
			hist, keys, sum := len(w.hist), len(w.keys), w.sum
			var got float64
			for _, v := range w.hist {
				got += v
			}
			w.mu.Unlock()
			require.Equal(t, min(n, tc.want), hist, "histogram types after %d distinct observations", n)
			// keys are the prior's 8 types and the histogram's (none of
			// the stream's is the prior's).
			require.Equal(t, hist+len(w.prior.Types), keys)
			// The sum tracks what is left: evicted weights are taken out.
			require.InDelta(t, got, sum, 1e-9*sum)
			d := w.Distribution()
			require.LessOrEqual(t, len(d.Types), w.maxTypes, "a snapshot keeps at most MaxTypes types")
			var p float64
			for _, x := range d.P {
				p += x
			}
			require.InDelta(t, 1, p, 1e-9)
		})
	}
}
