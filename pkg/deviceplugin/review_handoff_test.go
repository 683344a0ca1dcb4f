package deviceplugin

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// running marks pod as the kubelet marks a pod it admitted and started.
func running(p *v1.Pod) *v1.Pod {
	p.Status.Phase = v1.PodRunning
	p.Status.StartTime = &metav1.Time{Time: time.Unix(100, 0)}
	return p
}

// A device plugin restarted while a pod with a GPU-requesting regular init
// container runs remembers none of its Allocates. The kubelet's
// PodResources lists app containers and sidecars only, never a regular init
// container, so that entry stayed pending for the life of the pod, ahead of
// every later pod (the informer's first list before the stream): the next
// pod of its size was answered for it (its set held, the plugin's own
// choice), the Allocate marked the init entry, the next pod's own entry
// stayed pending with a device given by this process, and every later pod
// of that size got its predecessor's set. A pod the kubelet started
// (status.startTime) had every container's devices allocated at admission.
func TestHandoffRunningPodsInitContainerAfterRestart(t *testing.T) {
	tests := []struct {
		name string
		run  *v1.Pod
		held []string // what PodResources lists for run's app container
	}{
		{"init and app containers ask GPUs", initPod(t, "run", 1, []string{"g0"}, []string{"g0"}), []string{"g0"}},
		{"only the init container asks GPUs", initOnlyPod(t, "run", 1, []string{"g0"}), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pods := &fixture.PodLister{}
			run := running(created(tc.run, 1))
			pods.Add(run)
			a := &allocs{}
			if tc.held != nil {
				a.give("run", "main", tc.held...)
			}
			h := NewHandoff(pods, WithUnsynced(), WithAllocations(a))
			h.Observe(run)
			h.Synced()

			avail := without(all8, "g0")
			for i, want := range []string{"g1", "g2", "g3"} {
				p := created(boundPod(t, "next"+want, 1, 10+i, want), 10+i)
				pods.Add(p)
				h.Observe(p)
				ids, pod, ok := h.ScheduledSet(context.Background(), gpu, avail, nil, 1)
				require.True(t, ok, "pod %d: the scheduler's set", i)
				require.Equal(t, p.Name, pod.Name)
				require.Equal(t, []string{want}, ids)
				h.allocated(gpu, ids)
				avail = without(avail, want)
			}
		})
	}
}

// initOnlyPod is a pod whose regular init container "init" asks initIDs'
// count of GPUs (the scheduler's choice) and whose app container asks none.
func initOnlyPod(t *testing.T, name string, at int, initIDs []string) *v1.Pod {
	t.Helper()
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{gpu: initIDs},
		Containers: map[string]map[string][]string{"init": {gpu: initIDs}},
	})
	require.NoError(t, err)
	return fixture.MakePod().Named(name).Node("node").
		InitContainer("init").Limit(gpu, int64(len(initIDs))).
		Container("main").
		Annotations(protocol.DevicesAnnotation, s, protocol.AssumedAtAnnotation, protocol.FormatAssumedAt(time.Unix(int64(at), 0))).Obj()
}
