package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A node's last plans (gpucache lastplan.go, planView) are keyed by the
// request ID, and requestIDs keys a request by (score.Request, resource,
// podPolicy): not by its uses. A pod-level request of replicas that a
// regular init container asks too is placed per container's new replicas
// (choosePooled: init 2, app 4 -> chunks 2 + 2, each packed on one GPU),
// a one-container request of the same count as one allocation (4 packed on
// one GPU). Both have Count 4 and the same kind, policy and hint, so they
// get one ID and each finds the other's plan on a node whose usage State
// has not changed.
//
// Node "x": 4 GPUs x 4 replicas (nvidia.com/gpu.shared, packed), 2 of
// each GPU's replicas in use: the pooled pod fits (2 + 2), the single
// container pod does not (no GPU has 4 free).
//   - single first: its failure is kept; the pooled pod's Filter then
//     rejects x although it fits, and keeps rejecting it on every retry
//     until x's usage changes: the pod stays pending on a node with room.
//   - pooled first: its success is kept; the single pod's Filter admits x,
//     Reserve (which plans anew) fails, and the next cycle admits x again.
func TestReviewLastPlanKeyIgnoresPooledUses(t *testing.T) {
	topo := fixture.Shared(fixture.PCIe("x", "Tesla-T4", 4), 4)
	var inUse []string
	for _, g := range topo.GPUs {
		inUse = append(inUse, deviceid.ReplicaID(g.UUID, 0), deviceid.ReplicaID(g.UUID, 1))
	}
	single := func() *v1.Pod {
		return fixture.MakePod().Named("single").GPUs("nvidia.com/gpu.shared", 4).Obj()
	}
	pooled := func() *v1.Pod {
		return fixture.MakePod().Named("pooled").InitContainer("init").Limit("nvidia.com/gpu.shared", 2).
			Container("main").Limit("nvidia.com/gpu.shared", 4).Obj()
	}
	type step struct {
		pod  func() *v1.Pod
		want fwk.Code
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{name: "each alone: pooled fits", steps: []step{{pooled, fwk.Success}}},
		{name: "each alone: single does not", steps: []step{{single, fwk.Unschedulable}}},
		{name: "single, then pooled", steps: []step{{single, fwk.Unschedulable}, {pooled, fwk.Success}}},
		{name: "pooled, then single", steps: []step{{pooled, fwk.Success}, {single, fwk.Unschedulable}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", topo, inUse...)})
			for i, s := range tc.steps {
				pod := s.pod()
				_, st := h.filterOn(pod, "x")
				require.Equal(t, s.want, st.Code(), "step %d (%s): %s", i, pod.Name, st.Message())
			}
		})
	}
}
