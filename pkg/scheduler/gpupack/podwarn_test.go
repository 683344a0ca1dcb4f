package gpupack

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// TestDevicesAnnotationIgnoredEvent: a bound pod whose gpupack.io/devices
// the cache cannot count got an error log at every update of the pod (each
// status change) and no event, so its owner never learnt why its GPUs were
// counted on unknown devices. Now it gets one Warning event
// (GPUDevicesAnnotationIgnored) per annotation value: none for a status
// update, one more for another bad value, none once a good value is counted,
// and one again if it turns bad after that.
func TestDevicesAnnotationIgnoredEvent(t *testing.T) {
	topo := fixture.DGX1V100("n")
	node := gpuNode(t, "n", topo)
	good := boundPod(t, "p", "n", 0, "nvidia.com/gpu", topo.GPUs[0].UUID)
	goodRaw := good.Annotations[protocol.DevicesAnnotation]
	bad := good.DeepCopy()
	bad.UID = "uid-p"
	bad.Annotations[protocol.DevicesAnnotation] = "{not json"
	rec := events.NewFakeRecorder(10)
	h := newHarnessWith(t, harnessOptions{options: []frameworkruntime.Option{frameworkruntime.WithEventRecorder(rec)}}, nil, []*v1.Node{node}, bad)
	ctx := context.Background()
	pods := h.cs.CoreV1().Pods(bad.Namespace)

	// update applies change to the pod in the API; the informer delivers it.
	update := func(change func(p *v1.Pod)) {
		t.Helper()
		p, err := pods.Get(ctx, bad.Name, metav1.GetOptions{})
		require.NoError(t, err)
		change(p)
		_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	// next is the next event within a second, "" when none comes.
	next := func() string {
		select {
		case e := <-rec.Events:
			return e
		case <-time.After(time.Second):
			return ""
		}
	}
	setDevices := func(raw string) func(p *v1.Pod) {
		return func(p *v1.Pod) { p.Annotations[protocol.DevicesAnnotation] = raw }
	}
	steps := []struct {
		name   string
		change func(p *v1.Pod)
		// want: the event's words, "" for none.
		want string
	}{
		{name: "the informer's first list", want: "Warning " + ReasonDevicesAnnotationIgnored},
		{name: "a status update", change: func(p *v1.Pod) { p.Status.Phase = v1.PodRunning }},
		{name: "another bad value", change: setDevices("[]"), want: "Warning " + ReasonDevicesAnnotationIgnored},
		{name: "the same bad value again, a label added", change: func(p *v1.Pod) { p.Labels = map[string]string{"a": "b"} }},
		{name: "a good value", change: setDevices(goodRaw)},
		{name: "bad again", change: setDevices("{not json"), want: "Warning " + ReasonDevicesAnnotationIgnored},
	}
	for _, s := range steps {
		if s.change != nil {
			update(s.change)
		}
		got := next()
		if s.want == "" {
			require.Empty(t, got, "%s: no event", s.name)
			continue
		}
		require.True(t, strings.HasPrefix(got, s.want), "%s: got %q", s.name, got)
		require.Contains(t, got, protocol.DevicesAnnotation, s.name)
	}
}
