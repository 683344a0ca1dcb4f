package deviceplugin_test

import (
	"context"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
)

// TestZeroMemoryGPU: a GPU whose memory reads 0 is served (or
// refused clearly); preferred allocation, GFD labels and publishing work.
func TestZeroMemoryGPU(t *testing.T) {
	for _, config := range []string{"", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}"} {
		m, err := fake.New(fake.DGXA100)
		require.NoError(t, err)
		for i := range m.NumGPUs() {
			m.Device(i).GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) { return gonvml.Memory{}, gonvml.SUCCESS }
		}
		mgr, err := buildManager(t, m, config)
		if err != nil {
			t.Logf("refused: %v", err)
			continue
		}
		p := mgr.Plugins()[0]
		var avail []string
		for _, d := range p.Devices() {
			avail = append(avail, d.ID)
		}
		require.NotPanics(t, func() {
			_, err = p.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: avail, AllocationSize: 2}}})
		})
		require.NoError(t, err)
		_, err = protocol.EncodeTopology(mgr.Node())
		require.NoError(t, err)
		require.NotPanics(t, func() { _ = mgr.GFD() })
	}
}
