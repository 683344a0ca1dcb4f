package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func replicas(n *topology.Node, gpu int, nums ...int) []string {
	var out []string
	for _, k := range nums {
		out = append(out, deviceid.ReplicaID(n.GPUs[gpu].UUID, k))
	}
	return out
}

// TestSharedPodsPackOntoPartlyUsedGPUs is the FGD example (Weng et al.,
// ATC'23) where best-fit does worse. Workload: shared 500m (p .5) and
// whole 1 GPU (p .5). Node "partial": 3 time-shared GPUs of 10 replicas;
// GPU 0 has 3 replicas used (free .7), GPU 1 has 5 (free .5), GPU 2 is
// free. A pod asks 2 replicas (.2 of a GPU).
//
// Before: free capacity .7+.5+1 = 2.2; whole 1 can use GPU 2 only: 2.2-1 =
// 1.2 stranded; shared 500m can use every GPU (.7, .5, 1 >= .5): 0.
// F = .5*1.2 + .5*0 = .6.
//   - on GPU 0 (FGD): .7 -> .5; free 2.0; whole 1: 2.0-1 = 1.0; shared:
//     .5 >= .5 usable: 0; F = .5; delta -.1.
//   - on GPU 1 (best fit: the least free share that fits): .5 -> .3;
//     whole 1: 1.0; shared: .3 < .5 stranded .3; F = .5+.15 = .65; +.05.
//   - on GPU 2 (the whole GPU): 1 -> .8; whole 1: no whole GPU left, 2.0
//     stranded; shared 0; F = 1.0; +.4.
//
// So the pod goes on GPU 0, replicas 3 and 4. Node "fresh" (3 free GPUs:
// F = .5*(3-3) = 0; after .2 on one: whole 2.8-2 = .8, F = .4, +.4) loses
// to "partial" (-.1).
func TestSharedPodsPackOntoPartlyUsedGPUs(t *testing.T) {
	prior := []config.TaskTypeWeight{{Kind: "shared", Milli: 500, Weight: 1}, {Kind: "whole", Count: 1, Weight: 1}}
	partial := fixture.Shared(fixture.NVSwitch("p", "A100", 3, 12), 10)
	fresh := fixture.Shared(fixture.NVSwitch("f", "A100", 3, 12), 10)
	used := append(replicas(partial, 0, 0, 1, 2), replicas(partial, 1, 0, 1, 2, 3, 4)...)

	// By hand through pkg/score: the delta of each placement.
	d, err := score.NewDistribution([]score.Weighted{
		{Type: score.TaskType{Kind: score.KindShared, Milli: 500}, Weight: 1},
		{Type: score.TaskType{Kind: score.KindWhole, Count: 1}, Weight: 1},
	})
	require.NoError(t, err)
	inUse := map[string]bool{}
	for _, id := range used {
		inUse[id] = true
	}
	st, _ := score.StateOf(partial, inUse)
	before := score.Fragmentation(st, d)
	require.InDelta(t, 0.6, before, 1e-9)
	for gpu, want := range map[int]float64{0: -0.1, 1: +0.05, 2: +0.4} {
		after := st.Clone()
		after.Apply(score.Choice{Kind: score.KindShared, GPUs: topology.SetOf(gpu), Shares: []score.Share{{GPU: gpu, Replicas: 2}}})
		require.InDelta(t, want, score.Fragmentation(after, d)-before, 1e-9, "2 replicas on GPU %d", gpu)
	}
	c, ok := score.Choose(st, score.Request{Kind: score.KindShared, Count: 2}, d)
	require.True(t, ok)
	require.Equal(t, []score.Share{{GPU: 0, Replicas: 2}}, c.Shares)
	require.InDelta(t, -0.1, c.FragDelta, 1e-9)

	// Through the framework: the pod lands on "partial", GPU 0.
	h := newHarness(t, pinnedArgs(t, prior...), []*v1.Node{gpuNode(t, "fresh", fresh), gpuNode(t, "partial", partial, used...)})
	node, got, st2, _ := h.schedule(gpuPod("s", "nvidia.com/gpu.shared", 2))
	require.Nil(t, st2)
	require.Equal(t, "partial", node)
	require.Equal(t, replicas(partial, 0, 3, 4), got)
	// The next one: free .5, .5, 1; F = .5*(2.0-1) + 0 = .5. On GPU 0 or
	// 1: .5 -> .3 strands .3: F = .5*(1.8-1) + .5*.3 = .55, +.05; on GPU
	// 2: no whole GPU left: F = .5*1.8 = .9, +.4. GPUs 0 and 1 tie (same
	// free replicas): the lower index, replicas 5 and 6; GPU 2 stays whole.
	_, got, st2, _ = h.schedule(gpuPod("s2", "nvidia.com/gpu.shared", 2))
	require.Nil(t, st2)
	require.Equal(t, replicas(partial, 0, 5, 6), got)
}
