package deviceplugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// withChoice replaces the pod's gpupack.io/devices with d (as a hostile or
// older scheduler could write it; it decodes).
func withChoice(t *testing.T, p *v1.Pod, d protocol.Devices) *v1.Pod {
	t.Helper()
	s, err := protocol.EncodeDevices(d)
	require.NoError(t, err)
	p.Annotations[protocol.DevicesAnnotation] = s
	return p
}

// A choice that does not match the pod's spec (a set for a container the
// spec does not have, a set of another size than the container asks) is no
// choice for that pod: the kubelet asks each container's own count, so such
// an entry was never served, stayed first in its size's queue and handed
// its set to the next pod, which shifted every later pod onto its
// predecessor's set.
func TestHandoffChoiceNotMatchingTheSpec(t *testing.T) {
	tests := []struct {
		name string
		// bad is the first pod, container "main" asking badSize GPUs (1
		// when 0), with this choice; b and c behind it ask 1 each.
		bad     protocol.Devices
		badSize int64
		// wantBadOK: bad's choice fits its spec and is honoured.
		wantBadOK bool
	}{
		{
			name: "set for a container the spec does not have",
			bad: protocol.Devices{Resources: map[string][]string{gpu: {"g7"}},
				Containers: map[string]map[string][]string{"ghost": {gpu: {"g7"}}}},
		},
		{
			name: "container set larger than its request (2 for 1)",
			bad: protocol.Devices{Resources: map[string][]string{gpu: {"g6", "g7"}},
				Containers: map[string]map[string][]string{"main": {gpu: {"g6", "g7"}}}},
		},
		{
			name: "pod-level set larger than the first container's request (2 for 1)",
			bad:  protocol.Devices{Resources: map[string][]string{gpu: {"g6", "g7"}}},
		},
		{
			name: "container set smaller than its request (1 for 2)",
			bad: protocol.Devices{Resources: map[string][]string{gpu: {"g7"}},
				Containers: map[string]map[string][]string{"main": {gpu: {"g7"}}}},
			badSize: 2,
		},
		{
			// One wrong set makes the whole choice no choice.
			name: "container set for main and one for a ghost container",
			bad: protocol.Devices{Resources: map[string][]string{gpu: {"g0", "g7"}},
				Containers: map[string]map[string][]string{"main": {gpu: {"g0"}}, "ghost": {gpu: {"g7"}}}},
		},
		{
			name: "set of another resource for a container asking none of it",
			bad: protocol.Devices{Resources: map[string][]string{gpu: {"g0"}, "nvidia.com/mig-1g.5gb": {"MIG-x"}},
				Containers: map[string]map[string][]string{"main": {gpu: {"g0"}, "nvidia.com/mig-1g.5gb": {"MIG-x"}}}},
		},
		{
			name: "pod-level set of another resource no container asks",
			bad:  protocol.Devices{Resources: map[string][]string{gpu: {"g0"}, "nvidia.com/mig-1g.5gb": {"MIG-x"}}},
		},
		// Choices that fit the spec are honoured.
		{
			name: "container set of its request",
			bad: protocol.Devices{Resources: map[string][]string{gpu: {"g0"}},
				Containers: map[string]map[string][]string{"main": {gpu: {"g0"}}}},
			wantBadOK: true,
		},
		{
			name:      "pod-level set of the container's request (older scheduler)",
			bad:       protocol.Devices{Resources: map[string][]string{gpu: {"g0", "g3"}}},
			badSize:   2,
			wantBadOK: true,
		},
		{
			name: "empty sets are no sets",
			bad: protocol.Devices{Resources: map[string][]string{gpu: {"g0"}, "nvidia.com/mig-1g.5gb": {}},
				Containers: map[string]map[string][]string{"main": {gpu: {"g0"}}, "ghost": {gpu: {}}}},
			wantBadOK: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pods := &fixture.PodLister{}
			h := NewHandoff(pods)
			size := max(tc.badSize, 1)
			bad := withChoice(t, boundPod(t, "bad", size, 0, "g0"), tc.bad)
			b, c := boundPod(t, "b", 1, 1, "g1"), boundPod(t, "c", 1, 2, "g2")
			for _, p := range []*v1.Pod{bad, b, c} {
				pods.Add(p)
				h.Observe(p)
			}
			avail := all8
			// The kubelet admits bad (size GPUs), then b, then c.
			ids, pod, ok := h.ScheduledSet(ctx, gpu, avail, nil, int(size))
			require.Equal(t, tc.wantBadOK, ok, "bad's set: %v", ids)
			require.NotNil(t, pod, "bad's request of %d must find bad", size)
			require.Equal(t, "bad", pod.Name, "bad's turn, not another pod's set")
			if !ok {
				ids = []string{"g5", "g6"}[:size] // the plugin's own choice
				h.OwnChoice(gpu, ids)
			}
			h.allocated(gpu, ids)
			avail = without(avail, ids...)

			name, ids := next(t, h, avail, 1)
			require.Equal(t, "b", name)
			require.Equal(t, []string{"g1"}, ids)
			name, ids = next(t, h, without(avail, ids...), 1)
			require.Equal(t, "c", name)
			require.Equal(t, []string{"g2"}, ids)
		})
	}
}
