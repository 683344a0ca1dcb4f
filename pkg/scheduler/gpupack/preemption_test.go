package gpupack

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultpreemption"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// boundPod is a pod of priority prio bound to node holding devs of res
// (its gpupack.io/devices annotation), asking as many.
func boundPod(t *testing.T, name, node string, prio int32, res string, devs ...string) *v1.Pod {
	t.Helper()
	raw, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{res: devs}})
	require.NoError(t, err)
	return fixture.MakePod().Named(name).GPUs(res, int64(len(devs))).Node(node).Priority(prio).
		Annotations(protocol.DevicesAnnotation, raw).Obj()
}

// withPreemption is the harness with kube-scheduler's DefaultPreemption at
// PostFilter, as in the default profile.
func withPreemption() harnessOptions {
	return harnessOptions{plugins: []tf.RegisterPluginFunc{
		tf.RegisterPostFilterPlugin(defaultpreemption.Name, func(ctx context.Context, _ runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
			return defaultpreemption.New(ctx, &config.DefaultPreemptionArgs{MinCandidateNodesPercentage: 10, MinCandidateNodesAbsolute: 100}, fh, feature.Features{})
		}),
	}, options: []frameworkruntime.Option{
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
		frameworkruntime.WithPodsInPreBind(frameworkruntime.NewPodsInPreBindMap()),
		frameworkruntime.WithEventRecorder(events.NewFakeRecorder(100)),
	}}
}

// Issue 12, item 2. DGX-1 V100 (lanes: topology.DGX1Lanes). "high"
// (priority 1000) holds GPUs 0,1,2; "low" (priority 0) holds 4,6. Free:
// {3,5,7}: 3-5 has no NVLink, 3-7 and 5-7 one lane each: no 2-lane pair,
// the best class a pair has on this shape (0-3, 1-2, 4-7, 5-6, ...). A
// 2-GPU pod of priority 1000 with topology: required fits only with "low"
// gone (free {3,4,5,6,7}: 4-7, 5-6, 6-7 have 2 lanes). kube-scheduler's
// preemption removes "low", sees the pod fit, adds "low" back to try to
// spare it: the pod must no longer fit then, so "low" is the victim. It
// used to be spared (AddPod ignored a pod the cache holds: its GPUs stayed
// free in the simulation) and the pod stayed Pending.
func TestPreemptionEvictsTheVictimThatBlocksTopology(t *testing.T) {
	n := fixture.DGX1V100("d")
	high := boundPod(t, "high", "d", 1000, "nvidia.com/gpu", ids(n, 0, 1, 2)...)
	low := boundPod(t, "low", "d", 0, "nvidia.com/gpu", ids(n, 4, 6)...)
	pre := gpuPod("pre", "nvidia.com/gpu", 2, protocol.TopologyHintAnnotation, "required")
	pre.Spec.Priority = ptr.To[int32](1000)
	h := newHarnessWith(t, withPreemption(), nil, []*v1.Node{gpuNode(t, "d", n)}, high, low, pre)
	require.Eventually(t, func() bool { return len(h.pl.cache.Used("d")) == 5 }, 5*time.Second, 10*time.Millisecond)
	var deleted []string
	h.cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		deleted = append(deleted, a.(k8stesting.DeleteAction).GetName())
		return false, nil, nil
	})

	_, _, st, state := h.schedule(pre)
	require.NotNil(t, st)
	require.Equal(t, fwk.Unschedulable, st.Code(), st.Message())
	require.Contains(t, st.Message(), "topology: required")

	statuses := framework.NewDefaultNodeToStatus()
	statuses.Set("d", st)
	res, pst := h.fh.RunPostFilterPlugins(h.ctx, state, pre, statuses)
	require.True(t, pst.IsSuccess(), "preemption must find a victim: %v", pst.Message())
	require.Equal(t, "d", res.NominatedNodeName)
	require.Equal(t, []string{"low"}, deleted, "the low-priority pod is the victim, never the high one")

	// The victim gone (informer), the pod takes a 2-lane pair.
	require.Eventually(t, func() bool { return len(h.pl.cache.Used("d")) == 3 }, 5*time.Second, 10*time.Millisecond)
	_, got, st, _ := h.schedule(pre)
	require.Nil(t, st)
	set, _ := n.SetOfUUIDs(got)
	g := set.Indexes()
	require.Len(t, g, 2)
	require.Equal(t, 2, topology.DGX1Lanes[g[0]][g[1]], "GPUs %v", g)
}

// The same kind through the plugin's PreFilter extensions alone, for
// victims holding each kind of device: the preemptor fits with the victim
// removed and no longer fits with it added back.
func TestRemoveThenAddBackRestoresTheVictim(t *testing.T) {
	// 4-GPU NVSwitch node: GPU 3 in MIG mode with two 3g.20gb devices;
	// GPU 2 time-shared in 4 replicas; GPUs 0,1 whole.
	node := func() *topology.Node {
		n := fixture.WithMIG(fixture.NVSwitch("m", "A100", 4, 12), 3, 4, "3g.20gb", "3g.20gb")
		n.GPUs[2].Replicas = 4
		return n
	}
	n := node()
	tests := []struct {
		name   string
		victim *v1.Pod
		others []*v1.Pod
		pod    *v1.Pod
	}{{
		// Whole: "other" holds GPU 0, the victim GPU 1; a 2-GPU pod needs GPU 1.
		name:   "whole GPUs",
		victim: boundPod(t, "victim", "m", 0, "nvidia.com/gpu", ids(n, 1)...),
		others: []*v1.Pod{boundPod(t, "other", "m", 1000, "nvidia.com/gpu", ids(n, 0)...)},
		pod:    gpuPod("p", "nvidia.com/gpu", 2),
	}, {
		// MIG: the victim holds one 3g.20gb, "other" the second.
		name:   "MIG device",
		victim: boundPod(t, "victim", "m", 0, "nvidia.com/mig-3g.20gb", n.MIG[0].UUID),
		others: []*v1.Pod{boundPod(t, "other", "m", 1000, "nvidia.com/mig-3g.20gb", n.MIG[1].UUID)},
		pod:    gpuPod("p", "nvidia.com/mig-3g.20gb", 1),
	}, {
		// Replicas: the victim holds 3 of GPU 2's 4 replicas; the pod asks 2.
		name:   "replicas",
		victim: boundPod(t, "victim", "m", 0, "nvidia.com/gpu.shared", replicas(n, 2, 0, 1, 2)...),
		pod:    gpuPod("p", "nvidia.com/gpu.shared", 2),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods := append([]*v1.Pod{tt.victim}, tt.others...)
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "m", n)}, pods...)
			require.Eventually(t, func() bool {
				_, _, ok := h.pl.cache.PodDevices(tt.victim.UID)
				return ok
			}, 5*time.Second, 10*time.Millisecond)
			ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("m")
			require.NoError(t, err)
			state := framework.NewCycleState()
			_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, tt.pod)
			require.True(t, st.IsSuccess())
			require.Equal(t, fwk.Unschedulable, h.pl.Filter(h.ctx, state, tt.pod, ni).Code(), "blocked by the victim")
			require.Nil(t, h.pl.RemovePod(h.ctx, state, tt.pod, mustPodInfo(t, tt.victim), ni))
			require.True(t, h.pl.Filter(h.ctx, state, tt.pod, ni).IsSuccess(), "fits without the victim")
			require.Nil(t, h.pl.AddPod(h.ctx, state, tt.pod, mustPodInfo(t, tt.victim), ni))
			require.Equal(t, fwk.Unschedulable, h.pl.Filter(h.ctx, state, tt.pod, ni).Code(), "the victim is back: blocked again")
		})
	}
}

// Property: AddPod and RemovePod are exact inverses over the node's device
// state. A node holds pods of every kind (whole GPUs, a MIG device,
// replicas, a pod known only from the in-use report, a pod holding
// nothing); nominated pods of every kind come and go. After any random
// sequence of RemovePod (of a present pod) and AddPod (of an absent one)
// the adjusted state is the one the net change alone gives, and undoing
// the sequence in reverse restores the start exactly.
func TestAddRemovePodAreExactInverses(t *testing.T) {
	n := fixture.WithMIG(fixture.DGX1V100("x"), 7, 2, "2g.10gb", "2g.10gb", "2g.10gb")
	n.GPUs[6].Replicas = 4
	held := []*v1.Pod{
		boundPod(t, "whole", "x", 0, "nvidia.com/gpu", ids(n, 0, 3)...),
		boundPod(t, "mig", "x", 0, "nvidia.com/mig-2g.10gb", n.MIG[1].UUID),
		boundPod(t, "shared", "x", 0, "nvidia.com/gpu.shared", replicas(n, 6, 0, 1)...),
		gpuPod("foreign", "nvidia.com/gpu", 1), // in the in-use report only
		{ObjectMeta: gpuPod("cpu", "cpu", 1).ObjectMeta, Spec: v1.PodSpec{NodeName: "x", Containers: []v1.Container{{Name: "c"}}}},
	}
	held[3].Spec.NodeName = "x"
	nominated := []*v1.Pod{
		gpuPod("n-whole", "nvidia.com/gpu", 2),
		gpuPod("n-whole-req", "nvidia.com/gpu", 2, protocol.TopologyHintAnnotation, "required"),
		gpuPod("n-mig", "nvidia.com/mig-2g.10gb", 1),
		gpuPod("n-shared", "nvidia.com/gpu.shared", 3),
		gpuPod("n-bad", "nvidia.com/gpu", -1),
	}
	node := gpuNode(t, "x", n)
	inUse, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "default", Name: "foreign", UID: "uid-foreign"}, Devices: ids(n, 5)}})
	require.NoError(t, err)
	node.Annotations[protocol.InUseAnnotation] = inUse
	h := newHarness(t, nil, []*v1.Node{node}, held...)
	require.Eventually(t, func() bool { return len(h.pl.cache.Used("x")) == 6 }, 5*time.Second, 10*time.Millisecond)
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("x")
	require.NoError(t, err)
	view, err := h.pl.cache.ViewNodeInfo(ni)
	require.NoError(t, err)
	stateOf := func(cs fwk.CycleState) *score.State {
		s, err := readState(cs)
		require.NoError(t, err)
		if a := s.adjust["x"]; a != nil {
			return h.pl.adjusted(view, a, false).State
		}
		return view.State
	}
	preemptor := gpuPod("pre", "nvidia.com/gpu", 1)
	start := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, start, preemptor)
	require.True(t, st.IsSuccess())
	initial := h.pl.adjusted(view, &adjustment{}, false).State
	require.Equal(t, initial, stateOf(start))

	all := append(slices.Clone(held), nominated...)
	type op struct {
		pod *v1.Pod
		add bool
	}
	rng := rand.New(rand.NewPCG(12, 2))
	for round := range 200 {
		present := map[types.UID]bool{}
		for _, p := range held {
			present[p.UID] = true
		}
		cs := start.Clone()
		var ops []op
		var firstAdded []*v1.Pod // nominated pods in the order first added
		apply := func(cs fwk.CycleState, o op) {
			pi := mustPodInfo(t, o.pod)
			if o.add {
				require.Nil(t, h.pl.AddPod(h.ctx, cs, preemptor, pi, ni))
			} else {
				require.Nil(t, h.pl.RemovePod(h.ctx, cs, preemptor, pi, ni))
			}
		}
		for range 1 + rng.IntN(12) {
			p := all[rng.IntN(len(all))]
			o := op{pod: p, add: !present[p.UID]}
			present[p.UID] = o.add
			if o.add && !slices.Contains(held, p) && !slices.Contains(firstAdded, p) {
				firstAdded = append(firstAdded, p)
			}
			apply(cs, o)
			ops = append(ops, o)
		}
		// The net change alone: the absent held pods removed, the present
		// nominated pods added in the order they were first added.
		net := start.Clone()
		for _, p := range held {
			if !present[p.UID] {
				apply(net, op{pod: p})
			}
		}
		for _, p := range firstAdded {
			if present[p.UID] {
				apply(net, op{pod: p, add: true})
			}
		}
		require.Equal(t, stateOf(net), stateOf(cs), "round %d: the state depends on the net change only", round)
		// Undo in reverse: the start again.
		for i := len(ops) - 1; i >= 0; i-- {
			apply(cs, op{pod: ops[i].pod, add: !ops[i].add})
		}
		require.Equal(t, initial, stateOf(cs), "round %d: undoing %d operations restores the node", round, len(ops))
	}
}

// A nominated pod that the cache already holds on the node (it was
// reserved meanwhile) is not counted twice, and adding a victim back that
// was never removed changes nothing.
func TestAddPodOfAHeldPodCountsOnce(t *testing.T) {
	n := fixture.NVSwitch("o", "H100", 4, 18)
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "o", n)})
	h.pl.cache.Assume("uid-nom", "o", ids(n, 0, 1))
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("o")
	require.NoError(t, err)
	pod := gpuPod("p", "nvidia.com/gpu", 2)
	state := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	require.True(t, st.IsSuccess())
	// 4 GPUs, "nom" holds 2 (the cache), counted once: 2 free, the pod fits.
	require.Nil(t, h.pl.AddPod(h.ctx, state, pod, mustPodInfo(t, gpuPod("nom", "nvidia.com/gpu", 2)), ni))
	require.True(t, h.pl.Filter(h.ctx, state, pod, ni).IsSuccess())
	big := gpuPod("big", "nvidia.com/gpu", 3)
	bs := framework.NewCycleState()
	_, st, _ = h.fh.RunPreFilterPlugins(h.ctx, bs, big)
	require.True(t, st.IsSuccess())
	require.Equal(t, fwk.Unschedulable, h.pl.Filter(h.ctx, bs, big, ni).Code())
}
