package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// A pod gpupack placed, once the informer reports it bound with its
// gpupack.io/devices, holds exactly the devices Reserve chose: its
// annotation covers its requests as the kubelet sizes them (init
// containers' devices reused, sidecars' kept), so the cache counts no
// stand-in beside them. A pod whose annotation named fewer devices than
// the cache's sizing would hold stand-ins for as long as it ran.
func TestOwnBoundPodHoldsNoStandIns(t *testing.T) {
	dgx := fixture.DGX1V100("x")
	shared := fixture.Shared(fixture.PCIe("s", "T4", 4), 4)
	shared.Resources = []topology.Resource{{Name: "nvidia.com/gpu.shared", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicyPacked}}
	for _, tc := range []struct {
		name string
		topo *topology.Node
		pod  *v1.Pod
		// want is how many devices the pod holds.
		want int
	}{
		{name: "one container", topo: dgx, pod: fixture.MakePod().Named("p").GPUs("nvidia.com/gpu", 3).Obj(), want: 3},
		// Init 2, app 1: the app reuses one of the init's: max(2, 1) = 2.
		{name: "init more than app", topo: dgx,
			pod:  fixture.MakePod().Named("p").InitContainer("i").Limit("nvidia.com/gpu", 2).Container("m").Limit("nvidia.com/gpu", 1).Obj(),
			want: 2},
		// Init 1, app 3: 3.
		{name: "app more than init", topo: dgx,
			pod:  fixture.MakePod().Named("p").InitContainer("i").Limit("nvidia.com/gpu", 1).Container("m").Limit("nvidia.com/gpu", 3).Obj(),
			want: 3},
		// Sidecar 1 kept, app 2: 3.
		{name: "sidecar and app", topo: dgx,
			pod:  fixture.MakePod().Named("p").Sidecar("s").Limit("nvidia.com/gpu", 1).Container("m").Limit("nvidia.com/gpu", 2).Obj(),
			want: 3},
		// Init 2, sidecar 1 (from the pool), app 2 (1 left in the pool + 1): 3.
		{name: "init, sidecar, app", topo: dgx,
			pod: fixture.MakePod().Named("p").InitContainer("i").Limit("nvidia.com/gpu", 2).Sidecar("s").Limit("nvidia.com/gpu", 1).
				Container("m").Limit("nvidia.com/gpu", 2).Obj(),
			want: 3},
		// Two app containers: 1 + 2 = 3.
		{name: "two apps", topo: dgx,
			pod:  fixture.MakePod().Named("p").Container("a").Limit("nvidia.com/gpu", 1).Container("b").Limit("nvidia.com/gpu", 2).Obj(),
			want: 3},
		// Replicas: init 3, app 2: 3.
		{name: "replicas, init more than app", topo: shared,
			pod: fixture.MakePod().Named("p").InitContainer("i").Limit("nvidia.com/gpu.shared", 3).
				Container("m").Limit("nvidia.com/gpu.shared", 2).Obj(),
			want: 3},
		// Replicas: two apps 2 + 2: 4.
		{name: "replicas, two apps", topo: shared,
			pod:  fixture.MakePod().Named("p").Container("a").Limit("nvidia.com/gpu.shared", 2).Container("b").Limit("nvidia.com/gpu.shared", 2).Obj(),
			want: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", tc.topo)})
			node, got, st, cs := h.schedule(tc.pod)
			require.Nil(t, st)
			require.Len(t, got, tc.want, "Reserve's choice")
			r, err := cs.Read(devicesKey)
			require.NoError(t, err)
			raw, err := protocol.EncodeDevices(r.(*reserved).devices)
			require.NoError(t, err)
			bound := tc.pod.DeepCopy()
			bound.Spec.NodeName = node
			bound.Annotations = map[string]string{protocol.DevicesAnnotation: raw}
			require.NoError(t, h.pl.cache.AddPod(bound))
			require.Len(t, h.pl.cache.Used(node), tc.want, "bound: the annotation's devices, no stand-in")
			require.ElementsMatch(t, got, h.pl.cache.HeldBy(node, bound.UID))
		})
	}
}
