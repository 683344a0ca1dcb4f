package deviceplugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A question the kubelet asked (GetPreferredAllocation for pod a, answered
// with the plugin's own choice g2) whose Allocate never came does not
// decide a later Allocate, which is another pod's: b's, made without a
// question (the kubelet had no choice). Before, the Allocate marked a
// served (still pending: its failure not delivered yet, or a restarted
// kubelet's batch), and recorded b's devices as given to a, so that b's
// PodResources listing was taken for a stale view of them: b stayed
// pending, ahead of c, for as long as it ran, and a was never asked for.
func TestHandoffStaleQuestionDoesNotServeAnotherPod(t *testing.T) {
	tests := []struct {
		name string
		// offered is what the kubelet offered when it asked for a.
		offered []string
		// between is what happened to the question for a.
		between func(h *Handoff)
		// given is what the kubelet gave b, asking nothing.
		given []string
	}{
		{
			// The kubelet allocated g6 to a (topology alignment), refused
			// (withheld meanwhile): it fails a's admission. b gets g2, the
			// device a was answered, still free.
			name: "Allocate for a refused", offered: all8, given: []string{"g2"},
			between: func(h *Handoff) { h.refused(gpu, [][]string{{"g6"}}) },
		},
		{
			// The same, a's answer refused: b gets g2 later.
			name: "a's answer refused", offered: all8, given: []string{"g2"},
			between: func(h *Handoff) { h.refused(gpu, [][]string{{"g2"}}) },
		},
		{
			// The new kubelet admits b first and gives it g2, asking nothing.
			name: "the kubelet restarted", offered: all8, given: []string{"g2"},
			between: func(h *Handoff) { h.KubeletRestarted() },
		},
		{
			// The Allocate never came (the plugin went away meanwhile);
			// g7, in use when the kubelet asked, went to b.
			name: "no Allocate", offered: without(all8, "g7"), given: []string{"g7"},
			between: func(*Handoff) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pods := &fixture.PodLister{}
			held := &allocs{}
			h := NewHandoff(pods, WithAllocations(held))
			// a and b without the scheduler's choice, c with g5: one GPU each.
			for _, p := range []*v1.Pod{boundPod(t, "a", 1, 0), boundPod(t, "b", 1, 1), boundPod(t, "c", 1, 2, "g5")} {
				pods.Add(p)
				h.Observe(p)
			}
			_, pod, ok := h.ScheduledSet(ctx, gpu, tc.offered, nil, 1)
			require.False(t, ok)
			require.Equal(t, "a", pod.Name)
			h.OwnChoice(gpu, []string{"g2"})
			tc.between(h)

			h.allocated(gpu, tc.given)
			held.give("b", "main", tc.given...)
			var pending []string
			for _, e := range h.entries(ctx, gpu) {
				pending = append(pending, e.pod.Name)
			}
			// b holds its device: served; a and c are pending.
			require.Equal(t, []string{"a", "c"}, pending)
		})
	}
}
