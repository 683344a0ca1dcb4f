package score_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
)

func TestRankRaw(t *testing.T) {
	r := score.DefaultRank // resolution 0.05 GPU
	for _, tc := range []struct {
		delta float64
		want  int64
	}{
		{0, 0},
		{-0.1, 2},   // gain 0.1 / 0.05 = 2 steps
		{0.074, -1}, // -1.48 -> -1
		{0.076, -2}, // -1.52 -> -2
		{-0.024, 0}, // 0.48 -> 0: within the resolution
		{1, -20},    // 1 GPU more fragmented: 20 steps
		{1e12, -1 << 31},
		{math.NaN(), -1 << 31},
	} {
		require.Equal(t, tc.want, r.Raw(tc.delta), "delta %v", tc.delta)
	}
	// A coarser resolution: 0.074 / 0.1 = 0.74 -> -1.
	require.Equal(t, int64(-1), score.Rank{Resolution: 0.1}.Raw(0.074))
	// Zero Rank takes the defaults: 0.1 / 0.05 = 2.
	require.Equal(t, int64(-2), score.Rank{}.Raw(0.1))
}

func TestRankNormalize(t *testing.T) {
	scores := func(r score.Rank, ns []score.Ranked) []int64 {
		r.Normalize(ns)
		out := make([]int64, len(ns))
		for i, n := range ns {
			out[i] = n.Score
		}
		return out
	}
	t.Run("single GPU: a point per step behind the best", func(t *testing.T) {
		// best raw 0: 100 - (0 - raw), clipped at 0. A min-max over
		// 0..-150 would give 100, 99.3, 98 and 0, rounding the first three
		// to 100, 99, 98 and merging steps for larger spreads.
		got := scores(score.DefaultRank, []score.Ranked{{Raw: 0}, {Raw: -1}, {Raw: -3}, {Raw: -150}, {Raw: -100}})
		require.Equal(t, []int64{100, 99, 97, 0, 0}, got)
		// All negative: the best still gets 100; -7 is 2 behind -5.
		require.Equal(t, []int64{98, 100}, scores(score.DefaultRank, []score.Ranked{{Raw: -7}, {Raw: -5}}))
	})
	t.Run("multi GPU: topology blended by the weights", func(t *testing.T) {
		// Weights 1 and 2, unit 1 step.
		//   quad:      raw -10, ring 100 of ideal 100: v = -10 + 2 x 100 = 190
		//   scattered: raw   0, ring  50 of ideal 100: v =   0 + 2 x  50 = 100
		//   other:     raw  -4, ring 100 of ideal 100: v =  -4 + 200     = 196
		// best 196: 100, 100 - 6 = 94, 100 - 96 = 4.
		got := scores(score.DefaultRank, []score.Ranked{
			{Raw: -10, Ring: 100, Ideal: 100}, {Raw: 0, Ring: 50, Ideal: 100}, {Raw: -4, Ring: 100, Ideal: 100}})
		require.Equal(t, []int64{94, 4, 100}, got)
		// Past one NVLink lane, shapes do not compete: a node offering its
		// best NVLink ring (20 of 20 GB/s) is not behind an NVSwitch node
		// (300 of 300), so small pods do not break up the NVSwitch groups.
		//   v = -2 + 200 = 198 and 0 + 200 = 200: 98 and 100.
		require.Equal(t, []int64{98, 100}, scores(score.DefaultRank, []score.Ranked{
			{Raw: -2, Ring: 20, Ideal: 20}, {Raw: 0, Ring: 300, Ideal: 300}}))
		// Across shapes, rings are capped at one NVLink lane (20 GB/s): a
		// PCIe box offering its best (PIX, 16 of 16 GB/s) is behind a DGX-1
		// quad (one-lane NVLink ring, 25 of 25, capped 20 of 20) even when
		// it fragments less:
		//   PCIe:  min(16/16, 16/20) = 0.8: v = 0 + 2 x 80 = 160
		//   quad:  min(25/25, 20/20) = 1:   v = -10 + 200 = 190
		// best 190: 100 - 30 = 70 and 100.
		require.Equal(t, []int64{70, 100}, scores(score.DefaultRank, []score.Ranked{
			{Raw: 0, Ring: 16, Ideal: 16}, {Raw: -10, Ring: 25, Ideal: 25}}))
		// The same two nodes in one family (A100 PCIe and A100 SXM: both
		// compute 8.0) rank as above; in two families (a T4 box, 7.5, and
		// a V100 DGX-1, 7.0) each ring is judged against its own family's
		// best only: PCIe min(16/16, 16/16) = 1: v = 0 + 200 = 200; quad
		// v = 190: 100 and 100 - 10 = 90. Fragmentation decides.
		require.Equal(t, []int64{70, 100}, scores(score.DefaultRank, []score.Ranked{
			{Raw: 0, Ring: 16, Ideal: 16, Family: "8.0"}, {Raw: -10, Ring: 25, Ideal: 25, Family: "8.0"}}))
		require.Equal(t, []int64{100, 90}, scores(score.DefaultRank, []score.Ranked{
			{Raw: 0, Ring: 16, Ideal: 16, Family: "7.5"}, {Raw: -10, Ring: 25, Ideal: 25, Family: "7.0"}}))
		// A node of unknown family ("": no compute labels) is compared
		// with every node, as before families: the unlabelled PCIe box
		// beside a DGX-1 of family 7.0 gets min(1, 16/20) = 0.8: 70 and
		// 100. It does not count in a known family's best: a box of
		// family 7.5 beside an unlabelled DGX-1 is judged within 7.5
		// (16/16): 100 and 90.
		require.Equal(t, []int64{70, 100}, scores(score.DefaultRank, []score.Ranked{
			{Raw: 0, Ring: 16, Ideal: 16}, {Raw: -10, Ring: 25, Ideal: 25, Family: "7.0"}}))
		require.Equal(t, []int64{100, 90}, scores(score.DefaultRank, []score.Ranked{
			{Raw: 0, Ring: 16, Ideal: 16, Family: "7.5"}, {Raw: -10, Ring: 25, Ideal: 25}}))
		// Within a family the across ratio still counts when other
		// families are present: T4 box (16 of 16, alone in 7.5) v = 200;
		// V100 PCIe (PIX 16 of 16, but family 7.0's best is the DGX-1's
		// 20): min(1, 16/20) = 0.8, v = 0 + 160 = 160; DGX-1 quad v = 190.
		// best 200: 100, 60, 90.
		require.Equal(t, []int64{100, 60, 90}, scores(score.DefaultRank, []score.Ranked{
			{Raw: 0, Ring: 16, Ideal: 16, Family: "7.5"}, {Raw: 0, Ring: 16, Ideal: 16, Family: "7.0"},
			{Raw: -10, Ring: 25, Ideal: 25, Family: "7.0"}}))
		// Topology weight 0: fragmentation only: 100 - 10 = 90 and 100.
		require.Equal(t, []int64{90, 100}, scores(score.Rank{FragWeight: 1}, []score.Ranked{
			{Raw: -10, Ring: 100, Ideal: 100}, {Raw: 0, Ring: 50, Ideal: 100}}))
		// Fragmentation weight 0: a point per topology point: 100 and
		// 100 - (100 - 50) = 50.
		require.Equal(t, []int64{100, 50}, scores(score.Rank{TopoWeight: 1}, []score.Ranked{
			{Raw: -10, Ring: 100, Ideal: 100}, {Raw: 0, Ring: 50, Ideal: 100}}))
		// Weights 3 and 1, unit 3: v = raw + 100 x ratio / 3:
		//   -10 + 33.3 = 23.3 and 0 + 16.7 = 16.7: 100 and 100 - 6.67 -> 93.
		require.Equal(t, []int64{100, 93}, scores(score.Rank{FragWeight: 3, TopoWeight: 1}, []score.Ranked{
			{Raw: -10, Ring: 100, Ideal: 100}, {Raw: 0, Ring: 50, Ideal: 100}}))
	})
	t.Run("empty", func(t *testing.T) {
		score.DefaultRank.Normalize(nil)
	})
}

// CPUOnlyRaw ranks first by the GPU capacity stranded (steps of 1e-6 GPU),
// then by the free GPU capacity the node's CPU still feeds, 4 points a GPU
// after Normalize, never reaching Normalize's floor.
func TestCPUOnlyRaw(t *testing.T) {
	cases := []struct {
		name        string
		strand, fed float64
		want        int64
	}{
		// -round(0 / 1e-6) x 1024 - 0.
		{name: "nothing stranded, nothing fed", want: 0},
		// 0 x 1024 - 2 x 4.
		{name: "nothing stranded, 2 GPUs fed", fed: 2, want: -8},
		// A quarter of a GPU is a point; an eighth rounds to 1 (0.5 up).
		{name: "a quarter GPU fed", fed: 0.25, want: -1},
		{name: "an eighth GPU fed", fed: 0.125, want: -1},
		// -round(1e-6 / 1e-6) x 1024: one step stranded is worse than any
		// fed capacity (at most 99 points).
		{name: "one step stranded", strand: 1e-6, want: -1024},
		// 24.75 GPUs and more: 99 points.
		{name: "24.75 GPUs fed", fed: 24.75, want: -99},
		{name: "64 GPUs fed", fed: 64, want: -99},
		{name: "infinitely many fed (a GPU node gpupack cannot see)", fed: math.Inf(1), want: -99},
		{name: "negative fed", fed: -3, want: 0},
		{name: "NaN fed", fed: math.NaN(), want: 0},
		// Raw clamps at -2^31 steps; NaN strands the most.
		{name: "absurd strand", strand: 1e9, want: math.MinInt32 * 1024},
		{name: "NaN strand", strand: math.NaN(), want: math.MinInt32 * 1024},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, score.CPUOnlyRaw(tc.strand, tc.fed))
		})
	}
	// After Normalize: best (nothing stranded or fed) 100; 2 GPUs fed 100 -
	// 8 = 92; 64 fed (a 16-GPU node would do) 100 - 99 = 1, still ahead of
	// one step stranded: 100 - 1024 -> 0.
	nodes := []score.Ranked{
		{Raw: score.CPUOnlyRaw(0, 0)}, {Raw: score.CPUOnlyRaw(0, 2)},
		{Raw: score.CPUOnlyRaw(0, 64)}, {Raw: score.CPUOnlyRaw(1e-6, 0)},
	}
	score.Rank{Resolution: score.CPUOnlyResolution}.Normalize(nodes)
	got := make([]int64, len(nodes))
	for i, n := range nodes {
		got[i] = n.Score
	}
	require.Equal(t, []int64{100, 92, 1, 0}, got)
}

// FamiliesMatter only when the capped ideals differ (NVLinkFloorGBps is one
// NVLink 1 lane, 20 GB/s): an NVLink pair (25) and an NVSwitch set (300)
// both cap to 20, a PCIe box's PIX (16) does not. Nodes whose quality does
// not count (0, NaN) are skipped, as Normalize's family bests skip them.
func TestFamiliesMatter(t *testing.T) {
	nan := math.NaN()
	cases := map[string]struct {
		ideals []float64
		want   bool
	}{
		"no node":                   {want: false},
		"no quality (single GPU)":   {ideals: []float64{0, 0}, want: false},
		"one node":                  {ideals: []float64{16}, want: false},
		"all NVLink: 25, 300 -> 20": {ideals: []float64{25, 300, 0}, want: false},
		"PCIe beside NVLink":        {ideals: []float64{16, 25}, want: true},
		"two PCIe classes":          {ideals: []float64{0, 16, 6}, want: true},
		"NaN beside one NVLink":     {ideals: []float64{nan, 25}, want: false},
		"NaN first, then two":       {ideals: []float64{nan, 25, 300}, want: false},
		"NaN beside two classes":    {ideals: []float64{16, nan, 25}, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ranked := make([]score.Ranked, len(tc.ideals))
			for i, v := range tc.ideals {
				ranked[i].Ideal = v
			}
			require.Equal(t, tc.want, score.FamiliesMatter(ranked))
		})
	}
}
