package deviceplugin_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestAllocateDuringHealthChanges (run with -race): Allocate and
// GetPreferredAllocation while XIDs and probes flip GPU health answer
// either the devices or FailedPrecondition, never anything else.
func TestAllocateDuringHealthChanges(t *testing.T) {
	mgr, m := newManager(t, fake.DGXA100, "version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0, 1]}]}}")
	ctx := context.Background()
	shared := pluginNamed(t, mgr, "nvidia.com/gpu.shared")
	whole := pluginNamed(t, mgr, "nvidia.com/gpu")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := m.UUID(g%2) + "::" + []string{"0", "1", "2", "3"}[i%4]
				_, err := shared.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}})
				if err != nil {
					require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
				}
				_, err = whole.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{m.UUID(2 + g)}}}})
				if err != nil {
					require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
				}
				avail := []string{m.UUID(2), m.UUID(3), m.UUID(4), m.UUID(5)}
				_, err = whole.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: avail, AllocationSize: 2}}})
				require.NoError(t, err)
				_ = mgr.Node()
			}
		})
	}
	h := mgr.Health()
	wg.Go(func() {
		for i := range 400 {
			gpu := i % 6
			h.Handle(ctx, nvml.Event{GPUIndex: gpu, UUID: m.UUID(gpu), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
			if i%3 == 0 {
				h.Probe(ctx)
			}
		}
	})
	wg.Wait()
	_ = deviceplugin.EnvVisibleDevices
}
