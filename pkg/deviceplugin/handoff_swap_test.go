package deviceplugin_test

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// heldAnswer is a fixed PodResources answer: pod -> container -> resource -> IDs.
type heldAnswer map[types.NamespacedName]map[string]map[string][]string

func (a heldAnswer) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	return a, nil
}

// Devices the kubelet moves between the containers of one pod, all within
// the pod's scheduled set, are not reported: the handoff's guarantees are
// per pod. The scheduler counts a node's used devices as its choices (each
// pod's set, the union of its containers') UNION the in-use report (each
// pod's devices), so a pod holding only devices of its own set is counted
// exactly: nothing is given twice, nothing the scheduler thinks free is
// held, and the report needs no `scheduled` correction. The event
// ScheduledDevicesNotHonoured says that the scheduler's view was wrong
// until the report corrected it; a swap within the set leaves it right.
// The kubelet moves devices within a pod by design, too: its device
// manager serves an app container from the pool its pod's regular init
// containers left first, choosing the devices itself without asking the
// plugin (v1.37 devicesToAllocate), so an app container holding another
// of the pod's devices than its own set is ordinary, and a warning on it
// would be noise on every such pod. A device outside the pod's set is
// reported, once per pod.
func TestHandoffSwapWithinThePodsSetIsNotReported(t *testing.T) {
	const res = "nvidia.com/gpu"
	tests := []struct {
		name   string
		sets   map[string][]string // the scheduler's set per container
		init   string              // the regular init container among sets, if any
		held   map[string][]string // what the kubelet gave each listed container
		events int                 // Warning events, and not-honoured counts
	}{
		{
			name: "two containers swap their sets",
			sets: map[string][]string{"a": {"g0", "g3"}, "b": {"g1", "g6"}},
			held: map[string][]string{"a": {"g1", "g6"}, "b": {"g0", "g3"}},
		},
		{
			name: "two containers mix their sets",
			sets: map[string][]string{"a": {"g0", "g3"}, "b": {"g1", "g6"}},
			held: map[string][]string{"a": {"g0", "g1"}, "b": {"g3", "g6"}},
		},
		{
			name: "the app container served from its init container's pool",
			sets: map[string][]string{"init": {"g0", "g1", "g2", "g3"}, "b": {"g0"}},
			init: "init",
			held: map[string][]string{"b": {"g2"}}, // the init container is never listed
		},
		{
			name:   "a device outside the pod's set",
			sets:   map[string][]string{"a": {"g0", "g3"}, "b": {"g1", "g6"}},
			held:   map[string][]string{"a": {"g0", "g3"}, "b": {"g1", "g7"}}, // g7 ∉ {g0,g1,g3,g6}
			events: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := protocol.Devices{Resources: map[string][]string{}, Containers: map[string]map[string][]string{}}
			w := fixture.MakePod().Named("p").Node("node")
			if tc.init != "" {
				w.InitContainer(tc.init).Limit(res, int64(len(tc.sets[tc.init])))
			}
			for _, c := range []string{"init", "a", "b"} {
				ids, ok := tc.sets[c]
				if !ok {
					continue
				}
				d.Containers[c] = map[string][]string{res: ids}
				for _, id := range ids {
					if !slices.Contains(d.Resources[res], id) {
						d.Resources[res] = append(d.Resources[res], id) // the pod's set: the union
					}
				}
				if c != tc.init {
					w.Container(c).Limit(res, int64(len(ids)))
				}
			}
			s, err := protocol.EncodeDevices(d)
			require.NoError(t, err)
			pod := w.Annotations(protocol.DevicesAnnotation, s).Obj()
			pods := &fixture.PodLister{}
			pods.Add(pod)
			answer := heldAnswer{{Namespace: pod.Namespace, Name: pod.Name}: {}}
			for c, ids := range tc.held {
				answer[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}][c] = map[string][]string{res: ids}
			}
			rec := record.NewFakeRecorder(10)
			reg := prometheus.NewRegistry()
			pub := nodepublish.New(nodepublish.Options{PodResources: answer, Pods: pods, Recorder: rec, Metrics: deviceplugin.NewMetrics(reg)})

			for range 2 { // reported once per pod, however often the report is read
				report, err := pub.InUse(context.Background(), []string{res}, nil)
				require.NoError(t, err)
				require.Len(t, report, 1)
				if tc.events == 0 {
					require.Empty(t, report[0].Scheduled, "nothing to correct")
				} else {
					require.ElementsMatch(t, d.Resources[res], report[0].Scheduled)
				}
			}
			require.Len(t, rec.Events, tc.events)
			for range tc.events {
				require.Contains(t, <-rec.Events, "Warning "+nodepublish.ReasonScheduledSetNotHonoured)
			}
			// One pod not honoured, counted once: 1 × 1 = 1; otherwise 0.
			require.InDelta(t, float64(tc.events), notHonouredTotal(t, reg), 0)
		})
	}
}

// notHonouredTotal sums gpupack_device_plugin_handoff_not_honoured_total
// (0 when no series).
func notHonouredTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "gpupack_device_plugin_handoff_not_honoured_total" {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
