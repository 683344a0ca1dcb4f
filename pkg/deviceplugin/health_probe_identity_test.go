package deviceplugin_test

import (
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestProbeChecksDegradedGPUByIdentity: GPU 0 falls off the bus and the
// driver no longer lists it, so NVML numbers every GPU after it one lower.
// A degraded GPU was re-checked by its index: GPU 3's check read the GPU
// that was 4 (a false pass, a needless rediscovery while GPU 3 still
// failed), and GPU 7's check asked for an index past NVML's new end ("NVML
// lists 7 GPUs") forever, so a GPU 7 readable again was never rediscovered.
// Each degraded GPU is now found by its identity (its PCI bus ID where
// discovery read it), else by its place among the GPUs found; one no
// longer listed fails its check. One discovery per round still.
func TestProbeChecksDegradedGPUByIdentity(t *testing.T) {
	const checks = 2
	handle := func(m *fake.Machine, i int) func() {
		require.NoError(t, m.Fail(i, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_GPU_IS_LOST))
		return func() { m.Heal(i) }
	}
	links := func(m *fake.Machine, i int) func() {
		d := m.Device(i)
		orig := d.GetNvLinkStateFunc
		d.GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
		return func() { d.GetNvLinkStateFunc = orig }
	}
	tests := []struct {
		name     string
		degraded int
		// break_ degrades GPU i at discovery until the returned heal:
		// handle (no identity read) or links (its bus ID read).
		break_       func(m *fake.Machine, i int) (heal func())
		heal         bool // the degraded GPU reads in full again
		unlistItself bool // the degraded GPU is no longer listed either
		rediscover   bool // after checks passing rounds
	}{
		{name: "GPU 3 without identity still failing (was: GPU 4 checked)", degraded: 3, break_: handle},
		{name: "GPU 3 without identity reads again", degraded: 3, break_: handle, heal: true, rediscover: true},
		{name: "GPU 3 by bus ID still failing (was: GPU 4 checked)", degraded: 3, break_: links},
		{name: "GPU 3 by bus ID reads again", degraded: 3, break_: links, heal: true, rediscover: true},
		{name: "last GPU 7 reads again (was: past NVML's end forever)", degraded: 7, break_: handle, heal: true, rediscover: true},
		{name: "last GPU 7 by bus ID reads again", degraded: 7, break_: links, heal: true, rediscover: true},
		{name: "last GPU 7 still failing", degraded: 7, break_: handle},
		{name: "GPU 3 no longer listed either", degraded: 3, break_: links, heal: true, unlistItself: true},
		{name: "GPU 3 without identity no longer listed either", degraded: 3, break_: handle, heal: true, unlistItself: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXH100)
			require.NoError(t, err)
			heal := tc.break_(m, tc.degraded)
			lib := m.Lib(t)
			inv, err := lib.Discover()
			require.NoError(t, err)
			for _, g := range inv.GPUs {
				require.Equal(t, g.Index == tc.degraded, g.Degraded != nil, "GPU %d degraded: %v", g.Index, g.Degraded)
			}
			h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: checks})
			ctx, logs := probeLog(t)

			m.Unlist(0) // NVML lists 8-1 = 7 GPUs, numbered 0..6
			if tc.unlistItself {
				m.Unlist(tc.degraded) // 8-2 = 6 GPUs
			}
			if tc.heal {
				heal()
			}
			var discoveries int
			count := m.Server().DeviceGetCountFunc
			m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) {
				discoveries++
				return count()
			}
			for r := range checks {
				h.Probe(ctx)
				// One degraded GPU, one discovery per round.
				require.Equal(t, r+1, discoveries)
			}
			select {
			case <-h.Rediscover():
				require.True(t, tc.rediscover, "rediscovery asked while GPU %d does not read in full", tc.degraded)
			default:
				require.False(t, tc.rediscover, "GPU %d reads in full for %d rounds: rediscovery not asked", tc.degraded, checks)
			}
			// checks rounds, 1 degraded GPU: a failing line each when
			// it does not read in full, else none.
			want := checks
			if tc.rediscover {
				want = 0
			}
			require.Equal(t, want, logs(logStillFailing, 4))
			require.False(t, h.Healthy(tc.degraded), "a degraded GPU comes back by a rediscovery only")
		})
	}
}
