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
	create := m.Server().EventSetCreateFunc
	m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		set, ret := create()
		inner := set.(*mock.EventSet)
		wait := inner.WaitFunc
		inner.WaitFunc = func(ms uint32) (gonvml.EventData, gonvml.Return) {
			if lost.Load() {
				time.Sleep(time.Millisecond)
				return gonvml.EventData{}, gonvml.ERROR_GPU_IS_LOST
			}
			return wait(ms)
		}
		return set, ret
	}
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
