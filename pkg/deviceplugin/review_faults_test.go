package deviceplugin_test

import (
	"context"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestDegradedByLinksNoRebuildLoop: GPU 7 of a DGX-1 answers every
// identity question but its NVLink state is an error, so discovery
// degrades it (unhealthy, links unknown). Its recovery probes must not ask
// for a rediscovery while that lasts: the rediscovery would degrade it
// again, and the plugin was rebuilt (new sockets, registrations, a
// discovery) at every probe interval for as long as the fault lasted.
// Once the links read again, one probe (checks: 1) asks for it.
func TestDegradedByLinksNoRebuildLoop(t *testing.T) {
	m, err := fake.New(fake.DGX1V100)
	require.NoError(t, err)
	d := m.Device(7)
	orig := d.GetNvLinkStateFunc
	d.GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
	mgr, err := buildManager(t, m, "version: v1\nhealth: {recovery: {checks: 1, interval: 10s}}")
	require.NoError(t, err)
	require.Error(t, mgr.Inventory().GPUs[7].Degraded)
	require.False(t, mgr.Health().Healthy(7))
	ctx := context.Background()
	// Three probes while the fault lasts (3 x 1 check): no rediscovery.
	for range 3 {
		mgr.Health().Probe(ctx)
		select {
		case <-mgr.Health().Rediscover():
			t.Fatal("a rediscovery asked for while GPU 7's links still fail: it would degrade GPU 7 again")
		default:
		}
	}
	d.GetNvLinkStateFunc = orig
	mgr.Health().Probe(ctx)
	select {
	case <-mgr.Health().Rediscover():
	default:
		t.Fatal("GPU 7 reads in full again, but no rediscovery is asked for")
	}
}
