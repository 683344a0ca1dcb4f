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

// TestGoneMIGDevicesUnhealthyWhileTheRebuildFails: GPU 0's MIG devices are
// destroyed under the running plugin (MIG mode stays on, no instance
// created yet: nvidia-smi mig -dci -dgi, or a mig-manager between its
// steps). Run asks for a rediscovery, which fails (a GPU in MIG mode with
// no MIG device refuses the node) and the command serves the running
// Manager again until its retry (2 s, doubling up to 5 min). Before, that
// Manager advertised the destroyed MIG devices healthy all along, and the
// kubelet gave pods MIG UUIDs that no longer existed. GPU 1's MIG device,
// unchanged, stays healthy; the mark is no fault: a later Manager does not
// start with it.
func TestGoneMIGDevicesUnhealthyWhileTheRebuildFails(t *testing.T) {
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"3g.20gb", "3g.20gb"}, 1: {"3g.20gb"}}))
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
	require.NoError(t, m.ReconfigureMIG(0, nil))
	require.ErrorIs(t, resyncUntilRunEnds(t, clk, done, "Run went on serving MIG devices that are gone"), deviceplugin.ErrRediscover)
	_, err = deviceplugin.New(opts)
	require.ErrorContains(t, err, "has MIG mode enabled and no MIG devices")
	// The command serves the running Manager again.
	done = run()
	healthy := func() map[string]int {
		out := map[string]int{}
		for _, p := range mgr.Plugins() {
			for _, d := range p.Devices() {
				if d.Health == pluginapi.Healthy {
					out[p.Name()]++
				}
			}
		}
		return out
	}
	// GPUs 2-7 whole (6); of mig-3g.20gb, GPU 0's two are gone and GPU
	// 1's one is left (3 - 2 = 1).
	require.Equal(t, map[string]int{"nvidia.com/gpu": 6, "nvidia.com/mig-3g.20gb": 1}, healthy())
	require.Empty(t, mgr.Health().UnhealthyUUIDs(), "a gone device is no fault to carry")
	cancel()
	require.NoError(t, <-done)
}

// TestGoneMIGDevicesOfEveryGPUUnhealthy: the MIG devices of GPUs 0 and 1
// are destroyed together (nvidia-smi mig -dci -dgi without -i, a
// mig-manager tearing the node's layout down), GPU 2's are kept. The
// rebuild fails as in TestGoneMIGDevicesUnhealthyWhileTheRebuildFails, and
// the Manager served again must advertise both GPUs' gone devices
// unhealthy. Before, CheckMIG named only the first GPU that changed, so
// GPU 1's destroyed devices stayed healthy at every resync until a rebuild
// succeeded.
func TestGoneMIGDevicesOfEveryGPUUnhealthy(t *testing.T) {
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"3g.20gb"}, 1: {"3g.20gb", "3g.20gb"}, 2: {"3g.20gb"}}))
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
	require.NoError(t, m.ReconfigureMIG(0, nil))
	require.NoError(t, m.ReconfigureMIG(1, nil))
	require.ErrorIs(t, resyncUntilRunEnds(t, clk, done, "Run went on serving MIG devices that are gone"), deviceplugin.ErrRediscover)
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
	// GPUs 3-7 whole (5); of mig-3g.20gb only GPU 2's one is left.
	require.Equal(t, map[string]int{"nvidia.com/gpu": 5, "nvidia.com/mig-3g.20gb": 1}, healthy)
	cancel()
	require.NoError(t, <-done)
}

// TestGPUTurnedMIGUnhealthyWhileTheRebuildFails: GPU 0, served whole,
// has its MIG mode turned on under the running plugin (nvidia-smi -i 0
// -mig 1) before any instance is made. The rebuild fails as in
// TestGoneMIGDevicesUnhealthyWhileTheRebuildFails, and the Manager served
// again must not advertise GPU 0 healthy: a GPU in MIG mode without MIG
// devices shows a container no CUDA device. Before, only MIG devices gone
// were marked, and GPU 0 had none.
func TestGPUTurnedMIGUnhealthyWhileTheRebuildFails(t *testing.T) {
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{1: {"3g.20gb"}}))
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
	ret, _ := m.Device(0).SetMigMode(gonvml.DEVICE_MIG_ENABLE)
	require.Equal(t, gonvml.SUCCESS, ret)
	require.ErrorIs(t, resyncUntilRunEnds(t, clk, done, "Run went on serving a GPU now in MIG mode"), deviceplugin.ErrRediscover)
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
	// GPUs 2-7 whole (6), GPU 1's MIG device.
	require.Equal(t, map[string]int{"nvidia.com/gpu": 6, "nvidia.com/mig-3g.20gb": 1}, healthy)
	require.Empty(t, mgr.Health().UnhealthyUUIDs(), "a GPU gone as served is no fault to carry")
	cancel()
	require.NoError(t, <-done)
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
