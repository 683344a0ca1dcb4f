package nvml_test

import (
	"context"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// sessions is what fake.Machine.NVMLSessions says.
type sessions struct{ refs, inits, failedInits, shutdowns int }

func sessionsOf(m *fake.Machine) sessions {
	refs, inits, failed, shutdowns := m.NVMLSessions()
	return sessions{refs, inits, failed, shutdowns}
}

// reloadLib is an initialised Lib over a fresh DGX A100 on a fake clock; the
// test fails unless NVML's reference counts balance once it is shut down.
func reloadLib(t *testing.T) (*fake.Machine, nvml.Lib, *testingclock.FakeClock) {
	t.Helper()
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	clk := testingclock.NewFakeClock(time.Unix(1_700_000_000, 0))
	lib := nvml.New(m.Interface(), nvml.WithClock(clk), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	t.Cleanup(func() {
		require.NoError(t, lib.Shutdown())
		s := sessionsOf(m)
		require.Zero(t, s.refs, "every NVML Init is matched by a Shutdown: %+v", s)
		require.Equal(t, s.inits, s.shutdowns, "%+v", s)
	})
	return m, lib, clk
}

// requireSameGPUs requires a discovery after the reload to list the GPUs of
// the one before, each once.
func requireSameGPUs(t *testing.T, before *nvml.Inventory, lib nvml.Lib) {
	t.Helper()
	after, err := lib.Discover()
	require.NoError(t, err)
	require.Len(t, after.GPUs, len(before.GPUs))
	seen := map[string]bool{}
	for i, g := range after.GPUs {
		require.False(t, seen[g.UUID], "GPU %s listed twice", g.UUID)
		seen[g.UUID] = true
		require.Equal(t, before.GPUs[i].UUID, g.UUID)
		require.Equal(t, before.GPUs[i].PCIBusID, g.PCIBusID)
	}
}

func TestRecoveryAfterDriverReload(t *testing.T) {
	cases := []struct {
		name string
		// before breaks the machine before the first discovery.
		before func(t *testing.T, m *fake.Machine)
		// reload unloads and loads the driver again, with what the
		// test checks while it is away.
		reload func(t *testing.T, m *fake.Machine, lib nvml.Lib, clk *testingclock.FakeClock)
		// check runs once the driver is back.
		check func(t *testing.T, m *fake.Machine, lib nvml.Lib, inv *nvml.Inventory)
		want  sessions // once the driver is back and checked, before Shutdown
	}{
		{
			name: "reload while healthy",
			reload: func(t *testing.T, m *fake.Machine, lib nvml.Lib, _ *testingclock.FakeClock) {
				m.ReloadDriver()
			},
			check: func(t *testing.T, m *fake.Machine, lib nvml.Lib, inv *nvml.Inventory) {
				for i := range m.NumGPUs() {
					require.NoError(t, lib.CheckGPU(m.UUID(i)))
				}
				require.NoError(t, lib.CheckMIG(inv))
				requireSameGPUs(t, inv, lib)
			},
			want: sessions{refs: 1, inits: 2, shutdowns: 1},
		},
		{
			name: "reload while a GPU is degraded",
			before: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_UNKNOWN))
			},
			reload: func(t *testing.T, m *fake.Machine, lib nvml.Lib, _ *testingclock.FakeClock) {
				m.ReloadDriver()
			},
			check: func(t *testing.T, m *fake.Machine, lib nvml.Lib, inv *nvml.Inventory) {
				require.Error(t, inv.GPUs[3].Degraded)
				errs := lib.RecheckGPUs(refs(inv), []int{3})
				require.ErrorIs(t, errs[0], gonvml.ERROR_UNKNOWN, "the GPU's own fault, on a new session")
				require.False(t, nvml.IsSessionError(errs[0]))
				m.Heal(3)
				require.Equal(t, []error{nil}, lib.RecheckGPUs(refs(inv), []int{3}))
			},
			want: sessions{refs: 1, inits: 2, shutdowns: 1},
		},
		{
			name: "driver missing for several rounds then back",
			reload: func(t *testing.T, m *fake.Machine, lib nvml.Lib, clk *testingclock.FakeClock) {
				m.UnloadDriver()
				uuid := m.UUID(0)
				// One round per second; the tries of Init back off 1s,
				// 2s, 4s, ...: rounds 0, 1, 3 and 7 try.
				tried := map[int]bool{0: true, 1: true, 3: true, 7: true}
				failed := 0
				for round := range 9 {
					err := lib.CheckGPU(uuid)
					require.ErrorIs(t, err, nvml.ErrSessionLost, "round %d", round)
					require.ErrorIs(t, err, gonvml.ERROR_DRIVER_NOT_LOADED, "round %d", round)
					require.True(t, nvml.IsSessionError(err))
					if tried[round] {
						failed++
					}
					require.Equal(t, failed, sessionsOf(m).failedInits, "round %d: Init tried only when its backoff is over", round)
					_, err = lib.Discover()
					require.ErrorIs(t, err, nvml.ErrSessionLost)
					clk.Step(time.Second)
				}
				require.Equal(t, sessions{refs: 0, inits: 1, failedInits: 4, shutdowns: 1}, sessionsOf(m),
					"the lost session is shut down once, before the first try")
				m.LoadDriver()
				require.Error(t, lib.CheckGPU(uuid), "not tried again before the backoff (8s since round 7) is over")
				clk.Step(8 * time.Second)
			},
			check: func(t *testing.T, m *fake.Machine, lib nvml.Lib, inv *nvml.Inventory) {
				require.NoError(t, lib.CheckGPU(m.UUID(0)))
				requireSameGPUs(t, inv, lib)
			},
			want: sessions{refs: 1, inits: 2, failedInits: 4, shutdowns: 1},
		},
		{
			name: "a GPU lost across the reload",
			reload: func(t *testing.T, m *fake.Machine, lib nvml.Lib, _ *testingclock.FakeClock) {
				m.LoseGPU(1)
				m.ReloadDriver()
			},
			check: func(t *testing.T, m *fake.Machine, lib nvml.Lib, inv *nvml.Inventory) {
				require.ErrorIs(t, lib.CheckGPU(m.UUID(1)), nvml.ErrGPULost)
				require.NoError(t, lib.CheckGPU(m.UUID(0)))
				errs := lib.RecheckGPUs(refs(inv), []int{0, 1})
				require.NoError(t, errs[0])
				require.ErrorIs(t, errs[1], nvml.ErrGPULost)
				m.RestoreGPU(1)
				require.NoError(t, lib.CheckGPU(m.UUID(1)))
				requireSameGPUs(t, inv, lib)
			},
			want: sessions{refs: 1, inits: 2, shutdowns: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, lib, clk := reloadLib(t)
			if tc.before != nil {
				tc.before(t, m)
			}
			inv, err := lib.Discover()
			require.NoError(t, err)
			tc.reload(t, m, lib, clk)
			tc.check(t, m, lib, inv)
			require.Equal(t, tc.want, sessionsOf(m))
		})
	}
}

// Event sets belong to the session they were made on: after a driver reload
// each GPU is watched on a new one, with one re-init for all the watchers.
func TestWatchEventsAfterDriverReload(t *testing.T) {
	cases := []struct {
		name   string
		reload func(t *testing.T, m *fake.Machine, clk *testingclock.FakeClock)
		// failedInits is how many Inits failed while the driver was away.
		failedInits int
	}{
		{name: "reload", reload: func(_ *testing.T, m *fake.Machine, _ *testingclock.FakeClock) { m.ReloadDriver() }},
		{
			name: "driver missing for a while",
			reload: func(t *testing.T, m *fake.Machine, clk *testingclock.FakeClock) {
				m.UnloadDriver()
				require.Eventually(t, func() bool { _, _, failed, _ := m.NVMLSessions(); return failed >= 1 },
					5*time.Second, time.Millisecond, "a watcher tries to open a new session")
				time.Sleep(20 * eventTimeout) // watchers back off; the clock does not move
				m.LoadDriver()
				clk.Step(time.Second)
			},
			failedInits: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, lib, clk := reloadLib(t)
			uuids := make([]string, m.NumGPUs())
			for i := range uuids {
				uuids[i] = m.UUID(i)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ch, err := lib.WatchEvents(ctx, uuids)
			require.NoError(t, err)
			t.Cleanup(func() {
				cancel()
				requireClosed(t, ch)
			})
			m.InjectXID(2, 48)
			require.Equal(t, 2, next(t, ch).GPUIndex)

			tc.reload(t, m, clk)
			// Every GPU is registered again on the new session: an
			// event of each reaches the channel.
			for gpu := range m.NumGPUs() {
				awaitWatched(t, m, ch, gpu)
			}
			s := sessionsOf(m)
			require.Equal(t, sessions{refs: 1, inits: 2, failedInits: tc.failedInits, shutdowns: 1}, s,
				"one re-init for every watcher")
		})
	}
}

// awaitWatched injects XIDs on gpu until one reaches ch (events of other
// GPUs are skipped): gpu is watched.
func awaitWatched(t *testing.T, m *fake.Machine, ch <-chan nvml.Event, gpu int) {
	t.Helper()
	got := false
	require.Eventually(t, func() bool {
		m.InjectXID(gpu, 48)
		timeout := time.After(5 * eventTimeout)
		for !got {
			select {
			case ev := <-ch:
				got = ev.GPUIndex == gpu
			case <-timeout:
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "GPU %d watched", gpu)
}
