package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/score/scoretest"
	"github.com/gpupack/gpupack/pkg/topology"
)

// pinnedArgs are the default args with the workload pinned to prior.
func pinnedArgs(t *testing.T, prior ...config.TaskTypeWeight) *config.GPUPackArgs {
	t.Helper()
	a, err := toArgs(nil)
	require.NoError(t, err)
	a.Workload.Prior = prior
	a.Workload.Pin = true
	return a
}

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
	partial := scoretest.Shared(scoretest.NVSwitch("p", "A100", 3, 12), 10)
	fresh := scoretest.Shared(scoretest.NVSwitch("f", "A100", 3, 12), 10)
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

func TestBadPodRequests(t *testing.T) {
	n := scoretest.DGX1V100("bad")
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", n)})
	tests := []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"negative count", gpuPod("neg", "nvidia.com/gpu", -1), `container "main": nvidia.com/gpu quantity -1 is not a whole number of devices`},
		{"fraction", func() *v1.Pod {
			p := gpuPod("frac", "nvidia.com/gpu", 1)
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("500m")
			return p
		}(), "quantity 500m is not a whole number"},
		{"absurd count", gpuPod("huge", "nvidia.com/gpu", 1<<30), "quantity 1073741824 is not a whole number"},
		{"malformed hint", gpuPod("hint", "nvidia.com/gpu", 2, "gpupack.io/topology", "fastest"), `annotation gpupack.io/topology: topology hint "fastest": want required, preferred or none`},
		{"bad init container", func() *v1.Pod {
			p := gpuPod("init", "nvidia.com/gpu", 1)
			p.Spec.InitContainers = []v1.Container{{Name: "setup", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{"nvidia.com/mig-1g.5gb": resource.MustParse("-2")}}}}
			return p
		}(), `init container "setup": nvidia.com/mig-1g.5gb quantity -2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, st, _ := h.schedule(tt.pod)
			require.NotNil(t, st)
			require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
			require.Contains(t, st.Message(), tt.want)
		})
	}
	// A count no node of the resource's kind holds is known once the node
	// says the kind (whole GPUs here): Filter rejects it for good.
	t.Run("more than a node holds", func(t *testing.T) {
		pod := gpuPod("big", "nvidia.com/gpu", 65)
		_, _, st, _ := h.schedule(pod)
		require.NotNil(t, st)
		require.Contains(t, st.Message(), "65 GPUs is more than a node holds")
		ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("n")
		require.NoError(t, err)
		require.Equal(t, fwk.UnschedulableAndUnresolvable, h.fh.RunFilterPlugins(h.ctx, newCycleState(t, h, pod), pod, ni).Code())
	})
}

func TestMalformedInUseMakesNodeUnusable(t *testing.T) {
	// We cannot know which GPUs are in use on "broken": it gets no GPU pod
	// (with the reason), "ok" still does.
	broken := gpuNode(t, "broken", scoretest.DGX1V100("x"))
	broken.Annotations[protocol.InUseAnnotation] = `{"version":"v1","pods":[{"devices":[""]}]}`
	h := newHarness(t, nil, []*v1.Node{broken, gpuNode(t, "ok", scoretest.DGX1V100("y"))})
	pod := gpuPod("p", "nvidia.com/gpu", 1)
	state := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	require.True(t, st.IsSuccess())
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("broken")
	require.NoError(t, err)
	st = h.fh.RunFilterPlugins(h.ctx, state, pod, ni)
	require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	require.Contains(t, st.Message(), "gpupack.io/in-use report is unreadable, so which GPUs are in use is unknown")
	node, _, st2, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 1))
	require.Nil(t, st2)
	require.Equal(t, "ok", node)
}

func TestInitContainers(t *testing.T) {
	// NVSwitch box of 4 GPUs with 1 in use: 3 free.
	n := scoretest.NVSwitch("i", "H100", 4, 18)
	withInit := func(name string, initGPUs int64, app ...int64) *v1.Pod {
		p := gpuPod(name, "nvidia.com/gpu", app[0])
		for k, a := range app[1:] {
			p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "app" + string(rune('a'+k)), Resources: v1.ResourceRequirements{
				Limits: v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(a, resource.DecimalSI)}}})
		}
		p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(initGPUs, resource.DecimalSI)}}}}
		return p
	}
	tests := []struct {
		name   string
		pod    *v1.Pod
		fits   bool
		wantN  int
		holder string // a container named in the devices annotation
		held   int    // how many devices it holds
	}{
		// max(init 4, app 1) = 4 > 3 free.
		{"init needs more than is free", withInit("a", 4, 1), false, 0, "", 0},
		// max(init 3, app 1) = 3: the init container's set is the pod's.
		{"init bigger than apps", withInit("b", 3, 1), true, 3, "init", 3},
		// max(init 1, apps 1+1) = 2: the apps' sets.
		{"apps bigger than init", withInit("c", 1, 1, 1), true, 2, "main", 1},
		// a sidecar (restartable init container) adds to the apps: 2+2 > 3.
		{"sidecar adds up", func() *v1.Pod {
			p := withInit("d", 2, 2)
			p.Spec.InitContainers[0].RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
			return p
		}(), false, 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", n, n.GPUs[3].UUID)})
			_, got, st, state := h.schedule(tt.pod)
			if !tt.fits {
				require.NotNil(t, st)
				return
			}
			require.Nil(t, st)
			require.Len(t, got, tt.wantN)
			r, err := state.Read(devicesKey)
			require.NoError(t, err)
			d := r.(*reserved).devices
			require.Len(t, d.Containers[tt.holder]["nvidia.com/gpu"], tt.held)
			require.Len(t, d.Resources["nvidia.com/gpu"], tt.wantN)
		})
	}
}

func TestNominatedPodsAndVictims(t *testing.T) {
	// 4-GPU NVSwitch node; "victim" holds GPUs 0 and 1 (bound, annotated).
	n := scoretest.NVSwitch("v", "H100", 4, 18)
	devs, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids(n, 0, 1)}})
	require.NoError(t, err)
	victim := gpuPod("victim", "nvidia.com/gpu", 2, protocol.DevicesAnnotation, devs)
	victim.Spec.NodeName = "n"
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", n)}, victim)
	require.Eventually(t, func() bool { return len(h.pl.cache.Used("n")) == 2 }, 5e9, 1e7)
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("n")
	require.NoError(t, err)

	pod := gpuPod("p", "nvidia.com/gpu", 2)
	state := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	require.True(t, st.IsSuccess())
	// 2 free: fits.
	require.True(t, h.pl.Filter(h.ctx, state, pod, ni).IsSuccess())

	// A nominated 2-GPU pod takes the 2 free ones: no longer fits.
	nominated := gpuPod("nom", "nvidia.com/gpu", 2)
	withNom := state.Clone()
	require.Nil(t, h.pl.AddPod(h.ctx, withNom, pod, mustPodInfo(t, nominated), ni))
	st = h.pl.Filter(h.ctx, withNom, pod, ni)
	require.Equal(t, fwk.Unschedulable, st.Code())
	// The original state is untouched by the clone's AddPod.
	require.True(t, h.pl.Filter(h.ctx, state, pod, ni).IsSuccess())
	// Removing the nominated pod again: fits.
	require.Nil(t, h.pl.RemovePod(h.ctx, withNom, pod, mustPodInfo(t, nominated), ni))
	require.True(t, h.pl.Filter(h.ctx, withNom, pod, ni).IsSuccess())

	// Preemption: a 4-GPU pod fits only with the victim removed.
	big := gpuPod("big", "nvidia.com/gpu", 4)
	bs := framework.NewCycleState()
	_, st, _ = h.fh.RunPreFilterPlugins(h.ctx, bs, big)
	require.True(t, st.IsSuccess())
	require.Equal(t, fwk.Unschedulable, h.pl.Filter(h.ctx, bs, big, ni).Code())
	require.Nil(t, h.pl.RemovePod(h.ctx, bs, big, mustPodInfo(t, victim), ni))
	require.True(t, h.pl.Filter(h.ctx, bs, big, ni).IsSuccess())
}

func mustPodInfo(t *testing.T, p *v1.Pod) fwk.PodInfo {
	t.Helper()
	pi, err := framework.NewPodInfo(p)
	require.NoError(t, err)
	return pi
}

func TestQueueingHints(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", scoretest.DGX1V100("q"))})
	pl := h.pl
	pending := gpuPod("pending", "nvidia.com/gpu", 4)
	base := gpuNode(t, "n", scoretest.DGX1V100("q"))
	withInUse := gpuNode(t, "n", scoretest.DGX1V100("q"), scoretest.DGX1V100("q").GPUs[0].UUID)
	otherTopo := gpuNode(t, "n", scoretest.NVSwitch("q", "H100", 8, 18))
	relabelled := base.DeepCopy()
	relabelled.Labels = map[string]string{"team": "a"}
	relabelled.Annotations["unrelated"] = "x"
	plain := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cpu-only"}}

	nodeCases := []struct {
		name     string
		old, new *v1.Node
		want     fwk.QueueingHint
	}{
		{"GPU node added", nil, base, fwk.Queue},
		{"CPU-only node added", nil, plain, fwk.QueueSkip},
		{"in-use report changed", withInUse, base, fwk.Queue},
		{"topology changed", base, otherTopo, fwk.Queue},
		{"unrelated label and annotation", base, relabelled, fwk.QueueSkip},
	}
	for _, tt := range nodeCases {
		t.Run(tt.name, func(t *testing.T) {
			var oldObj any
			if tt.old != nil {
				oldObj = tt.old
			}
			got, err := pl.isSchedulableAfterNodeChange(logger, pending, oldObj, tt.new)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	annotated := gpuPod("held", "nvidia.com/gpu", 2, protocol.DevicesAnnotation, `{"version":"v1","resources":{"nvidia.com/gpu":["GPU-q-0","GPU-q-1"]}}`)
	annotated.Spec.NodeName = "n"
	gpuNoAnno := gpuPod("gpu", "nvidia.com/gpu", 1)
	gpuNoAnno.Spec.NodeName = "n"
	cpuPod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: v1.PodSpec{NodeName: "n", Containers: []v1.Container{{Name: "c",
		Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}}}
	podCases := []struct {
		name    string
		deleted *v1.Pod
		want    fwk.QueueingHint
	}{
		{"GPU pod with devices deleted", annotated, fwk.Queue},
		{"GPU pod placed by another scheduler deleted", gpuNoAnno, fwk.Queue},
		{"CPU pod deleted", cpuPod, fwk.QueueSkip},
	}
	for _, tt := range podCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pl.isSchedulableAfterPodDelete(logger, pending, tt.deleted, nil)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	events, err := pl.EventsToRegister(h.ctx)
	require.NoError(t, err)
	require.Len(t, events, 2)
	require.Equal(t, fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAnnotation}, events[0].Event)
	require.Equal(t, fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, events[1].Event)
}

func TestClusterFragmentation(t *testing.T) {
	// Workload: shared 500m only; the nodes' GPUs are not time-shared, so
	// all free capacity is stranded for it: node "a" (2 GPUs, 1 in use) 1,
	// node "b" (2 free) 2, "junk" (unreadable) nothing: 3 GPUs.
	a := scoretest.NVSwitch("a", "A100", 2, 12)
	b := scoretest.NVSwitch("b", "A100", 2, 12)
	junk := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "junk", Annotations: map[string]string{protocol.TopologyAnnotation: "{"}}}
	h := newHarness(t, pinnedArgs(t, config.TaskTypeWeight{Kind: "shared", Milli: 500, Weight: 1}),
		[]*v1.Node{gpuNode(t, "a", a, a.GPUs[0].UUID), gpuNode(t, "b", b), junk})
	require.Eventually(t, func() bool {
		return h.pl.cache.Fragmentation(h.pl.workload.Distribution()) == 3
	}, 5e9, 1e7)
}

func TestInvalidArgsFailWithEveryError(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	a := pinnedArgs(t, config.TaskTypeWeight{Kind: "whole", Count: 0, Weight: 1})
	a.TopologyWeight = -1
	a.ReplicaPolicy = "scatter"
	_, err := New(ctx, a, nil)
	require.Error(t, err)
	for _, want := range []string{"invalid GPUPack args", "topologyWeight: Invalid value: -1", `replicaPolicy: Unsupported value: "scatter"`, "workload.prior[0]: Invalid value"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = New(ctx, &v1.Pod{}, nil)
	require.ErrorContains(t, err, "want args of type GPUPackArgs, got *v1.Pod")
}

func TestSignPod(t *testing.T) {
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", scoretest.DGX1V100("sig"))})
	sign := func(p *v1.Pod) ([]fwk.SignFragment, *fwk.Status) { return h.pl.SignPod(h.ctx, p) }
	a, st := sign(gpuPod("a", "nvidia.com/gpu", 2))
	require.Nil(t, st)
	require.Equal(t, []fwk.SignFragment{{Key: protocol.RequestsSignature, Value: []string{"hint=preferred", "main/nvidia.com/gpu=2"}}}, a)
	b, _ := sign(gpuPod("b", "nvidia.com/gpu", 2))
	require.Equal(t, a, b, "same request, same signature")
	c, _ := sign(gpuPod("c", "nvidia.com/gpu", 2, "gpupack.io/topology", "required"))
	require.NotEqual(t, a, c, "the hint is signed")
	none, st := sign(&v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "web"}}}})
	require.Nil(t, st)
	require.Equal(t, []fwk.SignFragment{{Key: protocol.RequestsSignature, Value: []string{"hint=preferred"}}}, none)
	_, st = sign(gpuPod("bad", "nvidia.com/gpu", -1))
	require.Equal(t, fwk.Unschedulable, st.Code())
}
