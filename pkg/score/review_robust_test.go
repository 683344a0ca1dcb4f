package score_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// TestHugeRequestOnOvercommittedNode: a node whose pods request more CPU
// than it has (free CPU negative: static pods, pods bound by another
// scheduler) and a pod asking an absurd CPU (a valid Request: any
// non-negative int64). Free CPU minus the request used to wrap around
// int64 (-4000 - MaxInt64 = MaxInt64 - 3999), so the pod looked as if it
// gave the node CPU: ResourceDelta, documented >= 0, was -4 and the
// choice's FragDelta -4, the best gain a 4-GPU node can show.
//
// The node: 4 free T4s; the workload one type, 1 GPU with 4 cores. With
// -4000m free not one task fits, so all 4 free GPUs are fragment
// (Fragmentation 4) before and, CPU taken, still; the choice's 1 GPU
// leaves 3 free, all fragment: FragDelta 3 - 4 = -1, ResourceDelta 0.
func TestHugeRequestOnOvercommittedNode(t *testing.T) {
	d, err := score.NewDistribution([]score.Weighted{
		{Type: score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 4000, MemoryMiB: 1024}, Weight: 1}})
	require.NoError(t, err)
	tests := []struct {
		name             string
		freeCPU, freeMem int64
		cpu, mem         int64
	}{
		{"CPU overcommitted, huge CPU request", -4000, 1 << 20, math.MaxInt64, 0},
		{"memory overcommitted, huge memory request", 1 << 20, -1024, 0, math.MaxInt64},
		{"both at the int64 floor", math.MinInt64, math.MinInt64, math.MaxInt64, math.MaxInt64},
		{"no overflow: a plain request", -4000, 1 << 20, 4000, 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := score.NewState(fixture.PCIe("p", "T4", 4))
			s.SetFree(tc.freeCPU, tc.freeMem)
			require.InDelta(t, 4, score.Fragmentation(s, d), 1e-9, "no task fits: all 4 free GPUs are fragment")
			require.InDelta(t, 0, score.ResourceDelta(s, tc.cpu, tc.mem, d), 1e-9)
			c, ok := score.Choose(s, score.Request{Kind: score.KindWhole, Count: 1, CPUMilli: tc.cpu, MemoryMiB: tc.mem}, d)
			require.True(t, ok)
			require.InDelta(t, -1, c.FragDelta, 1e-9, "3 GPUs left free, all fragment: 3 - 4")
			require.InDelta(t, 0, score.FedCapacity(s, d), 1e-9)
		})
	}
}

// TestNewDistributionOverflowingTotal: finite weights whose sum passes
// float64's range (1e308 + 1e308 = +Inf) used to give a Distribution whose
// probabilities are 1e308 / Inf = 0 for each type, or Inf / Inf = NaN for
// one type named twice, and every node's Fragmentation NaN. They are
// refused, as a zero total is; weights that merely reach the range work.
func TestNewDistributionOverflowingTotal(t *testing.T) {
	one := score.TaskType{Kind: score.KindWhole, Count: 1}
	two := score.TaskType{Kind: score.KindWhole, Count: 2}
	tests := []struct {
		name string
		ws   []score.Weighted
		// p is the expected distribution, nil when refused.
		p []float64
	}{
		{"one type twice, sum overflows", []score.Weighted{{Type: one, Weight: 1e308}, {Type: one, Weight: 1e308}}, nil},
		{"two types, sum overflows", []score.Weighted{{Type: one, Weight: 1e308}, {Type: two, Weight: 1e308}}, nil},
		// 8e307 + 8e307 = 1.6e308 < MaxFloat64 (1.8e308): 1/2 each.
		{"two types, sum within range", []score.Weighted{{Type: one, Weight: 8e307}, {Type: two, Weight: 8e307}}, []float64{0.5, 0.5}},
		{"the largest weight alone", []score.Weighted{{Type: one, Weight: math.MaxFloat64}}, []float64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := score.NewDistribution(tc.ws)
			if tc.p == nil {
				require.ErrorContains(t, err, "overflows")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.p, d.P)
			f := score.Fragmentation(score.NewState(fixture.PCIe("p", "T4", 4)), d)
			require.False(t, math.IsNaN(f))
		})
	}
}
