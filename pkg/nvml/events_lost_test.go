package nvml_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// A GPU lost (Wait answers GPU_IS_LOST, the real driver's way), back
// (Wait answers again, the device plugin's probe recovers it), then lost a
// second time must be reported a second time: otherwise the plugin keeps
// advertising a dead GPU as healthy (the probe only checks unhealthy GPUs).
func TestWatchEventsGPULostTwice(t *testing.T) {
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	var lost atomic.Bool
	wrapWait(m, func(_ gonvml.EventSet, wait waitFunc) waitFunc {
		return func(ms uint32) (gonvml.EventData, gonvml.Return) {
			if lost.Load() {
				time.Sleep(time.Millisecond)
				return gonvml.EventData{}, gonvml.ERROR_GPU_IS_LOST
			}
			return wait(ms)
		}
	})
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := lib.WatchEvents(ctx, []string{m.UUID(0)})
	require.NoError(t, err)
	loseGPU := func() {
		// CheckGPU's GetMemoryInfo answers GPU_IS_LOST; no XID 79 is queued.
		require.NoError(t, m.Fail(0, fake.CallGetMemoryInfo, gonvml.ERROR_GPU_IS_LOST))
		lost.Store(true)
	}
	restore := func() {
		lost.Store(false)
		m.Heal(0)
	}
	want := nvml.Event{GPUIndex: 0, UUID: m.UUID(0), Kind: nvml.EventGPULost, GIID: -1, CIID: -1}

	loseGPU()
	require.Equal(t, want, next(t, ch), "first loss reported")
	restore()
	require.NoError(t, lib.CheckGPU(m.UUID(0)), "the GPU answers again (the plugin's probe recovers it)")
	time.Sleep(20 * eventTimeout) // several Waits answer normally (timeouts)

	loseGPU()
	require.Equal(t, want, next(t, ch), "second loss reported too")
}

// TestWatchEventsLostAgainWhileRegistering: a GPU lost when it is
// registered for events is reported lost once (index -1, by UUID); when it
// answers again (its registration fails otherwise, or succeeds), a later
// loss seen by a registration must be reported again: the plugin's probe
// has brought the GPU back meanwhile, and only this event takes it out.
// Before, the registration path reported a GPU's loss once for the life of
// the watch.
func TestWatchEventsLostAgainWhileRegistering(t *testing.T) {
	tests := []struct {
		name string
		// back brings GPU 1 back so that its registration answers (and
		// returns once it did); lost again is then m.LoseGPU(1), unless
		// lostByHandle.
		back func(t *testing.T, m *fake.Machine, registered *atomic.Int32, failWait *atomic.Bool, ch <-chan nvml.Event)
		// lostByHandle: back has lost the GPU again itself.
		lostByHandle bool
	}{
		{name: "registration fails with another error in between", back: func(t *testing.T, m *fake.Machine, registered *atomic.Int32, _ *atomic.Bool, _ <-chan nvml.Event) {
			require.NoError(t, m.Fail(1, fake.CallRegisterEvents, gonvml.ERROR_UNKNOWN))
			m.RestoreGPU(1)
			n := registered.Load()
			require.Eventually(t, func() bool { return registered.Load() > n+1 }, 20*time.Second, time.Millisecond)
		}},
		{name: "registered in between, then its set fails", back: func(t *testing.T, m *fake.Machine, _ *atomic.Int32, failWait *atomic.Bool, ch <-chan nvml.Event) {
			m.RestoreGPU(1)
			got := make(chan nvml.Event, 1)
			go func() { got <- next(t, ch) }()
			for done := false; !done; {
				m.InjectXID(1, 94)
				select {
				case ev := <-got:
					require.Equal(t, nvml.EventXID, ev.Kind)
					done = true
				case <-time.After(5 * time.Millisecond):
				}
			}
			// Its set fails from now on, and the GPU is lost without an
			// XID 79 (its handle answers GPU_IS_LOST): only the
			// registration that follows the failing set can see it.
			failWait.Store(true)
			require.NoError(t, m.Fail(1, fake.CallDeviceGetHandleByUUID, gonvml.ERROR_GPU_IS_LOST))
		}, lostByHandle: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			var registered atomic.Int32
			register := m.Device(1).RegisterEventsFunc
			m.Device(1).RegisterEventsFunc = func(types uint64, set gonvml.EventSet) gonvml.Return {
				registered.Add(1)
				return register(types, set)
			}
			var failWait atomic.Bool
			wrapWait(m, func(set gonvml.EventSet, wait waitFunc) waitFunc {
				return func(ms uint32) (gonvml.EventData, gonvml.Return) {
					if failWait.Load() && m.Registered(set, 1) {
						return gonvml.EventData{}, gonvml.ERROR_UNKNOWN
					}
					return wait(ms)
				}
			})
			m.LoseGPU(1)
			ch, cancel := watchGPUs(t, m, time.Millisecond, 0, 1)
			defer cancel()
			lost := nvml.Event{GPUIndex: -1, UUID: m.UUID(1), Kind: nvml.EventGPULost, GIID: -1, CIID: -1}
			require.Equal(t, lost, next(t, ch), "first loss")

			tc.back(t, m, &registered, &failWait, ch)
			if !tc.lostByHandle {
				m.Heal(1)
				m.LoseGPU(1)
			}
			require.Equal(t, lost, next(t, ch), "second loss")
		})
	}
}

// waitFunc is an NVML event set's Wait.
type waitFunc = func(ms uint32) (gonvml.EventData, gonvml.Return)

// wrapWait makes every event set the fake machine creates from now on
// answer Wait through wrap(set, its own Wait).
func wrapWait(m *fake.Machine, wrap func(set gonvml.EventSet, wait waitFunc) waitFunc) {
	create := m.Server().EventSetCreateFunc
	m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		set, ret := create()
		inner := set.(*mock.EventSet)
		inner.WaitFunc = wrap(set, inner.WaitFunc)
		return set, ret
	}
}
