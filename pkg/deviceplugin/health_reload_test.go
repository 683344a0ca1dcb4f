package deviceplugin_test

import (
	"context"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// reloadEnv is a health tracker over a fake DGX A100 whose driver the test
// unloads and loads again under the running tracker (fake.Machine's
// UnloadDriver/LoadDriver): NVML's session answers ERROR_UNINITIALIZED until
// the library opens a new one.
type reloadEnv struct {
	m   *fake.Machine
	lib nvml.Lib
	clk *testingclock.FakeClock
	inv *nvml.Inventory
	h   *deviceplugin.Health
	ctx context.Context
}

// probe runs n recovery rounds, one second apart on the fake clock.
func (e *reloadEnv) probe(n int) {
	for range n {
		e.h.Probe(e.ctx)
		e.clk.Step(time.Second)
	}
}

// requireHealthy requires exactly the GPUs not in sick to be healthy.
func (e *reloadEnv) requireHealthy(t *testing.T, sick ...int) {
	t.Helper()
	for i := range e.m.NumGPUs() {
		want := true
		for _, s := range sick {
			if s == i {
				want = false
			}
		}
		require.Equal(t, want, e.h.Healthy(i), "GPU %d healthy", i)
	}
}

// requireRediscovered requires a discovery after the reload to list each
// GPU once, as before: the tracker it builds serves no GPU twice.
func (e *reloadEnv) requireRediscovered(t *testing.T) {
	t.Helper()
	inv, err := e.lib.Discover()
	require.NoError(t, err)
	require.Len(t, inv.GPUs, len(e.inv.GPUs))
	seen := map[string]bool{}
	for i, g := range inv.GPUs {
		require.NoError(t, g.Degraded)
		require.False(t, seen[g.UUID], "GPU %s listed twice", g.UUID)
		seen[g.UUID] = true
		require.Equal(t, e.m.UUID(i), g.UUID)
	}
}

func TestHealthRecoversAcrossDriverReload(t *testing.T) {
	cases := []struct {
		name string
		// before breaks the machine before the node is discovered.
		before func(t *testing.T, m *fake.Machine)
		// watch runs the tracker on the NVML event watch.
		watch bool
		run   func(t *testing.T, e *reloadEnv)
	}{
		{
			name:  "reload while healthy",
			watch: true,
			run: func(t *testing.T, e *reloadEnv) {
				e.m.ReloadDriver()
				e.probe(2)
				e.requireHealthy(t)
				// The event watch is made again on the new session: an
				// XID after the reload still takes the GPU out.
				require.Eventually(t, func() bool {
					e.m.InjectXID(4, 48)
					return !e.h.Healthy(4)
				}, 5*time.Second, 20*time.Millisecond, "an XID after the reload is seen")
				e.requireHealthy(t, 4)
				// XIDs injected before the last may land still; the GPU
				// recovers once its checks outlast them.
				require.Eventually(t, func() bool {
					e.probe(1)
					return e.h.Healthy(4)
				}, 5*time.Second, 20*time.Millisecond, "the GPU recovers on the new session")
				e.requireHealthy(t)
			},
		},
		{
			name: "reload while a GPU is degraded",
			before: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_UNKNOWN))
			},
			run: func(t *testing.T, e *reloadEnv) {
				e.requireHealthy(t, 3)
				e.m.ReloadDriver()
				e.probe(3)
				select {
				case <-e.h.Rediscover():
					t.Fatal("rediscovery asked while the GPU still fails")
				default:
				}
				e.m.Heal(3)
				e.probe(2)
				select {
				case <-e.h.Rediscover():
				default:
					t.Fatal("the GPU reads in full on the new session: the node must be discovered again")
				}
			},
		},
		{
			name: "driver missing for several rounds then back",
			run: func(t *testing.T, e *reloadEnv) {
				e.h.Handle(e.ctx, nvml.Event{GPUIndex: 0, UUID: e.m.UUID(0), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
				e.m.UnloadDriver()
				e.probe(7)
				e.requireHealthy(t, 0)
				_, _, failed, _ := e.m.NVMLSessions()
				require.Equal(t, 3, failed, "Init tried at rounds 0, 1 and 3 of 7 (backoff 1s, 2s, 4s), not each round")
				e.m.LoadDriver()
				e.clk.Step(time.Minute)
				e.probe(1)
				e.requireHealthy(t, 0)
				e.probe(1)
				e.requireHealthy(t)
			},
		},
		{
			name: "a GPU lost across the reload",
			run: func(t *testing.T, e *reloadEnv) {
				e.m.LoseGPU(1)
				e.h.Handle(e.ctx, nvml.Event{GPUIndex: 1, UUID: e.m.UUID(1), Kind: nvml.EventGPULost, GIID: -1, CIID: -1})
				e.m.ReloadDriver()
				e.probe(3)
				e.requireHealthy(t, 1)
				e.m.RestoreGPU(1)
				e.probe(2)
				e.requireHealthy(t)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			if tc.before != nil {
				tc.before(t, m)
			}
			clk := testingclock.NewFakeClock(time.Unix(1_700_000_000, 0))
			ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))))
			lib := nvml.New(m.Interface(), nvml.WithClock(clk), nvml.WithEventTimeout(10*time.Millisecond), nvml.WithLogger(klog.FromContext(ctx)))
			require.NoError(t, lib.Init())
			inv, err := lib.Discover()
			require.NoError(t, err)
			h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: 2, Clock: clk})
			done := make(chan struct{})
			var events <-chan nvml.Event
			if tc.watch {
				uuids := make([]string, m.NumGPUs())
				for i := range uuids {
					uuids[i] = m.UUID(i)
				}
				events, err = lib.WatchEvents(ctx, uuids)
				require.NoError(t, err)
				go func() { h.Run(ctx, events); close(done) }()
			} else {
				close(done)
			}
			tc.run(t, &reloadEnv{m: m, lib: lib, clk: clk, inv: inv, h: h, ctx: ctx})
			(&reloadEnv{m: m, lib: lib, inv: inv}).requireRediscovered(t)
			cancel()
			<-done
			if events != nil {
				for range events { // until every watcher stopped
				}
			}
			require.NoError(t, lib.Shutdown())
			refs, inits, _, shutdowns := m.NVMLSessions()
			require.Zero(t, refs, "every NVML Init is matched by a Shutdown")
			require.Equal(t, inits, shutdowns)
		})
	}
}
