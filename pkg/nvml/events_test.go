package nvml_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// eventTimeout keeps EventSet.Wait short so a cancelled watch ends quickly.
const eventTimeout = 10 * time.Millisecond

func watch(t *testing.T, name string, opts ...fake.Option) (*fake.Machine, nvml.Lib, []string, <-chan nvml.Event, context.CancelFunc) {
	t.Helper()
	m, err := fake.New(name, opts...)
	require.NoError(t, err)
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
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
	return m, lib, uuids, ch, cancel
}

func next(t *testing.T, ch <-chan nvml.Event) nvml.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "channel closed")
		return ev
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no event within 5s")
		return nvml.Event{}
	}
}

// requireClosed drains ch and requires it to close: the watch loop exited.
func requireClosed(t *testing.T, ch <-chan nvml.Event) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			require.FailNow(t, "event channel not closed 5s after cancel")
		}
	}
}

func TestWatchEventsInjected(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			m, _, uuids, ch, _ := watch(t, name)
			last := len(uuids) - 1
			m.InjectXID(1, 48)
			m.InjectECC(last, true)
			m.InjectECC(0, false)
			m.InjectXID(0, 13)
			want := []nvml.Event{
				{GPUIndex: 1, UUID: uuids[1], Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1},
				{GPUIndex: last, UUID: uuids[last], Kind: nvml.EventECCDoubleBit, GIID: -1, CIID: -1},
				{GPUIndex: 0, UUID: uuids[0], Kind: nvml.EventECCSingleBit, GIID: -1, CIID: -1},
				{GPUIndex: 0, UUID: uuids[0], Kind: nvml.EventXID, XID: 13, GIID: -1, CIID: -1},
			}
			// Each GPU has its own watcher: the order holds per GPU only.
			var got []nvml.Event
			for range want {
				got = append(got, next(t, ch))
			}
			require.ElementsMatch(t, want, got)
			require.Equal(t, want[2:], slices.DeleteFunc(got, func(e nvml.Event) bool { return e.GPUIndex != 0 }))
		})
	}
}

func TestWatchEventsMIG(t *testing.T) {
	m, _, uuids, ch, _ := watch(t, fake.DGXA100, fake.WithMIG(map[int][]string{2: {"3g.20gb", "3g.20gb"}}))
	m.InjectMIGXID(2, 1, 0, 31)
	require.Equal(t, nvml.Event{GPUIndex: 2, UUID: uuids[2], Kind: nvml.EventXID, XID: 31, GIID: 1, CIID: 0}, next(t, ch))
}

// watchGPUs starts a watch of machine m's GPUs gpus with event timeout
// timeout; cancel ends it.
func watchGPUs(t *testing.T, m *fake.Machine, timeout time.Duration, gpus ...int) (<-chan nvml.Event, context.CancelFunc) {
	t.Helper()
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(timeout))
	require.NoError(t, lib.Init())
	uuids := make([]string, len(gpus))
	for i, g := range gpus {
		uuids[i] = m.UUID(g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := lib.WatchEvents(ctx, uuids)
	require.NoError(t, err)
	return ch, cancel
}

// Only the watched GPUs' events arrive.
func TestWatchEventsSubset(t *testing.T) {
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := lib.WatchEvents(ctx, []string{m.UUID(3)})
	require.NoError(t, err)
	m.InjectXID(2, 48)
	m.InjectXID(3, 94)
	require.Equal(t, nvml.Event{GPUIndex: 3, UUID: m.UUID(3), Kind: nvml.EventXID, XID: 94, GIID: -1, CIID: -1}, next(t, ch))
	cancel()
	requireClosed(t, ch)
}

func TestLoseAndRestoreGPU(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			m, lib, uuids, ch, _ := watch(t, name)
			m.LoseGPU(1)
			// XID 79: fallen off the bus.
			require.Equal(t, nvml.Event{GPUIndex: 1, UUID: uuids[1], Kind: nvml.EventGPULost, XID: 79, GIID: -1, CIID: -1}, next(t, ch))
			err := lib.CheckGPU(uuids[1])
			require.ErrorIs(t, err, nvml.ErrGPULost)
			require.Contains(t, err.Error(), uuids[1])
			for i, id := range uuids {
				if i != 1 {
					require.NoError(t, lib.CheckGPU(id), "GPU %d", i)
				}
			}
			// Discovery degrades the lost GPU only.
			inv, err := lib.Discover()
			require.NoError(t, err)
			require.ErrorIs(t, inv.GPUs[1].Degraded, nvml.ErrGPULost)
			earlier := refs(inv)
			require.ErrorIs(t, lib.RecheckGPUs(earlier, []int{1})[0], nvml.ErrGPULost)
			m.RestoreGPU(1)
			require.NoError(t, lib.CheckGPU(uuids[1]))
			require.NoError(t, lib.RecheckGPUs(earlier, []int{1})[0])
			inv, err = lib.Discover()
			require.NoError(t, err)
			for _, g := range inv.GPUs {
				require.NoError(t, g.Degraded)
			}
		})
	}
}

func TestCheckGPUUnknown(t *testing.T) {
	m, err := fake.New(fake.DGX1V100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	err = lib.CheckGPU("GPU-00000000-0000-0000-0000-000000000000")
	require.Error(t, err)
	require.NotErrorIs(t, err, nvml.ErrGPULost)
}

func TestWatchEventsCancelClosesChannel(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			m, _, _, ch, cancel := watch(t, name)
			cancel()
			requireClosed(t, ch)
			// Events after the watch ended go nowhere and block nothing.
			m.InjectXID(0, 48)
		})
	}
}

// A consumer that stops reading does not wedge the loop: cancel still closes
// the channel even with the buffer full.
func TestWatchEventsSlowConsumer(t *testing.T) {
	m, _, _, ch, cancel := watch(t, fake.PCIe4GPU2Socket)
	for range 200 {
		m.InjectXID(0, 48)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	requireClosed(t, ch)
}

// A UUID NVML does not know is not watched, and does not stop the others.
func TestWatchEventsUnknownGPU(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := lib.WatchEvents(ctx, []string{"GPU-nope", m.UUID(2)})
	require.NoError(t, err)
	m.InjectXID(2, 48)
	require.Equal(t, nvml.Event{GPUIndex: 2, UUID: m.UUID(2), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1}, next(t, ch))
	cancel()
	requireClosed(t, ch)
}
