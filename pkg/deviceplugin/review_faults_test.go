package deviceplugin_test

import (
	"context"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	testingclock "k8s.io/utils/clock/testing"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
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

// TestMIGChangeUnhealthyWhileTheRebuildFails: a GPU's MIG layout changes
// under the running plugin (migStrategy mixed) so that the node cannot be
// discovered again: a GPU in MIG mode without MIG devices refuses it. Run
// asks for a rediscovery, which fails, and the command serves the running
// Manager again until its retry (2 s, doubling up to 5 min). That Manager
// must not advertise healthy what is gone meanwhile; the mark is no fault:
// a later Manager does not start with it. The cases:
//   - GPU 0's MIG devices destroyed (nvidia-smi mig -dci -dgi, or a
//     mig-manager between its steps): before, the destroyed MIG devices
//     stayed healthy, and the kubelet gave pods MIG UUIDs that no longer
//     existed;
//   - GPUs 0 and 1's destroyed together (-dci -dgi without -i): before,
//     CheckMIG named only the first GPU that changed, so GPU 1's stayed
//     healthy at every resync;
//   - GPU 0, served whole, turned to MIG mode before any instance is made
//     (nvidia-smi -i 0 -mig 1): a GPU in MIG mode without MIG devices
//     shows a container no CUDA device; before, only MIG devices gone were
//     marked, and GPU 0 had none.
func TestMIGChangeUnhealthyWhileTheRebuildFails(t *testing.T) {
	tests := []struct {
		name   string
		layout map[int][]string
		change func(t *testing.T, m *fake.Machine)
		// healthy: the devices advertised healthy afterwards, by resource.
		healthy map[string]int
	}{
		{
			name:   "one GPU's MIG devices destroyed",
			layout: map[int][]string{0: {"3g.20gb", "3g.20gb"}, 1: {"3g.20gb"}},
			change: func(t *testing.T, m *fake.Machine) { require.NoError(t, m.ReconfigureMIG(0, nil)) },
			// GPUs 2-7 whole (6); of mig-3g.20gb, GPU 0's two are gone
			// and GPU 1's one is left (3 - 2 = 1).
			healthy: map[string]int{"nvidia.com/gpu": 6, "nvidia.com/mig-3g.20gb": 1},
		},
		{
			name:   "two GPUs' MIG devices destroyed together",
			layout: map[int][]string{0: {"3g.20gb"}, 1: {"3g.20gb", "3g.20gb"}, 2: {"3g.20gb"}},
			change: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.ReconfigureMIG(0, nil))
				require.NoError(t, m.ReconfigureMIG(1, nil))
			},
			// GPUs 3-7 whole (5); of mig-3g.20gb only GPU 2's one is left.
			healthy: map[string]int{"nvidia.com/gpu": 5, "nvidia.com/mig-3g.20gb": 1},
		},
		{
			name:   "a GPU served whole turned to MIG mode",
			layout: map[int][]string{1: {"3g.20gb"}},
			change: func(t *testing.T, m *fake.Machine) {
				ret, _ := m.Device(0).SetMigMode(gonvml.DEVICE_MIG_ENABLE)
				require.Equal(t, gonvml.SUCCESS, ret)
			},
			// GPUs 2-7 whole (6, GPU 0 out), GPU 1's MIG device.
			healthy: map[string]int{"nvidia.com/gpu": 6, "nvidia.com/mig-3g.20gb": 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100, fake.WithMIG(tc.layout))
			require.NoError(t, err)
			cfg, err := configv1.Parse([]byte("version: v1\nflags: {migStrategy: mixed}"))
			require.NoError(t, err)
			clk := testingclock.NewFakeClock(time.Now())
			opts := deviceplugin.Options{Lib: m.Lib(t), Config: cfg, PluginDir: socketDir(t), Clock: clk}
			mgr, err := deviceplugin.New(opts)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			run := func() chan error {
				done := make(chan error, 1)
				go func() { done <- mgr.Run(ctx) }()
				return done
			}
			done := run()
			tc.change(t, m)
			require.ErrorIs(t, resyncUntilRunEnds(t, clk, done, "Run went on serving devices that are gone"), deviceplugin.ErrRediscover)
			_, err = deviceplugin.New(opts)
			require.ErrorContains(t, err, "has MIG mode enabled and no MIG devices")
			// The command serves the running Manager again.
			done = run()
			healthy := map[string]int{}
			for _, p := range mgr.Plugins() {
				for _, d := range p.Devices() {
					if d.Health == pluginapi.Healthy {
						healthy[p.Name()]++
					}
				}
			}
			require.Equal(t, tc.healthy, healthy)
			require.Empty(t, mgr.Health().UnhealthyUUIDs(), "a device gone is no fault to carry")
			cancel()
			require.NoError(t, <-done)
		})
	}
}

// resyncUntilRunEnds steps clk a resync period at a time until the Run
// feeding done ends (msg says why it must), and returns Run's error.
func resyncUntilRunEnds(t *testing.T, clk *testingclock.FakeClock, done <-chan error, msg string) error {
	t.Helper()
	var runErr error
	require.Eventually(t, func() bool {
		clk.Step(deviceplugin.DefaultResyncPeriod)
		select {
		case runErr = <-done:
			return true
		default:
			return false
		}
	}, 10*time.Second, 10*time.Millisecond, msg)
	return runErr
}
