package gpupack

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A node's annotation turns unreadable, and a scheduling cycle's snapshot
// holds the new Node object before the plugin's node handler has run
// (each informer handler runs on its own goroutine; kube-scheduler's own
// one fed the snapshot first). Filter's view folds the new value into the
// node's entry; the handler then delivers the same value. Old: the handler
// compared the value with the entry's, which the view had already taken,
// so it saw no change, and the node never got its GPUTopologyUnreadable /
// GPUInUseUnreadable Warning event nor the error log: the node stayed out
// of GPU scheduling with nothing on it saying why.
//
// Node "n": a DGX-1 with a good topology at resourceVersion 5 (informer);
// then version 7 with the broken annotation. steps run in order, each
// "view" as a cycle's Filter on version 5 or 7, each "handler" as the
// node informer's delivery of it.
func TestReviewUnreadableAnnotationSeenFirstBySnapshotIsReported(t *testing.T) {
	// step is a cycle's view of the node's version rv (view), or the
	// node handler's delivery of it.
	type step struct {
		view bool
		rv   string
	}
	good := gpuNode(t, "n", fixture.DGX1V100("n"))
	good.ResourceVersion = "5"
	for _, tc := range []struct {
		name       string
		annotation string // the key that turns unreadable in version 7
		reason     string // the Warning event's reason
		steps      []step
	}{
		{name: "topology: snapshot, then the handler", annotation: protocol.TopologyAnnotation, reason: "GPUTopologyUnreadable",
			steps: []step{{view: true, rv: "7"}, {rv: "7"}}},
		{name: "in-use: snapshot, then the handler", annotation: protocol.InUseAnnotation, reason: "GPUInUseUnreadable",
			steps: []step{{view: true, rv: "7"}, {rv: "7"}}},
		// The handler lagging two versions: it delivers 5 again (skipped:
		// the entry holds 7), then 7.
		{name: "topology: snapshot, the handler's older object, then 7", annotation: protocol.TopologyAnnotation, reason: "GPUTopologyUnreadable",
			steps: []step{{view: true, rv: "7"}, {rv: "5"}, {rv: "7"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(10)
			h := newHarnessWith(t, harnessOptions{options: []frameworkruntime.Option{frameworkruntime.WithEventRecorder(rec)}}, nil, []*v1.Node{good})
			require.Eventually(t, func() bool { return h.pl.cache.Topology("n") != nil }, 5*time.Second, 10*time.Millisecond)
			bad := good.DeepCopy()
			bad.ResourceVersion = "7"
			bad.Annotations[tc.annotation] = `{"version":"v1","nodes":`
			objs := map[string]*v1.Node{"5": good, "7": bad}
			logger, _ := ktesting.NewTestContext(t)
			for _, s := range tc.steps {
				if s.view {
					_, err := h.pl.cache.ViewNode(objs[s.rv])
					require.ErrorContains(t, err, "malformed JSON", "the cycle sees the broken annotation")
					continue
				}
				h.pl.onNode(logger, objs[s.rv])
			}
			select {
			case note := <-rec.Events:
				require.Contains(t, note, tc.reason)
				require.Contains(t, note, "malformed JSON")
			case <-time.After(time.Second):
				t.Fatalf("no %s event for node n, whose %s no longer decodes", tc.reason, tc.annotation)
			}
		})
	}
}

// The bind call fails after the apiserver applied it; Bind reads the pod
// back (bound, with its devices) and, before it hands the pod to the cache,
// the pod goes: deleted (a force delete), or finished (kube-scheduler's pod
// informer drops a finished pod, which reaches the handlers as a delete;
// the harness's informer delivers the finished pod). The informer's
// handler forgot the pod before Bind added it. Old: Bind added it back,
// nothing would ever forget it again, and its devices stayed held for
// good. Node "e": 4 H100s; p takes all 4, so q (1 GPU) fits only if p's
// are free again: after the sequence 0 of 4 are used.
func TestReviewPodGoneWhileBindReadsItBack(t *testing.T) {
	n := fixture.NVSwitch("e", "H100", 4, 18)
	pods := v1.SchemeGroupVersion.WithResource("pods")
	for _, tc := range []struct {
		name string
		gone func(h *harness, bound *v1.Pod) error
	}{
		{name: "deleted", gone: func(h *harness, bound *v1.Pod) error {
			return h.cs.Tracker().Delete(pods, bound.Namespace, bound.Name)
		}},
		{name: "finished", gone: func(h *harness, bound *v1.Pod) error {
			done := bound.DeepCopy()
			done.Status.Phase = v1.PodSucceeded
			return h.cs.Tracker().Update(pods, done, done.Namespace, metav1.UpdateOptions{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gpuPod("p", "nvidia.com/gpu", 4)
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "e", n)}, p)
			h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "binding" {
					return false, nil, nil
				}
				pod, err := boundByBinding(h, a)
				require.NoError(t, err)
				require.NoError(t, h.cs.Tracker().Update(pods, pod, pod.Namespace, metav1.UpdateOptions{}))
				return true, nil, errors.New("http2: client connection lost")
			})
			h.cs.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				g := a.(k8stesting.GetAction)
				obj, err := h.cs.Tracker().Get(pods, g.GetNamespace(), g.GetName())
				require.NoError(t, err)
				read := obj.(*v1.Pod).DeepCopy()
				require.NotEmpty(t, read.Spec.NodeName, "the binding was applied")
				// The pod goes after the read, and the informer's handler
				// forgets it before Bind hands the read pod to the cache.
				require.NoError(t, tc.gone(h, read))
				require.Eventually(t, func() bool {
					_, _, held := h.pl.cache.PodDevices(p.UID)
					return !held
				}, 5*time.Second, 10*time.Millisecond, "the handler forgets p")
				return true, read, nil
			})
			node, _, st, state := h.schedule(p)
			require.Nil(t, st)
			require.False(t, h.fh.RunBindPlugins(h.ctx, state, p, node).IsSuccess())
			h.fh.RunReservePluginsUnreserve(h.ctx, state, p, node)
			require.Empty(t, h.pl.cache.Used("e"), "p is gone: none of its 4 GPUs is held")
			_, got, st, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 1))
			require.Nil(t, st)
			require.Len(t, got, 1)
		})
	}
}

// A node changes between Filter and Score of one cycle: the plugin's
// informer handlers update the cache while kube-scheduler's cycle runs on
// its snapshot, and Score looks the node up in the cache again. Nodes "a"
// (DGX-1, empty) and "b" (DGX-1, GPUs 0-3 in use); a 1-GPU pod passes
// Filter on both; then "a" fills up (an in-use report or a foreign pod
// bound: 8 of 8 used) or its annotation turns unreadable. Old: Score
// returned an Error for "a", and kube-scheduler fails the pod's whole
// cycle on a Score error (backoff, a FailedScheduling event naming the
// plugin's error) although "b" fits. Now "a" is ranked last (0) and the
// pod is reserved on "b", one of its free GPUs 4-7.
func TestReviewNodeChangedBetweenFilterAndScore(t *testing.T) {
	a, b := fixture.DGX1V100("a"), fixture.DGX1V100("b")
	all := ids(a, 0, 1, 2, 3, 4, 5, 6, 7)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, h *harness)
	}{
		{name: "in-use report lists all of a", change: func(t *testing.T, h *harness) {
			logger, _ := ktesting.NewTestContext(t)
			h.pl.onNode(logger, gpuNode(t, "a", a, all...))
		}},
		{name: "foreign pod bound to a asks all 8", change: func(t *testing.T, h *harness) {
			f := gpuPod("foreign", "nvidia.com/gpu", 8)
			f.Spec.NodeName = "a"
			require.NoError(t, h.pl.cache.AddPod(f))
		}},
		{name: "a's topology turns unreadable", change: func(t *testing.T, h *harness) {
			logger, _ := ktesting.NewTestContext(t)
			n := gpuNode(t, "a", a)
			n.Annotations[protocol.TopologyAnnotation] = `{"version":"v1"`
			h.pl.onNode(logger, n)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "a", a), gpuNode(t, "b", b, ids(b, 0, 1, 2, 3)...)})
			pod := gpuPod("p", "nvidia.com/gpu", 1)
			state := framework.NewCycleState()
			_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
			require.True(t, st.IsSuccess(), st.Message())
			var feasible []fwk.NodeInfo
			for _, name := range []string{"a", "b"} {
				ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get(name)
				require.NoError(t, err)
				require.True(t, h.fh.RunFilterPlugins(h.ctx, state, pod, ni).IsSuccess(), "the pod fits %s", name)
				feasible = append(feasible, ni)
			}
			tc.change(t, h)
			require.True(t, h.fh.RunPreScorePlugins(h.ctx, state, pod, feasible).IsSuccess())
			scores, st := h.fh.RunScorePlugins(h.ctx, state, pod, feasible)
			require.True(t, st.IsSuccess(), "a node that changed since Filter fails the cycle: %s", st.Message())
			got := map[string]int64{}
			for _, s := range scores {
				got[s.Name] = s.TotalScore
			}
			require.Zero(t, got["a"], "a no longer fits: ranked last")
			require.Greater(t, got["b"], got["a"])
			require.True(t, h.fh.RunReservePluginsReserve(h.ctx, state, pod, "b").IsSuccess())
			_, held, _ := h.pl.cache.PodDevices(pod.UID)
			require.Len(t, held, 1)
			require.Contains(t, ids(b, 4, 5, 6, 7), held[0])
		})
	}
}

// boundByBinding is the pod of binding action a as the apiserver applies
// the Binding: the tracker's pod bound to its node, with its annotations
// merged (not stored).
func boundByBinding(h *harness, a k8stesting.Action) (*v1.Pod, error) {
	b := a.(k8stesting.CreateAction).GetObject().(*v1.Binding)
	obj, err := h.cs.Tracker().Get(v1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
	if err != nil {
		return nil, err
	}
	pod := obj.(*v1.Pod).DeepCopy()
	pod.Spec.NodeName = b.Target.Name
	for k, v := range b.Annotations {
		pod.Annotations[k] = v
	}
	return pod, nil
}
