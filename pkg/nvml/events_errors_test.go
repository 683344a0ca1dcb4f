package nvml_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// Wait answering GPU_IS_LOST (the real driver does when a GPU of the set
// falls off) makes WatchEvents check each GPU and report only the lost one.
func TestWatchEventsWaitGPULost(t *testing.T) {
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	create := m.Server().EventSetCreateFunc
	m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		set, ret := create()
		inner := set.(*mock.EventSet)
		wait := inner.WaitFunc
		first := true
		inner.WaitFunc = func(ms uint32) (gonvml.EventData, gonvml.Return) {
			if first {
				first = false
				m.LoseGPU(6) // queues an XID 79 too, consumed after this answer
				return gonvml.EventData{}, gonvml.ERROR_GPU_IS_LOST
			}
			return wait(ms)
		}
		return set, ret
	}
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	uuids := make([]string, m.NumGPUs())
	for i := range uuids {
		uuids[i] = m.UUID(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := lib.WatchEvents(ctx, uuids)
	require.NoError(t, err)
	// Each GPU has its own event set, watched concurrently: GPU 6 may be
	// lost before its own set is registered, and then the loss is reported
	// by the registration path, which names the GPU by UUID only (index -1;
	// the device plugin resolves events by UUID first) and never sees the
	// queued XID 79. Lost while registered, the set's Wait reports it, then
	// the XID.
	first := next(t, ch)
	require.Contains(t, []int{6, -1}, first.GPUIndex)
	require.Equal(t, nvml.Event{GPUIndex: first.GPUIndex, UUID: uuids[6], Kind: nvml.EventGPULost, GIID: -1, CIID: -1}, first)
	if first.GPUIndex == 6 {
		require.Equal(t, nvml.Event{GPUIndex: 6, UUID: uuids[6], Kind: nvml.EventGPULost, XID: 79, GIID: -1, CIID: -1}, next(t, ch))
	}
	cancel()
	requireClosed(t, ch)
}

// A Wait that keeps failing neither spins nor stops the watch; cancel ends it.
func TestWatchEventsWaitErrors(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(uint32) (gonvml.EventData, gonvml.Return) { return gonvml.EventData{}, gonvml.ERROR_UNKNOWN },
			FreeFunc: func() gonvml.Return { return gonvml.SUCCESS },
		}, gonvml.SUCCESS
	}
	for i := range m.NumGPUs() {
		m.Device(i).RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.SUCCESS }
	}
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := lib.WatchEvents(ctx, []string{m.UUID(0)})
	require.NoError(t, err)
	cancel()
	requireClosed(t, ch)
}

// TestWatchEventsSetupErrors: a GPU whose registration for events fails
// does not blind the other GPUs (their events arrive at once) and is
// registered again, with backoff, once the fault is gone.
func TestWatchEventsSetupErrors(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(m *fake.Machine)
		heal   func(m *fake.Machine)
		// lost: a GPUlost event for GPU 1 comes first.
		lost bool
	}{
		{name: "register fails", break_: func(m *fake.Machine) {
			require.NoError(t, m.Fail(1, fake.CallRegisterEvents, gonvml.ERROR_UNKNOWN))
		}, heal: func(m *fake.Machine) { m.Heal(1) }},
		{name: "handle fails", break_: func(m *fake.Machine) {
			require.NoError(t, m.Fail(1, fake.CallDeviceGetHandleByUUID, gonvml.ERROR_UNKNOWN))
		}, heal: func(m *fake.Machine) { m.Heal(1) }},
		{name: "create fails", break_: func(m *fake.Machine) {
			create := m.Server().EventSetCreateFunc
			fails := 0
			m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
				if fails < 3 { // GPU 0 registers, GPU 1 fails its first tries
					fails++
					if fails > 1 {
						return nil, gonvml.ERROR_UNKNOWN
					}
				}
				return create()
			}
		}, heal: func(*fake.Machine) {}},
		{name: "nil set", break_: func(m *fake.Machine) {
			create := m.Server().EventSetCreateFunc
			calls := 0
			m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
				if calls++; calls == 2 { // GPU 1's first try
					return nil, gonvml.SUCCESS
				}
				return create()
			}
		}, heal: func(*fake.Machine) {}},
		{name: "lost GPU", break_: func(m *fake.Machine) { m.LoseGPU(1) }, heal: func(m *fake.Machine) { m.RestoreGPU(1) }, lost: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			tc.break_(m)
			lib := nvml.New(m.Interface(), nvml.WithEventTimeout(10*time.Millisecond))
			require.NoError(t, lib.Init())
			ctx, cancel := context.WithCancel(context.Background())
			var ch <-chan nvml.Event
			require.NotPanics(t, func() { ch, err = lib.WatchEvents(ctx, []string{m.UUID(0), m.UUID(1)}) })
			require.NoError(t, err)
			if tc.lost {
				require.Equal(t, nvml.Event{GPUIndex: -1, UUID: m.UUID(1), Kind: nvml.EventGPULost, GIID: -1, CIID: -1}, next(t, ch))
			}
			// GPU 0 is watched although GPU 1 failed.
			m.InjectXID(0, 48)
			require.Equal(t, nvml.Event{GPUIndex: 0, UUID: m.UUID(0), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1}, next(t, ch))
			// GPU 1 is registered again once it can be: keep injecting
			// until the retry (backoff 10, 20, 40 ms ...) has registered it.
			tc.heal(m)
			injectUntilSeen(t, m, ch, 1, 20*time.Millisecond, 10*time.Second, "GPU 1 never registered again")
			cancel()
			requireClosed(t, ch)
		})
	}
}

// TestWatchEventsWaitKeepsFailing: an event set whose Wait keeps failing
// (the driver reloaded, the set invalidated) is freed after 3 failed Waits
// and the GPU is registered again on a new set, so its events are seen
// again; before, the GPU stayed unwatched for good, a failed Wait logged
// every second. The failures take no GPU out (no event is sent for them)
// and do not blind the other GPU.
func TestWatchEventsWaitKeepsFailing(t *testing.T) {
	tests := []struct {
		name string
		ret  gonvml.Return
		// broken: how many of GPU 0's event sets, in creation order, fail
		// every Wait.
		broken int
		// session: the answer is the session's (the driver reloaded):
		// the first failed Wait gives the set up and NVML is initialised
		// again, which renews every GPU's set.
		session bool
	}{
		{name: "unknown error", ret: gonvml.ERROR_UNKNOWN, broken: 1},
		{name: "uninitialised (driver reloaded)", ret: gonvml.ERROR_UNINITIALIZED, broken: 1, session: true},
		{name: "invalid set", ret: gonvml.ERROR_INVALID_ARGUMENT, broken: 1},
		{name: "three sets in a row", ret: gonvml.ERROR_UNKNOWN, broken: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			type setStats struct {
				waits atomic.Int32
				freed atomic.Bool
			}
			var (
				mu     sync.Mutex
				broken []*setStats
			)
			create := m.Server().EventSetCreateFunc
			m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
				set, ret := create()
				inner := set.(*mock.EventSet)
				wait, free := inner.WaitFunc, inner.FreeFunc
				st := &setStats{}
				// Whose set this is is known at its first Wait (RegisterEvents
				// comes after EventSetCreate): a set of GPU 0 among the first
				// tc.broken fails.
				var fails atomic.Bool
				var once sync.Once
				inner.WaitFunc = func(ms uint32) (gonvml.EventData, gonvml.Return) {
					once.Do(func() {
						mu.Lock()
						defer mu.Unlock()
						if m.Registered(set, 0) && len(broken) < tc.broken {
							broken = append(broken, st)
							fails.Store(true)
						}
					})
					if fails.Load() {
						st.waits.Add(1)
						return gonvml.EventData{}, tc.ret
					}
					return wait(ms)
				}
				inner.FreeFunc = func() gonvml.Return {
					st.freed.Store(true)
					return free()
				}
				return set, ret
			}
			ch, cancel := watchGPUs(t, m, time.Millisecond, 0, 1)
			defer cancel()

			if !tc.session {
				// GPU 1 is watched all along.
				m.InjectXID(1, 48)
				require.Equal(t, nvml.Event{GPUIndex: 1, UUID: m.UUID(1), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1}, next(t, ch))
			}
			// GPU 0 is watched again once a working set holds it: keep
			// injecting until an XID arrives. The first event for GPU 0 is
			// that XID: the failures sent nothing.
			injectUntilSeen(t, m, ch, 0, 5*time.Millisecond, 20*time.Second, "GPU 0 was never watched again")
			if tc.session {
				// GPU 1 is watched on the new session.
				awaitWatched(t, m, ch, 1)
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, broken, tc.broken)
			waits := int32(3)
			if tc.session {
				waits = 1
			}
			for i, st := range broken {
				require.Equal(t, waits, st.waits.Load(), "set %d: Waits before it was given up", i)
				require.True(t, st.freed.Load(), "set %d freed", i)
			}
		})
	}
}

// injectUntilSeen injects XID 94 on gpu every poll until the watch sends
// it (a GPU registered again after its failures): the next event on ch
// must be that XID, within limit (else the test fails with msg).
func injectUntilSeen(t *testing.T, m *fake.Machine, ch <-chan nvml.Event, gpu int, poll, limit time.Duration, msg string) {
	t.Helper()
	got := make(chan nvml.Event, 1)
	go func() { got <- next(t, ch) }()
	deadline := time.After(limit)
	for {
		m.InjectXID(gpu, 94)
		select {
		case ev := <-got:
			require.Equal(t, nvml.Event{GPUIndex: gpu, UUID: m.UUID(gpu), Kind: nvml.EventXID, XID: 94, GIID: -1, CIID: -1}, ev)
			return
		case <-time.After(poll):
		case <-deadline:
			require.FailNow(t, msg)
		}
	}
}

// TestWatchEventsGPUVanishesAfterRegistration: a watched GPU whose event set
// stops answering and that NVML then no longer finds by its UUID
// (ERROR_NOT_FOUND: it left the driver's list) is lost, not unknown: the
// watch reports it lost once and keeps registering it with backoff, and
// sees its events again once NVML finds it. Before, the watch took the
// answer for a UUID it was never given, stopped for good, and the GPU
// stayed healthy and unwatched.
func TestWatchEventsGPUVanishesAfterRegistration(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	var broke atomic.Bool
	create := m.Server().EventSetCreateFunc
	m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		set, ret := create()
		inner := set.(*mock.EventSet)
		wait := inner.WaitFunc
		var fails atomic.Bool
		var once sync.Once
		inner.WaitFunc = func(ms uint32) (gonvml.EventData, gonvml.Return) {
			once.Do(func() {
				if m.Registered(set, 0) && broke.CompareAndSwap(false, true) {
					// GPU 0's first set fails; from now on NVML does
					// not find GPU 0.
					require.NoError(t, m.Fail(0, "DeviceGetHandleByUUID", gonvml.ERROR_NOT_FOUND))
					fails.Store(true)
				}
			})
			if fails.Load() {
				return gonvml.EventData{}, gonvml.ERROR_UNKNOWN
			}
			return wait(ms)
		}
		return set, ret
	}
	ch, cancel := watchGPUs(t, m, time.Millisecond, 0)
	defer cancel()
	require.Equal(t, nvml.Event{GPUIndex: -1, UUID: m.UUID(0), Kind: nvml.EventGPULost, GIID: -1, CIID: -1}, next(t, ch))
	m.Heal(0)
	injectUntilSeen(t, m, ch, 0, 5*time.Millisecond, 20*time.Second, "GPU 0 was never watched again")
}
