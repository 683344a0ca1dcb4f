package deviceplugin

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// initPod is a pod with a regular init container "init" asking initIDs'
// count and an app container "main" asking mainIDs' count, each with that
// set as the scheduler's choice.
func initPod(t *testing.T, name string, at int, initIDs, mainIDs []string) *v1.Pod {
	t.Helper()
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{gpu: initIDs},
		Containers: map[string]map[string][]string{"init": {gpu: initIDs}, "main": {gpu: mainIDs}},
	})
	require.NoError(t, err)
	return fixture.MakePod().Named(name).Node("node").
		InitContainer("init").Limit(gpu, int64(len(initIDs))).
		Container("main").Limit(gpu, int64(len(mainIDs))).
		Annotations(protocol.DevicesAnnotation, s, protocol.AssumedAtAnnotation, protocol.FormatAssumedAt(time.Unix(int64(at), 0))).Obj()
}

// The kubelet's device manager (v1.37 devicesToAllocate) gives an app
// container devices from the pool its pod's regular init containers left
// first, and when the pool holds enough it picks them itself (a set's
// iteration order), without GetPreferredAllocation. The Allocate that
// follows names devices the annotated set may not match; it was marked
// against "the first pending entry of that size", another pod's: that pod
// then lost its turn (its set went to nobody, and it was handed the init
// pod's leftover entry). The devices were last given to the init pod, the
// only pod that can hold them: its entry is marked.
func TestHandoffReusedInitDevicesMarkTheirPod(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		firstSet  []string // the set of the 1-GPU pod ahead in the handoff's queue
		reused    string   // the pool device the kubelet picks for p's app container
		wantFirst []string // what that pod is then handed (nil: the plugin's choice, its set being gone)
	}{
		// The annotated set {g0} not picked; "first" is the first pending
		// entry of size 1.
		{"another pod first in the queue", []string{"g5"}, "g1", []string{"g5"}},
		// "first"'s set is exactly the picked device: still p's allocation.
		{"another pod's set is the device picked", []string{"g1"}, "g1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pods := &fixture.PodLister{}
			h := NewHandoff(pods)
			// "first" is ahead in the queue, but the kubelet admits p first
			// (its admission order is the handoff's model, not a given).
			first := boundPod(t, "first", 1, 1, tc.firstSet...)
			p := initPod(t, "p", 2, []string{"g0", "g1"}, []string{"g0"})
			for _, pod := range []*v1.Pod{first, p} {
				pods.Add(pod)
				h.Observe(pod)
			}
			ids, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
			require.True(t, ok)
			require.Equal(t, "p", pod.Name)
			h.allocated(gpu, ids) // p's init container: g0, g1

			// p's app container takes one of the pool's two devices.
			h.allocated(gpu, []string{tc.reused})

			ids, pod, ok = h.ScheduledSet(ctx, gpu, without(all8, "g0", "g1"), nil, 1)
			require.Equal(t, "first", pod.Name, "p's app container is allocated: first's turn")
			require.Equal(t, tc.wantFirst != nil, ok)
			require.Equal(t, tc.wantFirst, ids)
		})
	}
}

// An Allocate no GetPreferredAllocation preceded (the kubelet had exactly
// the devices needed left, or reused an init container's), whose devices
// match no pending set, says nothing of its pod: no entry is marked, and
// the kubelet's PodResources answer, which names the pod, marks it at the
// next lookup. Before, the first pending entry of that size was marked:
// "other"'s, while "late" was admitted; "late" then stayed pending for good
// (its listing names devices this process gave out, credited to "other").
func TestHandoffUncertainAllocationLeftToPodResources(t *testing.T) {
	ctx := context.Background()
	pods := &fixture.PodLister{}
	a := &allocs{}
	h := NewHandoff(pods, WithAllocations(a))
	other, late := boundPod(t, "other", 1, 1, "g5"), boundPod(t, "late", 1, 2, "g6")
	for _, pod := range []*v1.Pod{other, late} {
		pods.Add(pod)
		h.Observe(pod)
	}
	// The kubelet admits "late" with g3, asking nothing first.
	h.allocated(gpu, []string{"g3"})
	a.give("late", "main", "g3")

	ids, pod, ok := h.ScheduledSet(ctx, gpu, without(all8, "g3"), nil, 1)
	require.True(t, ok)
	require.Equal(t, "other", pod.Name)
	require.Equal(t, []string{"g5"}, ids)
	h.allocated(gpu, ids)

	// Nothing pending is left.
	require.Empty(t, h.entries(ctx, gpu))
}
