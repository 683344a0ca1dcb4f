package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// In a pod group scheduling cycle kube-scheduler adds the group's pods to
// the snapshot's NodeInfos (Snapshot.AssumePod) and takes them out again
// (ForgetPod) keeping the NodeInfo's generation. The view Filter, Score and
// Reserve plan on must still count the free CPU and memory the NodeInfo
// has now: with the view found by generation alone, a group pod's 48
// cores stayed free for the next group pod, and after ForgetPod the
// forgotten pod's cores stayed taken.
//
// Node "n": 64 cores, 256 GiB. Each step changes the snapshot as
// kube-scheduler does, then reads the view through cycleNodeInfo in a
// cycle of the kind given; want is the free CPU (milli) and memory (MiB).
func TestViewCountsPodGroupAssumedPods(t *testing.T) {
	topo := fixture.PCIe("n", "T4", 2)
	raw, err := protocol.EncodeTopology(topo)
	require.NoError(t, err)
	node := fixture.MakeNode().Name("n").Annotations(protocol.TopologyAnnotation, raw).
		Allocatable(string(v1.ResourceCPU), resource.MustParse("64")).
		Allocatable(string(v1.ResourceMemory), resource.MustParse("256Gi")).Obj()
	groupPod := func(name, cpu, mem string) *v1.Pod {
		return fixture.MakePod().Named(name).Node("n").
			RequestQuantity(string(v1.ResourceCPU), resource.MustParse(cpu)).
			RequestQuantity(string(v1.ResourceMemory), resource.MustParse(mem)).Obj()
	}
	a, b := groupPod("a", "48", "64Gi"), groupPod("b", "8", "16Gi")
	type step struct {
		name    string
		change  func(t *testing.T, s *cache.Snapshot)
		group   bool  // a pod group scheduling cycle
		wantCPU int64 // milli-cores free
		wantMem int64 // MiB free
	}
	assume := func(p *v1.Pod) func(*testing.T, *cache.Snapshot) {
		return func(t *testing.T, s *cache.Snapshot) {
			pi, err := framework.NewPodInfo(p)
			require.NoError(t, err)
			require.NoError(t, s.AssumePod(pi))
		}
	}
	forget := func(p *v1.Pod) func(*testing.T, *cache.Snapshot) {
		return func(t *testing.T, s *cache.Snapshot) {
			logger, _ := ktesting.NewTestContext(t)
			require.NoError(t, s.ForgetPod(logger, p))
		}
	}
	steps := []step{
		{name: "pod's own cycle, nothing assumed", wantCPU: 64000, wantMem: 262144},
		// 64 - 48 = 16 cores, 256 - 64 = 192 GiB = 196608 MiB.
		{name: "group pod a assumed", change: assume(a), group: true, wantCPU: 16000, wantMem: 196608},
		// 16 - 8 = 8 cores, 192 - 16 = 176 GiB = 180224 MiB.
		{name: "group pod b assumed", change: assume(b), group: true, wantCPU: 8000, wantMem: 180224},
		// The group does not fit: b and a forgotten, the node as it was.
		{name: "b forgotten", change: forget(b), group: true, wantCPU: 16000, wantMem: 196608},
		{name: "a forgotten", change: forget(a), group: true, wantCPU: 64000, wantMem: 262144},
		{name: "next pod's own cycle", wantCPU: 64000, wantMem: 262144},
		// Another placement tried in the next group cycle: b alone.
		{name: "group pod b assumed alone", change: assume(b), group: true, wantCPU: 56000, wantMem: 245760},
	}
	h := newHarness(t, nil, []*v1.Node{node})
	snapshot, ok := h.fh.SnapshotSharedLister().(*cache.Snapshot)
	require.True(t, ok, "%T", h.fh.SnapshotSharedLister())
	for _, st := range steps {
		if st.change != nil {
			st.change(t, snapshot)
		}
		ni, err := snapshot.NodeInfos().Get("n")
		require.NoError(t, err)
		cs := framework.NewCycleState()
		if st.group {
			cs.SetPodGroupSchedulingCycle(framework.NewCycleState()) // the group's cycle state
		}
		var ci fwk.CycleState = cs
		view, err := h.pl.cache.ViewNodeInfo(cycleNodeInfo(ci, ni))
		require.NoError(t, err, st.name)
		cpu, mem, known := view.State.FreeResources()
		require.True(t, known, st.name)
		require.Equal(t, st.wantCPU, cpu, st.name)
		require.Equal(t, st.wantMem, mem, st.name)
	}
}
