package gpupack

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
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
