package gpucache_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A pod the informer reports bound holds the devices it was bound with
// until it goes, whatever order Reserve, Unreserve and the informer come
// in. A cycle that began before the informer's report (kube-scheduler
// requeues a pod whose bind call failed after the apiserver applied it)
// may reserve the bound pod again on another node; its bind is refused
// (the pod is bound) and Unreserve follows. Node "x": the pod is bound to
// GPU 0 there; "y": the stale Reserve's GPU 1. Old: the stale Reserve
// replaced the bound entry and Unreserve dropped it, so GPU 0 of "x"
// counted free while the pod ran on it (until its next update reached the
// informer).
func TestBoundPodKeepsItsDevices(t *testing.T) {
	x, y := fixture.DGX1V100("x"), fixture.DGX1V100("y")
	devs, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": {x.GPUs[0].UUID}}})
	require.NoError(t, err)
	pod := fixture.MakePod().Named("p").GPUs("nvidia.com/gpu", 1).Annotations(protocol.DevicesAnnotation, devs).Obj()
	pod.Spec.NodeName = "x"
	bound := func(c *gpucache.Cache) { require.NoError(t, c.AddPod(pod)) }
	reserveX := func(c *gpucache.Cache) { c.Assume(pod.UID, "x", []string{x.GPUs[0].UUID}) }
	reserveY := func(c *gpucache.Cache) { c.Assume(pod.UID, "y", []string{y.GPUs[1].UUID}) }
	unreserve := func(c *gpucache.Cache) { c.Unassume(pod.UID) }
	for _, tc := range []struct {
		name  string
		steps []func(*gpucache.Cache)
	}{
		{name: "bound, stale Reserve elsewhere, Unreserve", steps: []func(*gpucache.Cache){bound, reserveY, unreserve}},
		{name: "bound, stale Reserve on the same node, Unreserve", steps: []func(*gpucache.Cache){bound, func(c *gpucache.Cache) {
			c.Assume(pod.UID, "x", []string{x.GPUs[5].UUID})
		}, unreserve}},
		{name: "Reserve, bound, Unreserve (bind call failed after it applied)", steps: []func(*gpucache.Cache){reserveX, bound, unreserve}},
		{name: "Reserve elsewhere, bound, Unreserve", steps: []func(*gpucache.Cache){reserveY, bound, unreserve}},
		{name: "Reserve, Unreserve, bound", steps: []func(*gpucache.Cache){reserveX, unreserve, bound}},
		{name: "bound twice, stale Reserve, Unreserve twice", steps: []func(*gpucache.Cache){bound, bound, reserveY, unreserve, unreserve}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := gpucache.New()
			_, _ = c.UpdateNode(annotated(t, "x", "96", x))
			_, _ = c.UpdateNode(annotated(t, "y", "96", y))
			for _, step := range tc.steps {
				step(c)
			}
			require.Equal(t, map[string]bool{x.GPUs[0].UUID: true}, c.Used("x"), "the bound pod runs on GPU 0 of x")
			require.Empty(t, c.Used("y"), "nothing runs on y")
			held, assumed := c.Assumed(pod.UID)
			require.True(t, held)
			require.False(t, assumed)
			// It goes with the pod.
			c.Forget(pod.UID)
			require.Empty(t, c.Used("x"))
		})
	}
}
