package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// Explain gives Filter's answer node by node: a node whose free GPUs are
// too few, a node without topology, a malformed one, and a node that fits
// with the fragmentation and quality Score would rank it by.
func TestExplain(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	full := fixture.DGX1V100("full")
	// "full": 6 of 8 GPUs in use by another scheduler's pod (in-use),
	// one by our bound pod "holder" (annotation): 1 free.
	fullNode := gpuNode(t, "full", full, ids(full, 0, 1, 2, 3, 4, 5)...)
	devs, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids(full, 6)}})
	require.NoError(t, err)
	holder := gpuPod("holder", "nvidia.com/gpu", 1, protocol.DevicesAnnotation, devs)
	holder.Spec.NodeName = "full"
	free := fixture.DGX1V100("free")
	nodes := []*v1.Node{
		fullNode,
		gpuNode(t, "free", free),
		{ObjectMeta: metav1.ObjectMeta{Name: "cpu-only"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "junk", Annotations: map[string]string{protocol.TopologyAnnotation: `{{{`}}},
	}
	pod := gpuPod("p", "nvidia.com/gpu", 2)

	fits, err := Explain(ctx, nil, pod, nodes, []*v1.Pod{holder})
	require.NoError(t, err)
	require.Len(t, fits, 4)
	byName := map[string]NodeFit{}
	for _, f := range fits {
		byName[f.Node] = f
	}
	require.Equal(t, []string{"cpu-only", "free", "full", "junk"}, []string{fits[0].Node, fits[1].Node, fits[2].Node, fits[3].Node})

	// full: 8 - 6 (in-use) - 1 (holder) = 1 free GPU < 2.
	require.False(t, byName["full"].Fits)
	require.False(t, byName["full"].Unresolvable)
	require.Equal(t, "gpupack: no 2 free healthy whole GPUs for 2 x nvidia.com/gpu (1 free)", byName["full"].Reason)

	require.False(t, byName["cpu-only"].Fits)
	require.True(t, byName["cpu-only"].Unresolvable)
	require.Contains(t, byName["cpu-only"].Reason, "no "+protocol.TopologyAnnotation)

	require.True(t, byName["junk"].Unresolvable)
	require.Contains(t, byName["junk"].Reason, "malformed JSON")

	// free: an NV2 pair exists (ring 50 = the best pair): quality 1.
	require.True(t, byName["free"].Fits)
	require.Empty(t, byName["free"].Reason)
	require.InDelta(t, 1.0, byName["free"].QualityRatio, 1e-9)

	// Without holder the full node has 2 free GPUs (6 and 7): it fits.
	fits, err = Explain(ctx, nil, pod, nodes[:1], nil)
	require.NoError(t, err)
	require.True(t, fits[0].Fits, fits[0].Reason)
}

func TestExplainBadPods(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes := []*v1.Node{gpuNode(t, "n", fixture.DGX1V100("n"))}
	_, err := Explain(ctx, nil, gpuPod("cpu", "cpu", 1), nodes, nil)
	require.ErrorContains(t, err, "asks for no GPU resource")
	// A GPU resource listed at 0 is no GPU request (its Filter runs, zero.go).
	_, err = Explain(ctx, nil, gpuPod("zero", "nvidia.com/gpu", 0), nodes, nil)
	require.ErrorContains(t, err, "asks for no GPU resource")
	_, err = Explain(ctx, nil, gpuPod("bad", "nvidia.com/gpu", 1, "gpupack.io/topology", "sometimes"), nodes, nil)
	require.ErrorContains(t, err, "gpupack.io/topology")
}

// Explain's Score is NormalizeScore's over the fitting nodes, families
// from the nodes' compute labels: the cluster of
// TestLinkQualityComparedWithinAGPUFamily. A 4-GPU pod; fragmentation
// favours the PCIe box, links the DGX-1's quad:
//   - one family (no labels): the box's SYS ring is judged against the
//     DGX-1's quad: the DGX-1 scores 100 and the box less;
//   - V100 (7.0) and T4 (7.5): each judged within its family: the box 100.
func TestExplainScoresAsNormalizeScore(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	cases := []struct {
		name      string
		dgx, box  [2]string
		wantFirst string
	}{
		{name: "one family", wantFirst: "dgx1"},
		{name: "two families", dgx: [2]string{"7", "0"}, box: [2]string{"7", "5"}, wantFirst: "box"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := []*v1.Node{
				withCompute(gpuNode(t, "dgx1", fixture.DGX1V100("d")), tc.dgx[0], tc.dgx[1]),
				withCompute(gpuNode(t, "box", fixture.DualSocketPCIe4("b")), tc.box[0], tc.box[1]),
				gpuNode(t, "small", fixture.PCIe("s", "T4", 2)), // 2 GPUs: does not fit, no score
			}
			fits, err := Explain(ctx, nil, gpuPod("train", "nvidia.com/gpu", 4), nodes, nil)
			require.NoError(t, err)
			byName := map[string]NodeFit{}
			for _, f := range fits {
				byName[f.Node] = f
			}
			require.Nil(t, byName["small"].Score)
			require.NotNil(t, byName["dgx1"].Score)
			require.NotNil(t, byName["box"].Score)
			other := map[string]string{"dgx1": "box", "box": "dgx1"}[tc.wantFirst]
			require.Equal(t, int64(100), *byName[tc.wantFirst].Score)
			require.Less(t, *byName[other].Score, int64(100))

			// The same nodes through the scheduler pick the node scored 100.
			h := newHarness(t, nil, nodes)
			node, _, st, _ := h.schedule(gpuPod("train", "nvidia.com/gpu", 4))
			require.Nil(t, st)
			require.Equal(t, tc.wantFirst, node)
		})
	}
}
