package topology_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/topology"
)

// DeviceIndex: GPUs by position, MIG devices at -1-j; an ID the node does
// not have is absent.
func TestNodeDeviceIndex(t *testing.T) {
	for _, tc := range []struct {
		name string
		node topology.Node
		want map[string]int
	}{
		{name: "empty", node: topology.Node{}, want: map[string]int{}},
		{name: "GPUs only", node: topology.Node{GPUs: []topology.GPU{{UUID: "GPU-a"}, {UUID: "GPU-b"}}},
			want: map[string]int{"GPU-a": 0, "GPU-b": 1}},
		// MIG j = 0, 1 -> -1, -2.
		{name: "GPUs and MIG devices", node: topology.Node{
			GPUs: []topology.GPU{{UUID: "GPU-a"}},
			MIG:  []topology.MIGDevice{{UUID: "MIG-x"}, {UUID: "MIG-y"}}},
			want: map[string]int{"GPU-a": 0, "MIG-x": -1, "MIG-y": -2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx := tc.node.DeviceIndex()
			require.Equal(t, tc.want, idx)
			_, ok := idx["GPU-missing"]
			require.False(t, ok)
		})
	}
}
