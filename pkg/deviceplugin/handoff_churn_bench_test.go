package deviceplugin

import (
	"runtime"
	"strconv"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// churn feeds h what the pod informer delivers for n short CPU-only pods on
// the node, live at most 100 at a time: add, update to Succeeded, delete.
// The delete goes to the informer's delete handler when Handoff has one.
func churn(h *Handoff, n int) {
	forget, hasForget := any(h).(interface{ Forget(types.UID) })
	var live []*v1.Pod
	for i := range n {
		p := fixture.MakePod().Name("job-" + strconv.Itoa(i)).Namespace("batch").UID("uid-" + strconv.Itoa(i)).
			Node("node").Container("main").Obj()
		h.Observe(p)
		live = append(live, p)
		if len(live) == 100 {
			for _, old := range live {
				done := old.DeepCopy()
				done.Status.Phase = v1.PodSucceeded
				h.Observe(done)
				if hasForget {
					forget.Forget(old.UID)
				}
			}
			live = live[:0]
		}
	}
}

// BenchmarkHandoffChurn reports what Handoff keeps after 100,000 CPU-only
// pods came and went: "entries" in its arrival map and "retained-B", the
// heap bytes still held (runtime.MemStats after GC, against before).
// Figures, not assertions; TestHandoffForgetsPodsThatGo asserts the count.
func BenchmarkHandoffChurn(b *testing.B) {
	const pods = 100_000
	var entries int
	var retained int64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h := NewHandoff(nil)
		churn(h, pods)
		runtime.GC()
		runtime.ReadMemStats(&after)
		h.mu.Lock()
		entries = len(h.seq)
		h.mu.Unlock()
		retained = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(h)
	}
	b.ReportMetric(float64(entries), "entries")
	b.ReportMetric(float64(retained), "retained-B")
}
