package deviceplugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A device plugin restarted while a pod with a GPU-requesting regular init
// container runs remembers none of its Allocates. The kubelet's
// PodResources lists app containers and sidecars only, never a regular init
// container, so that entry stayed pending for the life of the pod, ahead of
// every later pod (the informer's first list before the stream): the next
// pod of its size was answered for it (its set held, the plugin's own
// choice), the Allocate marked the init entry, the next pod's own entry
// stayed pending with a device given by this process, and every later pod
// of that size got its predecessor's set. The kubelet allocates a pod's
// containers at its admission, init containers first: the pod's app
// containers listed with the resource say the init container was served.
func TestHandoffRunningPodsInitContainerAfterRestart(t *testing.T) {
	tests := []struct {
		name string
		run  *v1.Pod
		held []string // what PodResources lists for run's app container
	}{
		{"app container reusing the init container's device", initPod(t, "run", 1, []string{"g0"}, []string{"g0"}), []string{"g0"}},
		{"app container asking more than the init container", initPod(t, "run", 1, []string{"g0"}, []string{"g0", "g7"}), []string{"g0", "g7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pods := &fixture.PodLister{}
			run := created(tc.run, 1)
			pods.Add(run)
			a := &allocs{}
			a.give("run", "main", tc.held...)
			h := NewHandoff(pods, WithUnsynced(), WithAllocations(a))
			h.Observe(run)
			h.Synced()

			avail := without(all8, tc.held...)
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

// The kubelet chose a regular init container's devices on its own, asking
// nothing (v1.37 devicesToAllocate with exactly as many NUMA-aligned devices
// as needed): its Allocate marked nothing. The app container's Allocate was
// marked, and PodResources, which lists the app container with devices this
// process gave, never the init container, could not mark it either: the
// init entry stayed pending, and the next pod of its size was handed its set
// (then every later pod its predecessor's). The app container was allocated
// after its init containers, in the same admission: they are marked too.
func TestHandoffInitContainerChosenByTheKubeletAlone(t *testing.T) {
	pods := &fixture.PodLister{}
	p := created(initPod(t, "p", 1, []string{"g0"}, []string{"g1", "g2"}), 1)
	pods.Add(p)
	a := &allocs{}
	h := NewHandoff(pods, WithAllocations(a))
	h.Observe(p)

	// The init container: g5, the kubelet's own pick, no question asked.
	h.allocated(gpu, []string{"g5"})
	a.give("p", "main") // admission under way: listed without devices
	// The app container: the pool's g5 and one more, asked for.
	ids, pod, ok := h.ScheduledSet(context.Background(), gpu, without(all8, "g0"), []string{"g5"}, 2)
	require.False(t, ok, "p's set does not hold g5")
	require.Equal(t, "p", pod.Name)
	require.Nil(t, ids)
	h.OwnChoice(gpu, []string{"g5", "g3"})
	h.allocated(gpu, []string{"g5", "g3"})
	a.give("p", "main", "g5", "g3")

	q := created(boundPod(t, "q", 1, 2, "g4"), 2)
	pods.Add(q)
	h.Observe(q)
	ids, pod, ok = h.ScheduledSet(context.Background(), gpu, without(all8, "g5", "g3"), nil, 1)
	require.True(t, ok)
	require.Equal(t, "q", pod.Name, "q's turn, not p's init container's")
	require.Equal(t, []string{"g4"}, ids)
}
