package deviceplugin_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/events"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// drain returns the events recorded so far.
func drain(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case ev := <-r.Events:
			out = append(out, ev)
		case <-time.After(50 * time.Millisecond):
			return out
		}
	}
}

// One Node event per health change, naming the GPU (or MIG device) and the
// cause: skipped XIDs, repeats on an unhealthy GPU, single-bit ECC and
// events for GPUs the node lacks record none; recoveries record one each.
func TestNodeEventsPerHealthChange(t *testing.T) {
	inv := &nvml.Inventory{
		GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}, {Index: 1, UUID: "GPU-1"}, {Index: 2, UUID: "GPU-2"}},
		// GPU 2 in MIG: GI 1 (CI 0) and GI 2 (CI 0).
		MIG: []nvml.MIGDevice{{UUID: "MIG-a", ParentIndex: 2, GIID: 1, CIID: 0}, {UUID: "MIG-b", ParentIndex: 2, GIID: 2, CIID: 0}},
	}
	rec := events.NewFakeRecorder(100)
	lib := &checkLib{fail: map[string]error{}}
	h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Critical: func(x uint64) bool { return x != 13 }, Recover: true, Checks: 2,
		Events: deviceplugin.NewNodeEvents(rec, "node-1")})
	ctx := context.Background()
	const out = "; its devices are reported unhealthy to the kubelet"
	for _, c := range []struct {
		name string
		ev   nvml.Event
		want []string
	}{
		{"skipped XID", nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventXID, XID: 13, GIID: -1, CIID: -1}, nil},
		{"single-bit ECC", nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventECCSingleBit, GIID: -1, CIID: -1}, nil},
		{"unknown GPU", nvml.Event{UUID: "GPU-9", Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1}, nil},
		{"XID 48", nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1},
			[]string{"Warning GPUUnhealthy GPU 0 (GPU-0) is unhealthy: XID 48" + out}},
		{"again on the unhealthy GPU", nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventXID, XID: 79, GIID: -1, CIID: -1}, nil},
		{"double-bit ECC", nvml.Event{GPUIndex: 1, UUID: "GPU-1", Kind: nvml.EventECCDoubleBit, GIID: -1, CIID: -1},
			[]string{"Warning GPUUnhealthy GPU 1 (GPU-1) is unhealthy: " + nvml.EventECCDoubleBit.String() + out}},
		{"MIG instance", nvml.Event{GPUIndex: 2, UUID: "GPU-2", Kind: nvml.EventXID, XID: 94, GIID: 2, CIID: -1},
			[]string{"Warning GPUUnhealthy MIG device MIG-b on GPU 2 (GPU-2) is unhealthy: XID 94" + out}},
	} {
		h.Handle(ctx, c.ev)
		require.Equal(t, c.want, drain(rec), c.name)
	}
	require.True(t, h.Healthy(2), "a MIG instance's XID leaves its GPU healthy")

	// GPU 1 keeps failing its check; GPU 0 and GPU 2's MIG-b pass twice.
	lib.mu.Lock()
	lib.fail["GPU-1"] = fmt.Errorf("probe: %w", nvml.ErrGPULost)
	lib.mu.Unlock()
	h.Probe(ctx)
	require.Empty(t, drain(rec), "one passing check of two")
	h.Probe(ctx)
	require.ElementsMatch(t, []string{
		"Normal GPURecovered GPU 0 (GPU-0) passed its health checks again; its devices are reported healthy",
		"Normal GPURecovered MIG device MIG-b on GPU 2 (GPU-2) passed its health checks again; its devices are reported healthy",
	}, drain(rec))
	require.False(t, h.Healthy(1))
}

// A refused per-node config is one Warning event naming it, the config
// still served and why.
func TestNodeEventsConfigRefused(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	deviceplugin.NewNodeEvents(rec, "node-1").ConfigRefused("mig-mixed", "ts", fmt.Errorf("invalid config: flags.migStrategy: Unsupported value"))
	require.Equal(t, []string{`Warning DevicePluginConfigRefused device plugin config "mig-mixed" refused, still serving config "ts": invalid config: flags.migStrategy: Unsupported value`}, drain(rec))
}

// Withheld devices are one Warning event per resource naming them and
// their holders; none withheld any more is a Normal one; PodResources
// unreadable is a Warning, saying what is withheld meanwhile (nothing,
// carried knowledge, the last answer), and answering again a Normal one.
func TestNodeEventsWithheld(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	e := deviceplugin.NewNodeEvents(rec, "node-1")
	e.Withheld("nvidia.com/gpu", []string{"GPU-0"}, []string{"default/a container main holds nvidia.com/gpu.shared GPU-0::1"})
	e.Withheld("nvidia.com/gpu", nil, nil)
	e.HoldingsUnknown(fmt.Errorf("connection refused"), deviceplugin.HeldUnknown)
	e.HoldingsUnknown(fmt.Errorf("connection refused"), deviceplugin.HeldCarried)
	e.HoldingsUnknown(fmt.Errorf("context deadline exceeded"), deviceplugin.HeldLastAnswer)
	e.HoldingsKnown()
	require.Equal(t, []string{
		"Warning GPUDevicesWithheld nvidia.com/gpu: 1 devices [GPU-0] reported unhealthy until released, their GPU held under another name or ID: default/a container main holds nvidia.com/gpu.shared GPU-0::1",
		"Normal GPUDevicesReleased nvidia.com/gpu: no device withheld any more; their holders under other names are gone",
		"Warning PodResourcesUnreadable the kubelet's PodResources API did not answer: devices held under an earlier config's names cannot be withheld until it does: connection refused",
		"Warning PodResourcesUnreadable the kubelet's PodResources API did not answer: withholding what the previous config knew held, not updated until it does " +
			"(devices of holders that ended stay withheld): connection refused",
		"Warning PodResourcesUnreadable the kubelet's PodResources API stopped answering: withholding what it answered last, not updated until it answers again " +
			"(devices of holders that ended stay withheld): context deadline exceeded",
		"Normal PodResourcesRecovered the kubelet's PodResources API answers again; devices held under other names are withheld as it answers",
	}, drain(rec))
}
