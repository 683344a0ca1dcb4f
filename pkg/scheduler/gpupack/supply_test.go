package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// trainingNodes are one NVSwitch host with 128 cores and three 96-core
// PCIe hosts, all with 8 free A100s.
func trainingNodes(t *testing.T) []*v1.Node {
	t.Helper()
	node := func(name string, cores string, topo func() *v1.Node) *v1.Node {
		n := topo()
		n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cores), v1.ResourceMemory: resource.MustParse("384Gi")}
		return n
	}
	return []*v1.Node{
		node("g3", "128", func() *v1.Node { return gpuNode(t, "g3", fixture.NVSwitch("g3", "A100", 8, 12)) }),
		node("g2a", "96", func() *v1.Node { return gpuNode(t, "g2a", fixture.PCIe("g2a", "A100", 8)) }),
		node("g2b", "96", func() *v1.Node { return gpuNode(t, "g2b", fixture.PCIe("g2b", "A100", 8)) }),
		node("g2c", "96", func() *v1.Node { return gpuNode(t, "g2c", fixture.PCIe("g2c", "A100", 8)) }),
	}
}

// A 2-GPU pod prefers the NVSwitch host for its links, unless that host is
// the only one a likely 8-GPU, 120-core task fits: then its slot is worth
// more than the better ring (score.Pricing, gpucache's supply).
func TestTwoGPUsLeaveTheOnlyHostOfARareTypeFree(t *testing.T) {
	two := score.TaskType{Kind: score.KindWhole, Count: 2}
	for _, tc := range []struct {
		name  string
		eight score.TaskType
		want  string
	}{
		// Every host fits an 8-GPU task without CPU needs: the supply
		// prices nothing. Per node v = raw + 2 x topology: g3's ring
		// 300 of 300 GB/s = 100 points, a PCIe pair's 16 GB/s over the
		// 20 GB/s NVLink floor = 80; fragmentation +0.6 GPU (-12 steps)
		// on g3, -0.2 GPU (+4) on a PCIe host: g3 -12 + 200 = 188 over
		// 4 + 160 = 164.
		{"8-GPU tasks fit every host", score.TaskType{Kind: score.KindWhole, Count: 8}, "g3"},
		// 120 cores fit only g3 (p = 0.1). N = 32 free GPUs /
		// (0.9 x 2 + 0.1 x 8) = 12.31 tasks; lambda = 0.1 x 12.31 = 1.231
		// for S = 1 slot, and for its base (8 GPUs, any host) S = 4:
		// P(Pois(1.231) >= 1) - P(Pois(1.231) >= 4) = 0.708 - 0.037
		// = 0.671, x 8 GPUs = 5.37 GPUs = 107 steps: g3 188 - 107 = 81
		// under 164. (Without the supply g3 wins as above: this row
		// fails.)
		{"120-core 8-GPU tasks fit only g3", score.TaskType{Kind: score.KindWhole, Count: 8, CPUMilli: 120000}, "g2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, trainingNodes(t))
			w, err := score.NewWorkload(score.WorkloadOptions{Pin: true, Prior: []score.Weighted{
				{Type: two, Weight: 9}, {Type: tc.eight, Weight: 1}}})
			require.NoError(t, err)
			h.pl.workload = w
			node, got, st, _ := h.schedule(gpuPod("pair", "nvidia.com/gpu", 2))
			require.Nil(t, st)
			require.Len(t, got, 2)
			require.Equal(t, tc.want, node[:2])
		})
	}
}

// Explain reports each node's supply cost (score.Pricing.Cost). With the
// args' prior (types without CPU or memory) nothing is priced: an
// A100-only 8-GPU type whose only host is g3 is constrained by its model
// alone, which is its own base (score's baseOf), so every node shows 0.
// The plugin's learned workload carries CPU and memory; TestTwoGPUsLeave...
// above shows a priced Score.
func TestExplainShowsTheSupplyCost(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	args := pinnedArgs(t,
		config.TaskTypeWeight{Kind: config.TaskWhole, Count: 2, Weight: 9},
		config.TaskTypeWeight{Kind: config.TaskWhole, Count: 8, Model: "A100", Weight: 1})
	nodes := []*v1.Node{
		gpuNode(t, "g3", fixture.NVSwitch("g3", "A100", 8, 12)),
		gpuNode(t, "t4a", fixture.PCIe("t4a", "T4", 8)),
		gpuNode(t, "t4b", fixture.PCIe("t4b", "T4", 8)),
		gpuNode(t, "t4c", fixture.PCIe("t4c", "T4", 8)),
	}
	fits, err := Explain(ctx, args, gpuPod("pair", "nvidia.com/gpu", 2), nodes, nil)
	require.NoError(t, err)
	require.Len(t, fits, 4)
	for _, f := range fits {
		require.True(t, f.Fits, f.Node)
		require.Zero(t, f.SupplyCost, f.Node)
	}
}
