package gpupack

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestMalformedInUseMakesNodeUnusable(t *testing.T) {
	// We cannot know which GPUs are in use on "broken": it gets no GPU pod
	// (with the reason), "ok" still does.
	broken := gpuNode(t, "broken", fixture.DGX1V100("x"))
	broken.Annotations[protocol.InUseAnnotation] = `{"version":"v1","pods":[{"devices":[""]}]}`
	h := newHarness(t, nil, []*v1.Node{broken, gpuNode(t, "ok", fixture.DGX1V100("y"))})
	_, st := h.filterOn(gpuPod("p", "nvidia.com/gpu", 1), "broken")
	require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	require.Contains(t, st.Message(), "gpupack.io/in-use report is unreadable, so which GPUs are in use is unknown")
	node, _, st2, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 1))
	require.Nil(t, st2)
	require.Equal(t, "ok", node)
}

// TestFilterNeverFitsIsUnresolvable: a request the node could not hold
// even with none of its devices in use is UnschedulableAndUnresolvable
// (kube-scheduler's preemption skips the node: no victim can make room);
// one that only the node's current pods keep out is Unschedulable.
// DGX-1 V100: 8 GPUs.
func TestFilterNeverFitsIsUnresolvable(t *testing.T) {
	dgx := func(unhealthy ...int) *topology.Node {
		n := fixture.DGX1V100("d")
		for _, i := range unhealthy {
			n.GPUs[i].Healthy = false
		}
		return n
	}
	tests := []struct {
		name      string
		topo      *topology.Node
		inUse     []int
		inUseIDs  func(*topology.Node) []string // replicas, instead of inUse
		pod       *v1.Pod
		want      fwk.Code
		wantNever bool
		// wantReason is Filter's message: what the request needs, in
		// the node's words, and how many GPUs it may take are free.
		wantReason string
	}{
		// 9 > 8 GPUs on the node.
		{name: "more GPUs than the node has", topo: dgx(), pod: gpuPod("p", "nvidia.com/gpu", 9), want: fwk.UnschedulableAndUnresolvable, wantNever: true,
			wantReason: "gpupack: no 9 free healthy whole GPUs for 9 x nvidia.com/gpu (8 free), even with none in use"},
		// 9 > 8, 2 in use: the reason says both figures.
		{name: "more GPUs than the node has, some in use", topo: dgx(), inUse: []int{0, 1}, pod: gpuPod("p", "nvidia.com/gpu", 9), want: fwk.UnschedulableAndUnresolvable, wantNever: true,
			wantReason: "gpupack: no 9 free healthy whole GPUs for 9 x nvidia.com/gpu (6 free), even with none in use (8 free then)"},
		// 4 asked, 8 - 6 used = 2 free: evicting pods would free them.
		{name: "GPUs in use", topo: dgx(), inUse: []int{0, 1, 2, 3, 4, 5}, pod: gpuPod("p", "nvidia.com/gpu", 4), want: fwk.Unschedulable,
			wantReason: "gpupack: no 4 free healthy whole GPUs for 4 x nvidia.com/gpu (2 free)"},
		// 8 asked, 8 - 1 unhealthy = 7: no pod holds the missing GPU.
		{name: "unhealthy GPU", topo: dgx(3), pod: gpuPod("p", "nvidia.com/gpu", 8), want: fwk.UnschedulableAndUnresolvable, wantNever: true,
			wantReason: "gpupack: no 8 free healthy whole GPUs for 8 x nvidia.com/gpu (7 free), even with none in use"},
		// 7 asked, 7 healthy of which 2 in use: preemption can help.
		{name: "unhealthy and in use", topo: dgx(3), inUse: []int{0, 1}, pod: gpuPod("p", "nvidia.com/gpu", 7), want: fwk.Unschedulable,
			wantReason: "gpupack: no 7 free healthy whole GPUs for 7 x nvidia.com/gpu (5 free)"},
		// Containers of 5 and 4: 9 > 8 together, though each alone fits.
		{name: "containers together", topo: dgx(), pod: fixture.MakePod().Named("p").Container("a").Limit("nvidia.com/gpu", 5).Container("b").Limit("nvidia.com/gpu", 4).Obj(), want: fwk.UnschedulableAndUnresolvable, wantNever: true,
			wantReason: "gpupack: no 4 free healthy whole GPUs for 4 x nvidia.com/gpu (3 free), even with none in use"},
		// Containers of 4 and 4 with 1 GPU in use: 7 free < 8.
		{name: "containers with one in use", topo: dgx(), inUse: []int{0}, pod: fixture.MakePod().Named("p").Container("a").Limit("nvidia.com/gpu", 4).Container("b").Limit("nvidia.com/gpu", 4).Obj(), want: fwk.Unschedulable,
			wantReason: "gpupack: no 4 free healthy whole GPUs for 4 x nvidia.com/gpu (3 free)"},
		// 2 GPUs x 4 replicas = 8 replicas < 9 asked.
		{name: "more replicas than the node has", topo: fixture.Shared(fixture.NVSwitch("s", "A100", 2, 12), 4), pod: gpuPod("p", "nvidia.com/gpu.shared", 9), want: fwk.UnschedulableAndUnresolvable, wantNever: true,
			wantReason: "gpupack: no GPU with 9 free healthy replicas (replica policy packed: on one GPU) for 9 x nvidia.com/gpu.shared, even with none in use"},
		// Pooled replicas (regular init container): init 4, app 4, 4, 4:
		// new replicas 4 + 4 + 4 = 12 > 2 GPUs x 4.
		{name: "pooled replicas beyond the node", topo: fixture.Shared(fixture.NVSwitch("s", "A100", 2, 12), 4), pod: fixture.MakePod().Named("p").InitContainer("i").Limit("nvidia.com/gpu.shared", 4).Container("c").Limit("nvidia.com/gpu.shared", 4).Container("d").Limit("nvidia.com/gpu.shared", 4).Container("e").Limit("nvidia.com/gpu.shared", 4).Obj(), want: fwk.UnschedulableAndUnresolvable, wantNever: true,
			wantReason: "gpupack: no 12 free healthy replicas, each container's on one GPU, for 12 x nvidia.com/gpu.shared, even with none in use"},
		// init 4, app 4, 4: two packed 4s; GPU 0 has 1 of 4 in use, so
		// only GPU 1 holds 4 now; empty, both do.
		{name: "pooled replicas, one in use", topo: fixture.Shared(fixture.NVSwitch("s", "A100", 2, 12), 4), inUseIDs: func(n *topology.Node) []string { return replicas(n, 0, 0) }, pod: fixture.MakePod().Named("p").InitContainer("i").Limit("nvidia.com/gpu.shared", 4).Container("c").Limit("nvidia.com/gpu.shared", 4).Container("d").Limit("nvidia.com/gpu.shared", 4).Obj(), want: fwk.Unschedulable,
			wantReason: "gpupack: no 8 free healthy replicas, each container's on one GPU, for 8 x nvidia.com/gpu.shared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := ids(tt.topo, tt.inUse...)
			if tt.inUseIDs != nil {
				used = tt.inUseIDs(tt.topo)
			}
			node := gpuNode(t, "n", tt.topo, used...)
			h := newHarness(t, nil, []*v1.Node{node})
			state, st := h.filterOn(tt.pod, "n")
			require.Equal(t, tt.want, st.Code(), st.Message())
			require.Equal(t, tt.wantNever, strings.Contains(st.Message(), "even with none in use"), st.Message())
			require.Equal(t, tt.wantReason, st.Message())
			// The answer is kept as the node's last plan: a second
			// Filter of the same pod gives the same code.
			ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("n")
			require.NoError(t, err)
			require.Equal(t, tt.want, h.fh.RunFilterPlugins(h.ctx, state, tt.pod, ni).Code())
		})
	}
}
