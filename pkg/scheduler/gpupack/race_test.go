package gpupack

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Scheduling cycles (PreFilter to Bind) while the device plugin keeps
// rewriting the node's annotations: GPU 7's health flips, GPUs 6 and 7
// vanish and come back (a GPU count change), and the in-use report lists
// a foreign pod on GPU 0 throughout. The binding is applied by the fake
// apiserver and delivered by the informer like any update. Run with
// -race: no data race, no panic or deadlock, and no GPU given twice or
// given while the foreign pod holds it (8 - 1 = 7 pods at most).
func TestCyclesDuringNodeChurn(t *testing.T) {
	full := fixture.PCIe("c", "T4", 8)
	sick := fixture.PCIe("c", "T4", 8)
	sick.GPUs[7].Healthy = false
	six := fixture.PCIe("c", "T4", 6) // GPUs 0-5: the same UUIDs
	inUse, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "o", Name: "foreign", UID: "foreign"}, Devices: ids(full, 0)}})
	require.NoError(t, err)
	var layouts []string
	for _, n := range []*topology.Node{full, sick, six} {
		raw, err := protocol.EncodeTopology(n)
		require.NoError(t, err)
		layouts = append(layouts, raw)
	}
	var pods []*v1.Pod
	for i := range 12 {
		pods = append(pods, gpuPod(fmt.Sprintf("p%d", i), "nvidia.com/gpu", 1))
	}
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "c", full, ids(full, 0)...)}, pods...)
	pr := v1.SchemeGroupVersion.WithResource("pods")
	h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		pod, err := boundByBinding(h, a)
		if err != nil {
			return true, nil, err
		}
		return true, nil, h.cs.Tracker().Update(pr, pod, pod.Namespace, metav1.UpdateOptions{})
	})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the device plugin
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n, err := h.cs.CoreV1().Nodes().Get(h.ctx, "c", metav1.GetOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			n.Annotations[protocol.TopologyAnnotation] = layouts[i%len(layouts)]
			n.Annotations[protocol.InUseAnnotation] = inUse
			if _, err := h.cs.CoreV1().Nodes().Update(h.ctx, n, metav1.UpdateOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for _, p := range pods {
		node, _, st, state := h.schedule(p)
		if st != nil {
			continue
		}
		if !h.fh.RunBindPlugins(h.ctx, state, p, node).IsSuccess() {
			h.fh.RunReservePluginsUnreserve(h.ctx, state, p, node)
		}
	}
	close(stop)
	wg.Wait()

	given := map[string]string{}
	for _, p := range pods {
		obj, err := h.cs.Tracker().Get(pr, p.Namespace, p.Name)
		require.NoError(t, err)
		raw, ok := obj.(*v1.Pod).Annotations[protocol.DevicesAnnotation]
		if !ok {
			continue
		}
		d, err := protocol.DecodeDevices(raw)
		require.NoError(t, err)
		for _, id := range d.Resources["nvidia.com/gpu"] {
			require.NotEqual(t, full.GPUs[0].UUID, id, "%s got the foreign pod's GPU", p.Name)
			prev, twice := given[id]
			require.False(t, twice, "%s given to %s and %s", id, prev, p.Name)
			given[id] = p.Name
		}
	}
	require.NotEmpty(t, given, "some pods are placed")
	require.LessOrEqual(t, len(given), 7)
}

// The node is deleted between Filter and Reserve (the cycle's snapshot
// still has it): Reserve may hold devices there, but nothing outlives the
// pod: after Unreserve (the bind failed) or the pod's deletion the cache
// keeps no entry of the node and no device held.
func TestNodeDeletedMidCycle(t *testing.T) {
	for _, end := range []string{"unreserve", "pod deleted"} {
		t.Run(end, func(t *testing.T) {
			topo := fixture.DGX1V100("d")
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "d", topo)})
			c := h.pl.cache.(*gpucache.Cache)
			require.Eventually(t, func() bool { return c.Decoded() == 1 }, 5*time.Second, time.Millisecond)
			pod := gpuPod("p", "nvidia.com/gpu", 2)
			cs, st := h.filterOn(pod, "d")
			require.True(t, st.IsSuccess(), st.Message())
			require.NoError(t, h.cs.CoreV1().Nodes().Delete(h.ctx, "d", metav1.DeleteOptions{}))
			require.Eventually(t, func() bool { return c.Nodes() == 0 }, 5*time.Second, time.Millisecond)

			// Reserve on the snapshot's Node object: 2 GPUs held.
			st = h.fh.RunReservePluginsReserve(h.ctx, cs, pod, "d")
			require.True(t, st.IsSuccess(), st.Message())
			require.Len(t, c.Used("d"), 2)
			if end == "unreserve" {
				h.fh.RunReservePluginsUnreserve(h.ctx, cs, pod, "d")
			} else {
				c.Forget(pod.UID)
			}
			require.Empty(t, c.Used("d"))
			require.Zero(t, c.Nodes(), "an entry of a deleted node outlived its last pod")
			held, _ := c.Assumed(pod.UID)
			require.False(t, held)
		})
	}
}
