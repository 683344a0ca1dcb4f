package deviceplugin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestRebuildKeepsUnhealthyGPUs: cmd/device-plugin/app's run loop
// builds a new Manager over the same node after a per-node config reload
// (and after ErrRediscover, when a GPU discovery could not read answers
// again). A GPU an XID took out must not come back healthy through that
// rebuild: with health.recovery disabled (NVIDIA's plugin: never) it stays
// out; with recovery on, it comes back only after its checks pass.
func TestRebuildKeepsUnhealthyGPUs(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
	// run builds a Manager as cmd/device-plugin/app's loop does, with the
	// previous one's unhealthy devices (Options.Unhealthy).
	run := func(config string, unhealthy []string) (*deviceplugin.Manager, func()) {
		cfg, err := configv1.Parse([]byte(config))
		require.NoError(t, err)
		mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir, Unhealthy: unhealthy})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
		done := make(chan error, 1)
		go func() { done <- mgr.Run(ctx) }()
		return mgr, func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not end")
			}
		}
	}
	mgr, stop := run("version: v1\nhealth: {recovery: {enabled: false}}", nil)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	m.InjectXID(2, 48) // double-bit ECC: GPU 2 out, 8 - 1 = 7
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
	require.False(t, mgr.Health().Healthy(2))

	// The per-node config changes (a label, say publish settings); the
	// command stops this Manager and builds the next one.
	stop()
	carried := mgr.Health().UnhealthyUUIDs()
	require.Equal(t, []string{m.UUID(2)}, carried)
	mgr, stop = run("version: v1\nhealth: {recovery: {enabled: false}}\nflags: {plugin: {passDeviceSpecs: true}}", carried)
	defer stop()
	require.False(t, mgr.Health().Healthy(2), "GPU 2 came back healthy through a config reload, with no check passed")
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
}

// blockingCheckLib's CheckGPU waits for release once it has said it started.
type blockingCheckLib struct {
	nvml.Lib
	started chan struct{}
	release chan struct{}
}

func (l *blockingCheckLib) CheckGPU(string) error {
	l.started <- struct{}{}
	<-l.release
	return nil
}

// TestCheckOlderThanTheLastXID: a check that began before an XID
// must not count as a pass after it: with checks: 1, a GPU that raised an
// XID while its check was in flight came back healthy at once.
func TestCheckOlderThanTheLastXID(t *testing.T) {
	inv := &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}}}
	lib := &blockingCheckLib{started: make(chan struct{}), release: make(chan struct{})}
	h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: 1})
	ctx := context.Background()
	h.Handle(ctx, nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventXID, XID: 48})
	require.False(t, h.Healthy(0))
	done := make(chan struct{})
	go func() { h.Probe(ctx); close(done) }()
	<-lib.started
	// The GPU fails again while its check runs.
	h.Handle(ctx, nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventXID, XID: 48})
	close(lib.release)
	<-done
	require.False(t, h.Healthy(0), "a check begun before the latest XID recovered the GPU")
}

// A tracker started with its predecessor's marks (HealthOptions.Unhealthy)
// has those GPUs and MIG devices unhealthy and answers them back; a UUID
// it does not know changes nothing and is dropped, and a GPU discovery
// could not read is no mark by itself (its own state). While a GPU is
// degraded, though, the marks that name nothing served may be that GPU's
// under the UUID it gets back once read: they are answered back too.
func TestHealthStartsWithUnhealthyMarks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		degraded  bool
		unhealthy []string
		want      []string
	}{
		{name: "all read", unhealthy: []string{"GPU-0", "MIG-b", "GPU-gone"}, want: []string{"GPU-0", "MIG-b"}},
		{name: "GPU-2 degraded, not marked", degraded: true, unhealthy: []string{"GPU-0", "MIG-b"}, want: []string{"GPU-0", "MIG-b"}},
		{name: "GPU-2 degraded, marks carried", degraded: true, unhealthy: []string{"GPU-0", "MIG-b", "GPU-gone", "GPU-2"},
			want: []string{"GPU-0", "GPU-2", "GPU-gone", "MIG-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := &nvml.Inventory{
				GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}, {Index: 1, UUID: "GPU-1"}, {Index: 2, UUID: "GPU-2"}},
				MIG:  []nvml.MIGDevice{{UUID: "MIG-a", ParentIndex: 1, GIID: 1, CIID: 0}, {UUID: "MIG-b", ParentIndex: 1, GIID: 2, CIID: 0}},
			}
			if tc.degraded {
				inv.GPUs[2].Degraded = errors.New("unreadable")
			}
			h := deviceplugin.NewHealth(nil, inv, deviceplugin.HealthOptions{Unhealthy: tc.unhealthy})
			v := h.Snapshot()
			require.False(t, v.GPU(0))
			require.True(t, v.GPU(1))
			require.Equal(t, !tc.degraded, v.GPU(2))
			require.True(t, v.Device(1, "MIG-a"))
			require.False(t, v.Device(1, "MIG-b"))
			require.Equal(t, tc.want, h.UnhealthyUUIDs())
		})
	}
}

// TestRunAgainAfterAskingForARebuild: a Manager whose Run asked for a
// rebuild (an ErrRediscover) serves again when Run is called again, without
// asking again: cmd/device-plugin/app does so while a rebuild that failed
// waits for its retry, and a Run that returned at once would leave the
// kubelet without the devices meanwhile. Its unhealthy devices stay out.
func TestRunAgainAfterAskingForARebuild(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		// prepare breaks the machine before New and returns the marks the
		// Manager starts with; ask makes the first Run ask for a rebuild.
		prepare func(t *testing.T, m *fake.Machine) []string
		ask     func(m *fake.Machine, mgr *deviceplugin.Manager)
		want    error
	}{
		{name: "restartOnDeviceUnhealthy, a carried mark", config: "version: v1\nflags: {restartOnDeviceUnhealthy: true}\nhealth: {recovery: {enabled: false}}",
			prepare: func(_ *testing.T, m *fake.Machine) []string { return []string{m.UUID(2)} },
			ask:     func(*fake.Machine, *deviceplugin.Manager) {}, want: deviceplugin.ErrRestartOnUnhealthy},
		{name: "a GPU discovery could not read answers again", config: "version: v1\nhealth: {recovery: {checks: 2, interval: 10s}}",
			prepare: func(t *testing.T, m *fake.Machine) []string {
				require.NoError(t, m.Fail(2, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_GPU_IS_LOST))
				return nil
			},
			ask: func(m *fake.Machine, mgr *deviceplugin.Manager) {
				m.Heal(2)
				mgr.Health().Probe(context.Background())
				mgr.Health().Probe(context.Background())
			}, want: deviceplugin.ErrRediscover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := socketDir(t)
			k := startKubelet(t, dir)
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			unhealthy := tc.prepare(t, m)
			cfg, err := configv1.Parse([]byte(tc.config))
			require.NoError(t, err)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: m.Lib(t), Config: cfg, PluginDir: dir, Unhealthy: unhealthy})
			require.NoError(t, err)
			require.False(t, mgr.Health().Healthy(2))
			tc.ask(m, mgr)
			ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), ktesting.NewLogger(t, ktesting.NewConfig())))
			defer cancel()
			require.ErrorIs(t, mgr.Run(ctx), tc.want)

			done := make(chan error, 1)
			go func() { done <- mgr.Run(ctx) }()
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
			_, total := k.counts()
			require.Equal(t, int64(8), total["nvidia.com/gpu"], "GPU 2 is listed unhealthy")
			select {
			case err := <-done:
				t.Fatalf("Run asked again: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
			cancel()
			require.NoError(t, <-done)
		})
	}
}
