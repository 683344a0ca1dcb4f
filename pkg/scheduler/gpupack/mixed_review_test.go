package gpupack

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// requireNoDeviceTwice checks that the device sets given to pods on node
// n never give one piece of hardware twice: no ID twice; a whole GPU is
// given neither with one of its replicas nor with a MIG device on it, nor
// when it is in MIG mode; a GPU's replicas are numbered below its replica
// count and at most that many are given; every ID names a device of n.
func requireNoDeviceTwice(t *testing.T, n *topology.Node, sets map[string][]string) {
	t.Helper()
	owner := map[string]string{}
	whole := map[int]string{}
	replicas := map[int][]string{}
	migOn := map[int][]string{}
	idx := n.DeviceIndex()
	for pod, ids := range sets {
		for _, id := range ids {
			if o, ok := owner[id]; ok {
				t.Fatalf("%s given to %s and %s", id, o, pod)
			}
			owner[id] = pod
			uuid, k, err := deviceid.Split(id)
			require.NoError(t, err, id)
			i, ok := idx[uuid]
			require.True(t, ok, "%s (pod %s) is no device of the node", id, pod)
			switch {
			case i >= 0 && k >= 0:
				require.Less(t, k, max(1, n.GPUs[i].Replicas), "%s (pod %s): replica number past the GPU's count", id, pod)
				replicas[i] = append(replicas[i], pod)
			case i >= 0:
				require.False(t, n.GPUs[i].MIGEnabled, "GPU %d is in MIG mode, given whole to %s", i, pod)
				whole[i] = pod
			default:
				require.Less(t, k, 0, "%s: replicas of MIG devices are not placed", id)
				migOn[n.MIG[-1-i].Parent] = append(migOn[n.MIG[-1-i].Parent], pod)
			}
		}
	}
	for i, p := range whole {
		require.Empty(t, replicas[i], "GPU %d given whole to %s and as replicas", i, p)
		require.Empty(t, migOn[i], "GPU %d given whole to %s and as MIG devices", i, p)
	}
	for i, ps := range replicas {
		require.LessOrEqual(t, len(ps), max(1, n.GPUs[i].Replicas), "GPU %d: %d replicas given, it has %d", i, len(ps), n.GPUs[i].Replicas)
		require.Empty(t, migOn[i], "GPU %d given as replicas and MIG devices", i)
	}
}

// Pods asking several GPU resource kinds at once (whole GPUs, replicas,
// MIG devices; in several containers, init containers and sidecars),
// placed one after the other on one node until it is full, and on a node
// without a resource table (the args' names: whole and replicas of the
// same GPUs). No device is given twice, no GPU both whole and shared or
// both whole and in MIG slices, no GPU more replicas than it has.
func TestReviewMixedKindsNeverShareADevice(t *testing.T) {
	mixed := func() *topology.Node {
		n := fixture.WithMIG(fixture.PCIe("m", "A100", 4), 0, 1, "1g.5gb", "1g.5gb", "2g.10gb")
		n.GPUs[2].Replicas, n.GPUs[3].Replicas = 3, 3
		return n
	}
	tabled := func() *topology.Node {
		n := mixed()
		n.Resources = []topology.Resource{
			{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
			{Name: "nvidia.com/gpu.shared", Kind: topology.KindReplica, Replicas: 3, Policy: topology.PolicyPacked},
			{Name: "nvidia.com/mig-1g.5gb", Kind: topology.KindMIG, Profile: "1g.5gb"},
			{Name: "nvidia.com/mig-2g.10gb", Kind: topology.KindMIG, Profile: "2g.10gb"},
		}
		return n
	}
	pods := []func(i int) *v1.Pod{
		func(i int) *v1.Pod {
			return fixture.MakePod().Named(fmt.Sprintf("wm%d", i)).Container("a").Limit("nvidia.com/gpu", 1).Limit("nvidia.com/mig-1g.5gb", 1).Obj()
		},
		func(i int) *v1.Pod {
			return fixture.MakePod().Named(fmt.Sprintf("sh%d", i)).Container("a").Limit("nvidia.com/gpu.shared", 2).
				Container("b").Limit("nvidia.com/gpu.shared", 1).Obj()
		},
		func(i int) *v1.Pod {
			return fixture.MakePod().Named(fmt.Sprintf("init%d", i)).InitContainer("i").Limit("nvidia.com/gpu.shared", 2).
				Sidecar("s").Limit("nvidia.com/mig-1g.5gb", 1).Container("a").Limit("nvidia.com/gpu.shared", 1).Obj()
		},
		func(i int) *v1.Pod {
			return fixture.MakePod().Named(fmt.Sprintf("ws%d", i)).Container("a").Limit("nvidia.com/gpu", 1).
				Container("b").Limit("nvidia.com/gpu.shared", 1).Limit("nvidia.com/mig-2g.10gb", 1).Obj()
		},
	}
	for _, tc := range []struct {
		name string
		topo *topology.Node
	}{
		{"resource table", tabled()},
		{"no resource table (args' names)", mixed()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "m", tc.topo)})
			sets := map[string][]string{}
			placed := 0
			for round := range 4 {
				for k, mk := range pods {
					p := mk(round*len(pods) + k)
					_, got, st, _ := h.schedule(p)
					if st != nil {
						continue
					}
					placed++
					sets[p.Name] = got
					requireNoDeviceTwice(t, tc.topo, sets)
				}
			}
			require.Positive(t, placed)
			t.Logf("%d pods placed: %v", placed, sets)
		})
	}
}
