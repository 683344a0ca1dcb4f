package gpupack

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// Score and NormalizeScore are pkg/score's Rank: a point per 0.05 GPU of
// fragmentation behind the best node, not a min-max over the nodes.
func TestScoreNormalizeIsPkgScoreRank(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pl, err := NewWithClock(ctx, nil, nil, time.Now)
	require.NoError(t, err)
	norm := func(ps map[string]plan, order ...string) []int64 {
		cs := framework.NewCycleState()
		cs.Write(stateKey, &cycleState{plans: &plans{byNode: ps}})
		list := make(fwk.NodeScoreList, len(order))
		for i, n := range order {
			// Score's figure: -round(fragDelta / 0.05).
			list[i] = fwk.NodeScore{Name: n, Score: pl.rank.Raw(ps[n].fragDelta)}
		}
		require.True(t, pl.NormalizeScore(ctx, cs, nil, list).IsSuccess())
		out := make([]int64, len(list))
		for i, ns := range list {
			out[i] = ns.Score
		}
		return out
	}
	// Single GPU: raws 0, -2 (0.1 GPU), -5 (0.25 GPU), -60 (3 GPUs):
	// 100, 98, 95, 40. (The min-max blend gave 100, 97, 92, 0 for
	// fragmentation and then put 100 of topology on every node with
	// weight 2 of 3: 100, 99, 97, 67.)
	require.Equal(t, []int64{100, 98, 95, 40}, norm(map[string]plan{
		"a": {fragDelta: 0}, "b": {fragDelta: 0.1}, "c": {fragDelta: 0.25}, "d": {fragDelta: 3},
	}, "a", "b", "c", "d"))
	// A 4-GPU pod: quad (ring 100 of 100) 0.5 GPU more fragmentation than
	// scattered (ring 24 of 100): v = -10 + 2 x 100 = 190 and
	// 0 + 2 x 24 = 48: 100 and 100 - 142 -> 0. Topology wins.
	require.Equal(t, []int64{100, 0}, norm(map[string]plan{
		"quad":      {fragDelta: 0.5, ratio: 1, ring: 100, ideal: 100},
		"scattered": {fragDelta: 0, ratio: 0.24, ring: 24, ideal: 100},
	}, "quad", "scattered"))
}

// ViewNodeInfo gives the State the node's free CPU and memory: allocatable
// minus the NodeInfo's requested; it reuses the State while they stay.
func TestViewOfKnowsFreeCPUAndMemory(t *testing.T) {
	topo := fixture.PCIe("n", "T4", 2)
	node := gpuNode(t, "n", topo)
	node.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("8"), v1.ResourceMemory: resource.MustParse("16Gi")}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "p"}, Spec: v1.PodSpec{NodeName: "n", Containers: []v1.Container{{
		Name: "c", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("3"), v1.ResourceMemory: resource.MustParse("4Gi")}},
	}}}}
	ni := framework.NewNodeInfo(pod)
	ni.SetNode(node)
	c := gpucache.New()
	v, err := c.ViewNodeInfo(ni)
	require.NoError(t, err)
	cpu, mem, known := v.State.FreeResources()
	require.True(t, known)
	require.Equal(t, int64(8000-3000), cpu)
	require.Equal(t, int64(16384-4096), mem) // MiB
	v2, err := c.ViewNodeInfo(ni)
	require.NoError(t, err)
	require.Same(t, v.State, v2.State, "unchanged free resources reuse the state")

	ni2 := framework.NewNodeInfo()
	ni2.SetNode(node)
	v3, err := c.ViewNodeInfo(ni2)
	require.NoError(t, err)
	cpu, _, _ = v3.State.FreeResources()
	require.Equal(t, int64(8000), cpu)

	// A node reporting no allocatable CPU: CPU and memory not considered.
	bare := gpuNode(t, "m", topo)
	ni3 := framework.NewNodeInfo()
	ni3.SetNode(bare)
	v4, err := c.ViewNodeInfo(ni3)
	require.NoError(t, err)
	_, _, known = v4.State.FreeResources()
	require.False(t, known)

	// The pod's own CPU and memory ride on its first GPU request.
	p := gpuPod("g", "nvidia.com/gpu", 1)
	p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1500m"), v1.ResourceMemory: resource.MustParse("1Gi")}
	require.Equal(t, [2]int64{1500, 1024}, func() [2]int64 { a, b := podCPUMemory(p); return [2]int64{a, b} }())
}

// A GPU pod goes where its CPU strands no GPU: the workload's only task
// type needs 1 GPU and 8 cores; the pod takes 1 GPU and 10 cores.
//
//	tight (16 cores, 2 free T4): before 16 / 8 = 2 tasks, F = 0; after, 1
//	    free GPU and 6 cores, 0 tasks: F = 1: +1 GPU = -20 steps
//	roomy (64 cores, 2 free T4): 54 cores left hold 6 tasks, F stays 0
//
// NormalizeScore: roomy 100, tight 100 - 20 = 80. Without CPU awareness
// both are 0 steps, a tie the harness breaks toward the first, tight.
// (Before pkg/score bounded a type's GPUs by the tasks the free CPU holds,
// this test had tight at 10 cores and a 4-core pod; that node holds one
// 8-core task for its 2 GPUs whatever the pod does, so both nodes now
// strand 1 GPU either way, a true tie.)
func TestGPUPodAvoidsStrandingGPUsByCPU(t *testing.T) {
	tight := gpuNode(t, "tight", fixture.PCIe("t", "T4", 2))
	tight.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("16"), v1.ResourceMemory: resource.MustParse("64Gi")}
	roomy := gpuNode(t, "roomy", fixture.PCIe("r", "T4", 2))
	roomy.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("64Gi")}
	h := newHarness(t, nil, []*v1.Node{tight, roomy})
	w, err := score.NewWorkload(score.WorkloadOptions{Pin: true, Prior: []score.Weighted{
		{Type: score.TaskType{Kind: score.KindWhole, Count: 1, CPUMilli: 8000}, Weight: 1}}})
	require.NoError(t, err)
	h.pl.workload = w
	pod := gpuPod("p", "nvidia.com/gpu", 1)
	pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("10")}
	node, _, st, _ := h.schedule(pod)
	require.Nil(t, st)
	require.Equal(t, "roomy", node)
}

// A 4-GPU pod's link quality is compared across node shapes only among
// nodes of one GPU family (the compute capability labels). The cluster: a
// DGX-1 V100 (8 free, an NVLink quad) and a dual-socket 4-GPU PCIe box
// (best ring over SYS). Taking the whole box leaves nothing to fragment;
// taking a quad of the DGX-1 leaves 4 GPUs no 8-GPU task can use, so
// fragmentation favours the box and the link term the DGX-1:
//   - no labels, or both labelled 7.0 (V100 SXM2 and V100 PCIe): one
//     family, the PCIe ring is judged against the DGX-1's: the DGX-1 wins;
//   - the box labelled 7.5 (T4): its ring is judged against its own shape
//     only (1), the DGX-1's too (1): fragmentation decides, the box wins;
//   - the box unlabelled (unknown family): judged against every node, as
//     with no labels: the DGX-1 wins; the DGX-1 unlabelled and the box
//     7.5: the box is judged within 7.5 only and wins.
func TestLinkQualityComparedWithinAGPUFamily(t *testing.T) {
	cases := []struct {
		name            string
		dgxCompute, box [2]string
		want            string
	}{
		{name: "no labels: one family", want: "dgx1"},
		{name: "both compute 7.0", dgxCompute: [2]string{"7", "0"}, box: [2]string{"7", "0"}, want: "dgx1"},
		{name: "V100 and T4: two families", dgxCompute: [2]string{"7", "0"}, box: [2]string{"7", "5"}, want: "box"},
		{name: "box unlabelled: judged against every node", dgxCompute: [2]string{"7", "0"}, want: "dgx1"},
		{name: "DGX-1 unlabelled, box 7.5: the box judged within its family", box: [2]string{"7", "5"}, want: "box"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := []*v1.Node{
				withCompute(gpuNode(t, "dgx1", fixture.DGX1V100("d")), tc.dgxCompute[0], tc.dgxCompute[1]),
				withCompute(gpuNode(t, "box", fixture.DualSocketPCIe4("b")), tc.box[0], tc.box[1]),
			}
			h := newHarness(t, nil, nodes)
			node, _, st, _ := h.schedule(gpuPod("train", "nvidia.com/gpu", 4))
			require.Nil(t, st)
			require.Equal(t, tc.want, node)
		})
	}
}

func TestGPUFamily(t *testing.T) {
	cases := map[string]struct {
		labels map[string]string
		want   string
	}{
		"none":         {want: ""},
		"major only":   {labels: map[string]string{"nvidia.com/gpu.compute.major": "8"}, want: ""},
		"empty minor":  {labels: map[string]string{"nvidia.com/gpu.compute.major": "8", "nvidia.com/gpu.compute.minor": ""}, want: ""},
		"A100":         {labels: map[string]string{"nvidia.com/gpu.compute.major": "8", "nvidia.com/gpu.compute.minor": "0"}, want: "8.0"},
		"other labels": {labels: map[string]string{"nvidia.com/gpu.product": "Tesla-T4"}, want: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, gpuFamily(&v1.Node{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels}}))
		})
	}
	require.Empty(t, gpuFamily(nil))
}
