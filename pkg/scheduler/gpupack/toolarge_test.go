package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A pod asking so many replicas that their IDs do not fit the
// gpupack.io/devices annotation (protocol.MaxPayload, 256 KiB) is refused
// at Reserve as unresolvable, holding nothing. Before, Filter and Reserve
// passed and Bind failed to encode on every retry. Fixture IDs such as
// GPU-s-3::4242 are about 14 bytes, written twice (pod and container) with
// quotes and a comma: about 34 bytes a device, so 262144 / 34 = ~7,700
// devices fit; 1,000 do, 20,000 do not.
func TestTooManyDevicesForTheAnnotation(t *testing.T) {
	topo := fixture.Shared(fixture.PCIe("s", "T4", 8), 43690) // the most replicas a GPU may have
	for _, tc := range []struct {
		name     string
		replicas int64
		wantCode fwk.Code
	}{
		{"1,000 replicas fit", 1000, fwk.Success},
		{"20,000 replicas do not", 20000, fwk.UnschedulableAndUnresolvable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "s", topo)})
			pod := gpuPod("many", "nvidia.com/gpu.shared", tc.replicas)
			node, ids, st, state := h.schedule(pod)
			if tc.wantCode == fwk.Success {
				require.True(t, st.IsSuccess(), st.Message())
				require.Equal(t, "s", node)
				require.Len(t, ids, int(tc.replicas))
				r, rst := reservedOf(state)
				require.Nil(t, rst)
				d, err := protocol.DecodeDevices(r.value)
				require.NoError(t, err, "Bind's value decodes")
				require.Len(t, d.Resources["nvidia.com/gpu.shared"], int(tc.replicas))
				return
			}
			require.Equal(t, tc.wantCode, st.Code(), st.Message())
			require.Contains(t, st.Message(), "devices cannot be handed to the device plugin")
			require.Contains(t, st.Message(), "more than the 262144 allowed")
			_, held, _ := h.pl.cache.PodDevices(pod.UID)
			require.Empty(t, held, "nothing held")
			require.Empty(t, h.pl.cache.Used("s"))
		})
	}
}
