package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Requests are numbered once; equal requests share a number whatever
// their container, and the number changes with anything a plan depends on.
func TestRequestIDs(t *testing.T) {
	var r requestIDs
	one := containerRequest{container: "a", resource: "nvidia.com/gpu", req: score.Request{Kind: score.KindWhole, Count: 1}}
	same := one
	same.container = "b"
	morecpu := one
	morecpu.req.CPUMilli = 1000
	id := r.id(one)
	require.NotZero(t, id)
	require.Equal(t, id, r.id(same))
	require.NotEqual(t, id, r.id(morecpu))
}

// The plan Filter and Score use is the one makePlan makes on the node's
// current view, also after the node's usage or the workload snapshot
// changed since the node's last plan for that request.
func TestNodePlanFollowsUsageAndWorkload(t *testing.T) {
	n := fixture.DGX1V100("u")
	node := gpuNode(t, "u", n)
	node.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("256Gi")}
	h := newHarness(t, nil, []*v1.Node{node})
	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	pod := gpuPod("p", "nvidia.com/gpu", 2)
	cs := framework.NewCycleState()
	_, st := h.pl.PreFilter(h.ctx, cs, pod, nil)
	require.True(t, st.IsSuccess())
	s, err := readState(cs)
	require.NoError(t, err)

	fresh := func() plan {
		t.Helper()
		view, err := h.pl.cache.ViewNodeInfo(ni)
		require.NoError(t, err)
		p, err := h.pl.makePlan(view, s.requests, h.pl.workload.Distribution(), false)
		require.NoError(t, err)
		return p
	}
	check := func(why string) {
		t.Helper()
		p, err := h.pl.planFor(ni, s)
		require.NoError(t, err, why)
		require.Equal(t, fresh().figures(), p.figures(), why)
		again, err := h.pl.planFor(ni, s) // the node's last plan now
		require.NoError(t, err)
		require.Equal(t, p.figures(), again.figures(), why)
	}
	check("empty node")
	empty, err := h.pl.planFor(ni, s)
	require.NoError(t, err)

	// Six GPUs taken: the last pair left, another fragmentation change
	// than on the empty node.
	h.pl.cache.Assume("other", "u", ids(n, 0, 1, 2, 3, 4, 5))
	check("six GPUs taken")
	taken, err := h.pl.planFor(ni, s)
	require.NoError(t, err)
	require.NotEqual(t, empty, taken)

	// Seven taken: the node no longer fits the pod.
	h.pl.cache.Assume("other", "u", ids(n, 0, 1, 2, 3, 4, 5, 6))
	_, err = h.pl.planFor(ni, s)
	require.Error(t, err)
	h.pl.cache.Forget("other")
	p, err := h.pl.planFor(ni, s)
	require.NoError(t, err)
	require.Equal(t, empty.figures(), p.figures(), "the empty node's plan again")

	// A new workload snapshot: the node's plan is made under it.
	before := h.pl.workload.Distribution()
	for range 200 {
		h.pl.workload.Observe(score.TaskType{Kind: score.KindWhole, Count: 8})
	}
	require.NotSame(t, before, h.pl.workload.Distribution())
	check("new workload snapshot")
}

// The informer's report of a bound pod holding what Reserve assumed leaves
// the node's usage State as it is (Filter's and Score's last plans stay
// valid); a report of other devices replaces the assumed ones.
func TestBoundPodKeepsTheNodeState(t *testing.T) {
	n := fixture.DGX1V100("k")
	c := gpucache.New()
	node := gpuNode(t, "k", n)
	_, _ = c.UpdateNode(node)
	c.Assume("uid-p", "k", ids(n, 4, 5))
	v1st, err := c.ViewNode(node)
	require.NoError(t, err)

	bound := func(gpus ...int) *v1.Pod {
		devs, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids(n, gpus...)}})
		require.NoError(t, err)
		p := gpuPod("p", "nvidia.com/gpu", int64(len(gpus)), protocol.DevicesAnnotation, devs)
		p.Spec.NodeName = "k"
		return p
	}
	require.NoError(t, c.AddPod(bound(4, 5)))
	v2, err := c.ViewNode(node)
	require.NoError(t, err)
	require.Same(t, v1st.State, v2.State)

	require.NoError(t, c.AddPod(bound(6, 7)))
	v3, err := c.ViewNode(node)
	require.NoError(t, err)
	require.NotSame(t, v1st.State, v3.State)
	require.Equal(t, map[string]bool{n.GPUs[6].UUID: true, n.GPUs[7].UUID: true}, c.Used("k"))
}

// Filter's reason names what the request needs in the node's words (whole
// GPUs, replicas by policy, MIG devices of the profile, of the model), and
// for whole GPUs how many of those it may take are free: "no free healthy
// whole for 8 x nvidia.com/gpu" lacked the noun and the free count.
func TestNoRoomReasons(t *testing.T) {
	dgx := fixture.DGX1V100("d") // 8 x V100, GPUs d-0..d-7
	shared := fixture.Shared(fixture.NVSwitch("s", "A100", 2, 12), 4)
	mig := fixture.WithMIG(fixture.NVSwitch("m", "A100", 2, 12), 0, 4, "3g.40gb", "3g.40gb")
	mixed := fixture.DGX1V100("x")
	for i := range 4 {
		mixed.GPUs[i].Model = "A100"
	}
	mixed.GPUs[1].Replicas = 4
	whole := func(n int) score.Request { return score.Request{Kind: score.KindWhole, Count: n} }
	tests := []struct {
		name string
		node *topology.Node
		used []int // whole GPUs in use
		r    containerRequest
		want string
	}{
		{name: "whole, plural, free count", node: dgx, used: []int{0, 1, 2, 3, 4}, r: containerRequest{resource: "nvidia.com/gpu", req: whole(8)},
			want: "no 8 free healthy whole GPUs for 8 x nvidia.com/gpu (3 free)"},
		{name: "whole, one", node: dgx, used: []int{0, 1, 2, 3, 4, 5, 6, 7}, r: containerRequest{resource: "nvidia.com/gpu", req: whole(1)},
			want: "no free healthy whole GPU for 1 x nvidia.com/gpu (0 free)"},
		{name: "whole, topology required", node: dgx, used: []int{0, 1, 2, 3}, r: containerRequest{resource: "nvidia.com/gpu", req: score.Request{Kind: score.KindWhole, Count: 2, Topology: score.HintRequired}},
			want: "no 2 free healthy whole GPUs with the best link class of the node (topology: required) for 2 x nvidia.com/gpu (4 free)"},
		// Of the model only, and not the time-shared GPU 1 when the
		// resource leaves those out: GPUs 0, 2, 3 (A100) minus 0 in use.
		{name: "whole, model and no shared", node: mixed, used: []int{0}, r: containerRequest{resource: "example.com/a100", req: score.Request{Kind: score.KindWhole, Count: 4, Model: "A100", NoShared: true}},
			want: "no 4 free healthy whole GPUs of model A100 for 4 x example.com/a100 (2 free)"},
		{name: "whole, model list", node: mixed, r: containerRequest{resource: "nvidia.com/gpu", req: score.Request{Kind: score.KindWhole, Count: 8, Model: "A100|H100"}},
			want: "no 8 free healthy whole GPUs of model A100|H100 for 8 x nvidia.com/gpu (4 free)"},
		{name: "replicas packed", node: shared, r: containerRequest{resource: "nvidia.com/gpu.shared", req: score.Request{Kind: score.KindShared, Count: 5}},
			want: "no GPU with 5 free healthy replicas (replica policy packed: on one GPU) for 5 x nvidia.com/gpu.shared"},
		{name: "one replica", node: shared, r: containerRequest{resource: "nvidia.com/gpu.shared", req: score.Request{Kind: score.KindShared, Count: 1}},
			want: "no GPU with 1 free healthy replica for 1 x nvidia.com/gpu.shared"},
		{name: "one replica, spread", node: shared, r: containerRequest{resource: "nvidia.com/gpu.shared", req: score.Request{Kind: score.KindShared, Count: 1, Policy: score.Spread}},
			want: "no GPU with 1 free healthy replica for 1 x nvidia.com/gpu.shared"},
		{name: "replicas spread", node: shared, r: containerRequest{resource: "nvidia.com/gpu.shared", req: score.Request{Kind: score.KindShared, Count: 3, Policy: score.Spread}},
			want: "no 3 GPUs with a free healthy replica each (replica policy spread) for 3 x nvidia.com/gpu.shared"},
		{name: "MIG devices", node: mig, r: containerRequest{resource: "nvidia.com/mig-3g.40gb", req: score.Request{Kind: score.KindMIG, Count: 3, MIGProfile: "3g.40gb"}},
			want: "no 3 free healthy 3g.40gb MIG devices for 3 x nvidia.com/mig-3g.40gb"},
		{name: "one MIG device", node: mig, r: containerRequest{resource: "nvidia.com/mig-1g.10gb", req: score.Request{Kind: score.KindMIG, Count: 1, MIGProfile: "1g.10gb"}},
			want: "no free healthy 1g.10gb MIG device for 1 x nvidia.com/mig-1g.10gb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := map[string]bool{}
			for _, i := range tt.used {
				used[tt.node.GPUs[i].UUID] = true
			}
			st, unknown := score.StateOf(tt.node, used)
			require.Empty(t, unknown)
			require.EqualError(t, noRoom(st, tt.r), tt.want)
		})
	}
}
