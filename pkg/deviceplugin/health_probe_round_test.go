package deviceplugin_test

import (
	"slices"
	"sync/atomic"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestProbeRoundSharesOneDiscovery: the GPUs that discovery degraded by
// their NVLink links or MIG devices are checked by discovering the node
// again (RecheckGPUs). A probe round used to discover the node once per
// degraded GPU: 8 full discoveries every interval on a DGX H100 whose
// NVSwitch tray is down. One round now discovers once, whatever the
// number of degraded GPUs, with the same verdict per GPU: failing while
// the fault lasts, passing once it is gone (Rediscover after Checks
// rounds), and a discovery that fails is a failed check of each GPU (its
// passes start over).
func TestProbeRoundSharesOneDiscovery(t *testing.T) {
	const checks = 2
	tests := []struct {
		name    string
		machine string
		mig     map[int][]string
		gpus    []int
		// break_ makes discovery degrade GPU i until the returned heal.
		break_ func(m *fake.Machine, i int) (heal func())
	}{
		{
			name: "NVSwitch tray down: 8 GPUs' link state unreadable", machine: fake.DGXH100,
			gpus: []int{0, 1, 2, 3, 4, 5, 6, 7},
			break_: func(m *fake.Machine, i int) func() {
				d := m.Device(i)
				orig := d.GetNvLinkStateFunc
				d.GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
				return func() { d.GetNvLinkStateFunc = orig }
			},
		},
		{
			name: "3 GPUs' MIG devices unreadable", machine: fake.DGXA100,
			mig:  map[int][]string{1: {"1g.5gb"}, 4: {"1g.5gb"}, 6: {"3g.20gb"}},
			gpus: []int{1, 4, 6},
			break_: func(m *fake.Machine, i int) func() {
				d := m.Device(i)
				orig := d.GetMigDeviceHandleByIndexFunc
				d.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.ERROR_UNKNOWN }
				return func() { d.GetMigDeviceHandleByIndexFunc = orig }
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(tc.machine, fake.WithMIG(tc.mig))
			require.NoError(t, err)
			var heals []func()
			for _, i := range tc.gpus {
				heals = append(heals, tc.break_(m, i))
			}
			lib := m.Lib(t)
			inv, err := lib.Discover()
			require.NoError(t, err)
			for _, g := range inv.GPUs {
				require.Equal(t, slices.Contains(tc.gpus, g.Index), g.Degraded != nil, "GPU %d degraded: %v", g.Index, g.Degraded)
			}
			// One discovery is one DeviceGetCount; the checks of GPUs
			// that were read (CheckGPU) take no discovery.
			var discoveries atomic.Int64
			var countFails atomic.Bool
			count := m.Server().DeviceGetCountFunc
			m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) {
				discoveries.Add(1)
				if countFails.Load() {
					return 0, gonvml.ERROR_UNKNOWN
				}
				return count()
			}
			h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: checks})
			ctx, logs := probeLog(t)
			// A GPU that faulted (not degraded) is probed in the same
			// rounds, by CheckGPU: no discovery of its own.
			if faulted := slices.IndexFunc(inv.GPUs, func(g nvml.GPU) bool { return g.Degraded == nil }); faulted >= 0 {
				h.Handle(ctx, nvml.Event{GPUIndex: faulted, UUID: inv.GPUs[faulted].UUID, Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
				require.False(t, h.Healthy(faulted))
			}

			round := func(step string) {
				t.Helper()
				before := discoveries.Load()
				h.Probe(ctx)
				// One round, len(tc.gpus) degraded GPUs: 1 discovery
				// (it was len(tc.gpus): 8 and 3).
				require.Equal(t, int64(1), discoveries.Load()-before, "%s: discoveries in one round with %d degraded GPUs", step, len(tc.gpus))
			}
			rediscovered := func() bool {
				select {
				case <-h.Rediscover():
					return true
				default:
					return false
				}
			}

			// The fault lasts: every degraded GPU fails each round.
			for r := 1; r <= 2; r++ {
				round("fault lasts")
			}
			// 2 rounds x len(tc.gpus) failing checks (16, 6); the faulted
			// GPU passes, so it adds none.
			require.Equal(t, 2*len(tc.gpus), logs(logStillFailing, 4))
			require.False(t, rediscovered(), "rediscovery asked while the fault lasts")

			// Gone: 1 pass of 2 each.
			for _, heal := range heals {
				heal()
			}
			round("healed, pass 1")
			require.False(t, rediscovered(), "1 pass of %d", checks)
			// The discovery itself fails: a failed check for each
			// GPU (len(tc.gpus) more lines: 16+8 = 24, 6+3 = 9), whose
			// passes start over.
			countFails.Store(true)
			round("discovery fails")
			require.Equal(t, 3*len(tc.gpus), logs(logStillFailing, 4))
			countFails.Store(false)
			round("pass 1 again")
			require.False(t, rediscovered(), "the failed discovery reset the passes: 1 of %d", checks)
			round("pass 2")
			require.True(t, rediscovered(), "%d passing rounds read the degraded GPUs in full", checks)
		})
	}
}
