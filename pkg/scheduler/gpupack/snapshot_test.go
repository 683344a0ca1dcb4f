package gpupack

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// filterThen runs PreFilter and Filter for pod on node (the cycle's
// snapshot), then change (the informer delivers something), then Reserve
// in the same cycle, as kube-scheduler does: the snapshot's Node object is
// the one taken at the start of the cycle.
func (h *harness) filterThen(pod *v1.Pod, node string, change func()) (filter, reserve *fwk.Status, got []string) {
	h.t.Helper()
	cs := framework.NewCycleState()
	_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, cs, pod)
	require.True(h.t, st.IsSuccess(), st.Message())
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get(node)
	require.NoError(h.t, err)
	if st := h.fh.RunFilterPlugins(h.ctx, cs, pod, ni); !st.IsSuccess() {
		return st, nil, nil
	}
	change()
	st = h.fh.RunReservePluginsReserve(h.ctx, cs, pod, node)
	_, got, _ = h.pl.cache.PodDevices(pod.UID)
	return nil, st, got
}

// A node's newer state delivered by the informer between Filter and
// Reserve (in the same cycle, whose snapshot holds the older Node object)
// must not be forgotten by Reserve: a GPU another scheduler's pod took
// (the in-use report) or a GPU gone unhealthy must not be chosen.
func TestReserveAfterNodeChangedSinceSnapshot(t *testing.T) {
	// DGX-1, idle in the snapshot. After Filter, the device plugin reports
	// GPUs 0-6 taken by a foreign pod (or unhealthy): only GPU 7 may be
	// given, or Reserve fails.
	for _, tc := range []struct {
		name     string
		update   func(n *v1.Node, topo *topology.Node)
		wantFail bool // no GPU may be given at all
	}{
		{name: "in-use report", update: func(n *v1.Node, topo *topology.Node) {
			u, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "o", Name: "o", UID: "foreign"}, Devices: ids(topo, 0, 1, 2, 3, 4, 5, 6)}})
			require.NoError(t, err)
			n.Annotations[protocol.InUseAnnotation] = u
		}},
		{name: "unhealthy", update: func(n *v1.Node, topo *topology.Node) {
			sick := *topo
			sick.GPUs = append([]topology.GPU(nil), topo.GPUs...)
			for i := range 7 {
				sick.GPUs[i].Healthy = false
			}
			raw, err := protocol.EncodeTopology(&sick)
			require.NoError(t, err)
			n.Annotations[protocol.TopologyAnnotation] = raw
		}},
		{name: "unreadable in-use report", wantFail: true, update: func(n *v1.Node, _ *topology.Node) {
			n.Annotations[protocol.InUseAnnotation] = "{not json"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := fixture.DGX1V100("a")
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "a", topo)})
			// The informer has delivered the node, as a running scheduler's
			// has before its first cycle.
			require.Eventually(t, func() bool { return h.pl.cache.(*gpucache.Cache).Decoded() >= 1 }, 5*time.Second, time.Millisecond)
			filter, reserve, got := h.filterThen(gpuPod("p", "nvidia.com/gpu", 1), "a", func() {
				n, err := h.cs.CoreV1().Nodes().Get(h.ctx, "a", metav1.GetOptions{})
				require.NoError(t, err)
				tc.update(n, topo)
				_, err = h.cs.CoreV1().Nodes().Update(h.ctx, n, metav1.UpdateOptions{})
				require.NoError(t, err)
				require.Eventually(t, func() bool {
					tp := h.pl.cache.(*gpucache.Cache).Topology("a")
					_, err := h.pl.cache.ViewNode(n)
					return len(h.pl.cache.Used("a")) == 7 || (tp != nil && !tp.GPUs[0].Healthy) || (err != nil && tc.wantFail)
				}, 5*time.Second, time.Millisecond)
			})
			require.Nil(t, filter)
			if tc.wantFail {
				require.False(t, reserve.IsSuccess(), "the node's in-use report is unreadable, yet Reserve gave %v", got)
				return
			}
			if reserve.IsSuccess() {
				require.Equal(t, ids(topo, 7), got, "only GPU 7 is free and healthy now")
			}
		})
	}
}
