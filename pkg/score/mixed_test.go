package score_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// mixedNode is one box with two GPU models: GPUs 0-3 "H100" on an NVSwitch
// (18 NVLink 4 lanes: 18 x 25 = 450 GB/s a pair), GPUs 4-7 "L40S" PCIe
// cards, 4-5 and 6-7 on one switch each (PIX, 16), 4-6, 4-7, 5-6, 5-7 NODE
// (10); H100 to L40S SYS (6).
func mixedNode() *topology.Node {
	n := fixture.Build("mixed", "H100", 8, 4, func(i, j int) topology.Link {
		switch {
		case j < 4:
			return topology.Link{Class: topology.ClassNVSwitch, NVLinks: 18}
		case i < 4:
			return fixture.SYS
		case i/2 == j/2:
			return fixture.PIX
		default:
			return fixture.NODE
		}
	})
	for i := 4; i < 8; i++ {
		n.GPUs[i].Model = "L40S"
	}
	return n
}

// On a node with GPUs of two models, a request for one model is measured
// against the best set of that model, not the best set of the node: the
// other model's GPUs can never be its. Before, an L40S pair (16 GB/s) was
// held against the H100 pair (450): topology required refused every L40S
// pair on an empty node, and preferred rated the best one 16/450.
func TestChooseWholeMixedModels(t *testing.T) {
	node := mixedNode()
	tests := []struct {
		name      string
		model     string
		count     int
		used      []int
		hint      score.TopologyHint
		want      []int
		wantRing  float64
		wantIdeal float64
	}{
		// L40S pairs: 4-5 and 6-7 PIX (16) are the best; 4-5 the
		// smaller mask.
		{name: "L40S pair required", model: "L40S", count: 2, hint: score.HintRequired, want: []int{4, 5}, wantRing: 16, wantIdeal: 16},
		{name: "L40S pair preferred", model: "L40S", count: 2, want: []int{4, 5}, wantRing: 16, wantIdeal: 16},
		// 4 and 6 in use: 5-7 is NODE (10), under the L40S ideal (16).
		{name: "L40S pair required, no PIX pair free", model: "L40S", count: 2, used: []int{4, 6}, hint: score.HintRequired},
		{name: "L40S pair preferred, no PIX pair free", model: "L40S", count: 2, used: []int{4, 6}, want: []int{5, 7}, wantRing: 10, wantIdeal: 16},
		// Four L40S: ring 4-5-7-6-4 = 16, 10, 16, 10: 10.
		{name: "four L40S required", model: "L40S", count: 4, hint: score.HintRequired, want: []int{4, 5, 6, 7}, wantRing: 10, wantIdeal: 10},
		// H100 requests keep the H100 ideal, 450.
		{name: "H100 pair required", model: "H100", count: 2, used: []int{0}, hint: score.HintRequired, want: []int{1, 2}, wantRing: 450, wantIdeal: 450},
		// Either model ("a|b"), or any model: the node's best, 450.
		{name: "either model", model: "H100|L40S", count: 2, used: []int{0, 1, 2}, hint: score.HintRequired},
		// Free {3,...,7}: 4-5 (PIX, 16) is taken over 3-4 (SYS, 6) and
		// measured against 450.
		{name: "any model", count: 2, used: []int{0, 1, 2}, want: []int{4, 5}, wantRing: 16, wantIdeal: 450},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := score.Request{Kind: score.KindWhole, Count: tt.count, Model: tt.model, Topology: tt.hint}
			c, ok := chooseOn(node, usedSet(uuids(node, tt.used...)...), req, nil)
			require.Equal(t, tt.want != nil, ok, "choice %s", c)
			if !ok {
				return
			}
			require.Equal(t, topology.SetOf(tt.want...), c.GPUs, "choice %s", c)
			require.Equal(t, tt.wantRing, c.Quality.RingGBps)
			require.Equal(t, tt.wantIdeal, c.Ideal.RingGBps)
			require.InDelta(t, tt.wantRing/tt.wantIdeal, c.QualityRatio(), 1e-12)
		})
	}
}

// The fragmentation of a task type of one model measures its sets against
// that model's best: with every L40S free, a 2-GPU L40S task strands
// nothing (a PIX pair, its best, is free); before, (1 - 16/450) of each of
// the 4 free L40S GPUs counted as stranded.
func TestFragmentationMixedModels(t *testing.T) {
	node := mixedNode()
	for i := range 4 {
		node.GPUs[i].Healthy = false // only the L40S count
	}
	d, err := score.NewDistribution([]score.Weighted{{Type: score.TaskType{Kind: score.KindWhole, Count: 2, Model: "L40S"}, Weight: 1}})
	require.NoError(t, err)
	s := score.NewState(node)
	// 4 free GPUs, each usable by the task: 4 - 4 x 1 = 0.
	require.InDelta(t, 0, score.Fragmentation(s, d), 1e-12)
	// Taking 4 and 6 leaves 5-7 (NODE, 10 of 16): 2 - 2 x 10/16 = 0.75.
	s, _ = score.StateOf(node, usedSet(uuids(node, 4, 6)...))
	require.InDelta(t, 0.75, score.Fragmentation(s, d), 1e-12)
	// Choose's fragmentation (fragEval) agrees: one L40S GPU taken from
	// the four leaves 3 free with a PIX pair among them (16, the ideal):
	// 3 - 3 x 1 = 0, a delta of 0 (before the fix: 3.858 -> 3 - 3 x
	// 16/450 = 2.893, -0.964).
	c, ok := score.Choose(score.NewState(node), score.Request{Kind: score.KindWhole, Count: 1, Model: "L40S"}, d)
	require.True(t, ok)
	require.InDelta(t, 0, c.FragDelta, 1e-12, "choice %s", c)
}
