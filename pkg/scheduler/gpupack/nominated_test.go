package gpupack

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// nominator is the scheduling queue's pod nominator, reduced to a map.
type nominator struct {
	mu   sync.Mutex
	pods map[string][]fwk.PodInfo
}

func (n *nominator) AddNominatedPod(_ klog.Logger, pi fwk.PodInfo, ni *fwk.NominatingInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	node := pi.GetPod().Status.NominatedNodeName
	if ni != nil && ni.Mode() == fwk.ModeOverride {
		node = ni.NominatedNodeName
	}
	n.pods[node] = append(n.pods[node], pi)
}

func (n *nominator) DeleteNominatedPodIfExists(*v1.Pod) {}

func (n *nominator) UpdateNominatedPod(klog.Logger, *v1.Pod, fwk.PodInfo) {}

func (n *nominator) NominatedPodsForNode(node string) []fwk.PodInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pods[node]
}

// withNominated is the harness with these pods nominated to node.
func withNominated(t *testing.T, node string, pods ...*v1.Pod) harnessOptions {
	n := &nominator{pods: map[string][]fwk.PodInfo{}}
	for _, p := range pods {
		n.pods[node] = append(n.pods[node], mustPodInfo(t, p))
	}
	return harnessOptions{options: []frameworkruntime.Option{frameworkruntime.WithPodNominator(n)}}
}

func withPriority(p *v1.Pod, prio int32) *v1.Pod {
	p.Spec.Priority = ptr.To(prio)
	return p
}

// filterWithNominated runs PreFilter and the framework's Filter with the
// nominated pods (as the scheduler does), then Reserve on node.
func (h *harness) filterWithNominatedThenReserve(pod *v1.Pod, node string) (filter, reserve *fwk.Status, got []string) {
	h.t.Helper()
	state := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	require.True(h.t, st.IsSuccess(), st.Message())
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get(node)
	require.NoError(h.t, err)
	if filter = h.fh.RunFilterPluginsWithNominatedPods(h.ctx, state, pod, ni); !filter.IsSuccess() {
		return filter, nil, nil
	}
	reserve = h.fh.RunReservePluginsReserve(h.ctx, state, pod, node)
	_, got, _ = h.pl.cache.PodDevices(pod.UID)
	return filter, reserve, got
}

// Issue 12, item 3. DGX-1 with GPUs 0,1,4 in use (the node's report):
// free {2,3,5,6,7}. A 3-GPU pod of priority 100 with topology: required
// is nominated to the node; its only qualifying set is {5,6,7} (5-6 and
// 6-7 2 lanes, 5-7 one: a ring of 25 GB/s, the best a triple of this
// shape has; the other free triples cross PCIe). A 1-GPU pod of priority 0
// passes Filter with the nominated pod counted and must get GPU 2 or 3 in
// Reserve: it used to get GPU 5 (the card whose loss breaks no good pair
// when the nominated pod is not counted), leaving the nominated pod no set.
func TestReserveKeepsTheNominatedPodsDevices(t *testing.T) {
	n := fixture.DGX1V100("r")
	nom := withPriority(gpuPod("nom", "nvidia.com/gpu", 3, protocol.TopologyHintAnnotation, "required"), 100)
	small := withPriority(gpuPod("small", "nvidia.com/gpu", 1), 0)
	node := gpuNode(t, "r", n, ids(n, 0, 1, 4)...)

	// Without a nominated pod, the small pod takes GPU 5.
	h0 := newHarness(t, nil, []*v1.Node{node})
	_, got, st, _ := h0.schedule(small)
	require.Nil(t, st)
	require.Equal(t, ids(n, 5), got, "the choice the nominated pod must be protected from")

	h := newHarnessWith(t, withNominated(t, "r", nom), nil, []*v1.Node{node})
	filter, reserve, got := h.filterWithNominatedThenReserve(small, "r")
	require.True(t, filter.IsSuccess(), filter.Message())
	require.True(t, reserve.IsSuccess(), reserve.Message())
	require.Len(t, got, 1)
	require.Contains(t, ids(n, 2, 3), got[0])

	// The nominated pod's turn: it is not counted against itself and gets {5,6,7}.
	_, _, got = h.filterWithNominatedThenReserve(nom, "r")
	require.Equal(t, ids(n, 5, 6, 7), got)
}

// Same kind: the nominated pods Reserve respects are exactly those Filter
// counts: of at least the pod's priority, not the pod itself, not already
// held; of every device kind.
func TestReserveRespectsTheNominatedPodsFilterCounted(t *testing.T) {
	dgx := fixture.DGX1V100("q")
	mig := fixture.WithMIG(fixture.NVSwitch("g", "A100", 2, 12), 0, 4, "3g.20gb", "3g.20gb")
	shared := fixture.Shared(fixture.NVSwitch("s", "A100", 2, 12), 4)
	tests := []struct {
		name      string
		node      *v1.Node
		nominated []*v1.Pod
		pod       *v1.Pod
		assumed   []string   // devices the cache holds for the first nominated pod
		want      [][]string // acceptable choices
		rejected  bool
	}{{
		// Lower priority nominated pod: not counted, the small pod takes 5.
		name:      "lower-priority nominated pod is not counted",
		node:      gpuNode(t, "n", dgx, ids(dgx, 0, 1, 4)...),
		nominated: []*v1.Pod{withPriority(gpuPod("nom", "nvidia.com/gpu", 3, protocol.TopologyHintAnnotation, "required"), 0)},
		pod:       withPriority(gpuPod("small", "nvidia.com/gpu", 1), 10),
		want:      [][]string{ids(dgx, 5)},
	}, {
		// Equal priority counts (kube-scheduler: >=).
		name:      "equal-priority nominated pod is counted",
		node:      gpuNode(t, "n", dgx, ids(dgx, 0, 1, 4)...),
		nominated: []*v1.Pod{withPriority(gpuPod("nom", "nvidia.com/gpu", 3, protocol.TopologyHintAnnotation, "required"), 10)},
		pod:       withPriority(gpuPod("small", "nvidia.com/gpu", 1), 10),
		want:      [][]string{ids(dgx, 2), ids(dgx, 3)},
	}, {
		// A nominated pod the cache already holds on the node (reserved
		// meanwhile, on GPU 7) is in the usage already, once: GPU 6 is
		// free for the pod (counted twice, nothing would be).
		name:      "a held nominated pod counts once",
		node:      gpuNode(t, "n", dgx, ids(dgx, 0, 1, 2, 3, 4, 5)...),
		nominated: []*v1.Pod{withPriority(gpuPod("other", "nvidia.com/gpu", 1), 10)},
		assumed:   ids(dgx, 7),
		pod:       withPriority(gpuPod("small", "nvidia.com/gpu", 1), 0),
		want:      [][]string{ids(dgx, 6)},
	}, {
		// MIG: two 3g.20gb, a nominated pod asks one: Filter admits the pod
		// on the other, Reserve gives it one and keeps one free.
		name:      "MIG",
		node:      gpuNode(t, "n", mig),
		nominated: []*v1.Pod{withPriority(gpuPod("nom", "nvidia.com/mig-3g.20gb", 1), 10)},
		pod:       withPriority(gpuPod("m", "nvidia.com/mig-3g.20gb", 1), 0),
		want:      [][]string{{mig.MIG[0].UUID}, {mig.MIG[1].UUID}},
	}, {
		// MIG: a nominated pod asks both: nothing left.
		name:      "MIG, none left",
		node:      gpuNode(t, "n", mig),
		nominated: []*v1.Pod{withPriority(gpuPod("nom", "nvidia.com/mig-3g.20gb", 2), 10)},
		pod:       withPriority(gpuPod("m", "nvidia.com/mig-3g.20gb", 1), 0),
		rejected:  true,
	}, {
		// Replicas: 2 GPUs x 4; GPU 0 has 3 used, so the nominated 4
		// replicas go on GPU 1 (packed); the pod's 1 replica on GPU 0.
		name:      "replicas",
		node:      gpuNode(t, "n", shared, replicas(shared, 0, 0, 1, 2)...),
		nominated: []*v1.Pod{withPriority(gpuPod("nom", "nvidia.com/gpu.shared", 4), 10)},
		pod:       withPriority(gpuPod("s", "nvidia.com/gpu.shared", 1), 0),
		want:      [][]string{replicas(shared, 0, 3)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessWith(t, withNominated(t, "n", tt.nominated...), nil, []*v1.Node{tt.node})
			if tt.assumed != nil {
				h.pl.cache.Assume(tt.nominated[0].UID, "n", tt.assumed)
			}
			filter, reserve, got := h.filterWithNominatedThenReserve(tt.pod, "n")
			if tt.rejected {
				require.False(t, filter.IsSuccess())
				return
			}
			require.True(t, filter.IsSuccess(), filter.Message())
			require.True(t, reserve.IsSuccess(), reserve.Message())
			require.Contains(t, tt.want, got)
		})
	}
}

func TestNominatedPodsAndVictims(t *testing.T) {
	// 4-GPU NVSwitch node; "victim" holds GPUs 0 and 1 (bound, annotated).
	n := fixture.NVSwitch("v", "H100", 4, 18)
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

// A nominated pod whose regular init container asks replicas its app
// containers ask too is one pod-level request (sizing.go): its replicas
// are placed per container, as Filter and Reserve place the pod itself
// (choosePooled). Placed as one allocation of the pooled peak, such a pod
// did not fit any GPU, so it was counted as holding nothing, and a
// lower-priority pod was admitted on the replicas it waits for.
func TestNominatedPooledReplicasAreCounted(t *testing.T) {
	// 2 GPUs x 4 replicas = 8.
	shared := fixture.Shared(fixture.NVSwitch("s", "A100", 2, 12), 4)
	// 4 GPUs x 2 replicas = 8, spread.
	spread := replicaNode("sp", "nvidia.com/gpu", 2, topology.PolicySpread)
	tests := []struct {
		name      string
		node      *topology.Node
		res       string
		nominated *v1.Pod
		pod       *v1.Pod
	}{{
		// Packed: init 4, app 4 + 4: peak 8, each app container's 4 on
		// one GPU: both GPUs full, no replica left for the small pod.
		name:      "packed, init 4 + 4 + 4",
		node:      shared,
		res:       "nvidia.com/gpu.shared",
		nominated: fixture.MakePod().Named("nom").Priority(10).InitContainer("i").Limit("nvidia.com/gpu.shared", 4).Container("c").Limit("nvidia.com/gpu.shared", 4).Container("d").Limit("nvidia.com/gpu.shared", 4).Obj(),
		pod:       withPriority(gpuPod("small", "nvidia.com/gpu.shared", 1), 0),
	}, {
		// Packed: init 1, app 3 + 4: new replicas 1, 2, 4 (peak 7): 1 + 2
		// on one GPU (3 of 4) and 4 on the other: 1 replica left, not
		// the 2 on one GPU the pod asks.
		name:      "packed, init 1 + 3 + 4",
		node:      shared,
		res:       "nvidia.com/gpu.shared",
		nominated: fixture.MakePod().Named("nom").Priority(10).InitContainer("i").Limit("nvidia.com/gpu.shared", 1).Container("c").Limit("nvidia.com/gpu.shared", 3).Container("d").Limit("nvidia.com/gpu.shared", 4).Obj(),
		pod:       withPriority(gpuPod("small", "nvidia.com/gpu.shared", 2), 0),
	}, {
		// Spread: init 3, app 3 + 3: new replicas 3 and 3 (peak 6), each
		// on 3 distinct GPUs: 2+2+1+1 of the 4 GPUs' 2 replicas used, so
		// only 2 GPUs have one free, not the 3 distinct the pod asks.
		// The peak as one request would need 6 distinct GPUs.
		name:      "spread, init 3 + 3 + 3",
		node:      spread,
		res:       "nvidia.com/gpu",
		nominated: fixture.MakePod().Named("nom").Priority(10).InitContainer("i").Limit("nvidia.com/gpu", 3).Container("c").Limit("nvidia.com/gpu", 3).Container("d").Limit("nvidia.com/gpu", 3).Obj(),
		pod:       withPriority(gpuPod("small", "nvidia.com/gpu", 3), 0),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := gpuNode(t, "n", tt.node)
			// Alone on the node, the nominated pod fits (as Filter places it).
			h0 := newHarness(t, nil, []*v1.Node{node})
			_, _, st, _ := h0.schedule(tt.nominated)
			require.Nil(t, st)

			h := newHarnessWith(t, withNominated(t, "n", tt.nominated), nil, []*v1.Node{node})
			filter, _, got := h.filterWithNominatedThenReserve(tt.pod, "n")
			require.Equal(t, fwk.Unschedulable, filter.Code(), "the pod got %v of the nominated pod's replicas", got)
		})
	}
}
