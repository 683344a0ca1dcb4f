package deviceplugin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/events"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// TestDaemonHealth: a daemon down makes its GPU's devices unhealthy (one
// change, one Node event), a repeat changes nothing, its return follows
// NVML's health (a GPU NVML calls unhealthy stays so), and a GPU the node
// lacks is ignored.
func TestDaemonHealth(t *testing.T) {
	inv := &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}, {Index: 1, UUID: "GPU-1"}}}
	rec := events.NewFakeRecorder(100)
	h := deviceplugin.NewHealth(&checkLib{fail: map[string]error{}}, inv, deviceplugin.HealthOptions{
		Events: deviceplugin.NewNodeEvents(rec, "node-a")})
	ctx := context.Background()
	down := errors.New("MPS control daemon does not answer")

	v0 := h.Snapshot().Version
	h.SetDaemonHealth(ctx, 1, down)
	require.False(t, h.Healthy(1))
	require.False(t, h.Snapshot().Device(1, ""))
	require.True(t, h.Snapshot().Device(0, ""))
	require.Equal(t, v0+1, h.Snapshot().Version)
	h.SetDaemonHealth(ctx, 1, errors.New("still down"))
	require.Equal(t, v0+1, h.Snapshot().Version, "no new change")
	require.Equal(t, []string{"Warning GPUDaemonDown GPU 1 (GPU-1): its MPS control daemon is down (MPS control daemon does not answer); its devices are reported unhealthy to the kubelet until it is restarted"}, drain(rec))

	h.SetDaemonHealth(ctx, 1, nil)
	require.True(t, h.Healthy(1))
	require.Equal(t, []string{"Normal GPUDaemonUp GPU 1 (GPU-1): its MPS control daemon answers again"}, drain(rec))

	// NVML says GPU 0 is unhealthy: the daemon's return does not hide it.
	h.Handle(ctx, nvml.Event{Kind: nvml.EventXID, UUID: "GPU-0", XID: 79, GIID: -1, CIID: -1})
	h.SetDaemonHealth(ctx, 0, down)
	h.SetDaemonHealth(ctx, 0, nil)
	require.False(t, h.Healthy(0))

	h.SetDaemonHealth(ctx, 7, down)
	require.True(t, h.Healthy(1))
}
