package score_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/score/scoretest"
)

func TestBuckets(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{0, 0},
		{100, 125},     // one eighth of a core
		{1000, 1000},   // 8 units
		{1100, 1250},   // 9 units: h 8 -> 10 units
		{12000, 12000}, // 96 units: h 64, 1.5 h = 96
		{12100, 14000}, // 97 units -> 1.75 h = 112 units
		{33000, 40000}, // 264 units: h 256 -> 1.25 h = 320 units
	} {
		require.Equal(t, tc.want, score.BucketCPU(tc.in), "cpu %d", tc.in)
	}
	for _, tc := range []struct{ in, want int64 }{
		{0, 0}, {7, 7}, {1000, 1024}, {1025, 1280}, {16384, 16384}, {16385, 20480}, {65000, 65536},
	} {
		require.Equal(t, tc.want, score.BucketMemory(tc.in), "mem %d", tc.in)
	}
}

// A node whose free CPU (or memory) cannot hold a task type counts all its
// free GPUs as fragment for that type (FGD's "lack CPU" case).
func TestFragmentationCPUAware(t *testing.T) {
	node := scoretest.PCIe("n", "T4", 2) // two free T4s
	big := score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 4000, MemoryMiB: 8192}
	small := score.TaskType{Kind: score.KindWhole, Count: 1}
	d, err := score.NewDistribution([]score.Weighted{{Type: big, Weight: 1}, {Type: small, Weight: 1}})
	require.NoError(t, err)
	s := score.NewState(node)
	// Free CPU and memory not known: every type fits, F = 0.
	require.InDelta(t, 0, score.Fragmentation(s, d), 1e-9)
	s.SetFree(8000, 16384)
	require.InDelta(t, 0, score.Fragmentation(s, d), 1e-9)
	// 2 cores free: big cannot run: 0.5 x 2 free GPUs = 1.
	s.SetFree(2000, 16384)
	require.InDelta(t, 1, score.Fragmentation(s, d), 1e-9)
	// Memory short instead: the same.
	s.SetFree(8000, 4096)
	require.InDelta(t, 1, score.Fragmentation(s, d), 1e-9)

	// A 1-GPU pod taking 6 of 8 free cores: before F = 0; after, 1 GPU
	// free and 2 cores: big cannot run: 0.5 x 1 = 0.5. FragDelta +0.5.
	s.SetFree(8000, 16384)
	req := score.Request{Kind: score.KindWhole, Count: 1, CPUMilli: 6000}
	c, ok := score.ChooseState(s, req, d)
	require.True(t, ok)
	require.InDelta(t, 0.5, c.FragDelta, 1e-9)
	// The same pod without CPU: F stays 0.
	c, ok = score.ChooseState(s, score.Request{Kind: score.KindWhole, Count: 1}, d)
	require.True(t, ok)
	require.InDelta(t, 0, c.FragDelta, 1e-9)
	// The memo keys on what fits: the same GPU usage with 2 cores free
	// (F 1 before, 0.5 x 1 after) answers -0.5, not the 0 above.
	s2 := score.NewState(node)
	s2.SetFree(2000, 16384)
	c, ok = score.ChooseState(s2, score.Request{Kind: score.KindWhole, Count: 1}, d)
	require.True(t, ok)
	require.InDelta(t, -0.5, c.FragDelta, 1e-9)

	// A CPU-only task of 6 cores on the 8-core node: F 0 -> 0.5 x 2 = 1.
	require.InDelta(t, 1, score.ResourceDelta(s, 6000, 0, d), 1e-9)
	require.InDelta(t, 0, score.ResourceDelta(score.NewState(node), 6000, 0, d), 1e-9, "unknown free CPU: no change")

	// Bad input.
	require.Error(t, score.Request{Kind: score.KindWhole, Count: 1, CPUMilli: -1}.Validate())
	require.Error(t, score.TaskType{Kind: score.KindWhole, Count: 1, MemoryMiB: -1}.Validate())
}

func TestObserveBucketsCPUMemory(t *testing.T) {
	w, err := score.NewWorkload(score.WorkloadOptions{Prior: []score.Weighted{{Type: score.TaskType{Kind: score.KindWhole, Count: 1}, Weight: 1}}, PriorWeight: 1})
	require.NoError(t, err)
	w.Observe(score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 12100, MemoryMiB: 1025})
	w.Observe(score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 13000, MemoryMiB: 1100})
	d := w.Distribution()
	// Both land in one type: 14 cores (12100 -> 14000, 13000 -> 14000) and
	// 1280 MiB; with the prior, 2 types.
	require.Len(t, d.Types, 2)
	require.Contains(t, d.Types, score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 14000, MemoryMiB: 1280})
}
