package deviceplugin_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// checkLib answers CheckGPU from a table; nothing else is used.
type checkLib struct {
	nvml.Lib
	mu   sync.Mutex
	fail map[string]error
}

func (l *checkLib) CheckGPU(uuid string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fail[uuid]
}

func TestHealthRecoveryNeedsConsecutivePasses(t *testing.T) {
	inv := &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}, {Index: 1, UUID: "GPU-1"}}}
	lib := &checkLib{fail: map[string]error{}}
	h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Critical: func(x uint64) bool { return x != 13 }, Recover: true, Checks: 3})
	ctx := context.Background()

	changed := h.Changed()
	h.Handle(ctx, nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventXID, XID: 13})
	require.True(t, h.Healthy(0), "skipped XID")
	h.Handle(ctx, nvml.Event{UUID: "GPU-9", Kind: nvml.EventXID, XID: 48})
	h.Handle(ctx, nvml.Event{GPUIndex: 7, Kind: nvml.EventGPULost})
	require.True(t, h.Healthy(0) && h.Healthy(1), "events for unknown GPUs take nothing out")
	select {
	case <-changed:
		t.Fatal("no change expected yet")
	default:
	}

	h.Handle(ctx, nvml.Event{GPUIndex: 1, UUID: "GPU-1", Kind: nvml.EventECCDoubleBit})
	<-changed // closed: one change
	require.False(t, h.Healthy(1))
	require.True(t, h.Healthy(0))

	// pass, pass, fail (resets), pass, pass, pass -> healthy on the 3rd in a row.
	steps := []struct {
		fail bool
		want bool
	}{{false, false}, {false, false}, {true, false}, {false, false}, {false, false}, {false, true}}
	for i, s := range steps {
		lib.mu.Lock()
		lib.fail["GPU-1"] = nil
		if s.fail {
			lib.fail["GPU-1"] = fmt.Errorf("probe: %w", nvml.ErrGPULost)
		}
		lib.mu.Unlock()
		h.Probe(ctx)
		require.Equal(t, s.want, h.Healthy(1), "after probe %d", i+1)
	}
}

func TestHealthNoRecoveryWhenDisabled(t *testing.T) {
	inv := &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}}}
	h := deviceplugin.NewHealth(&checkLib{fail: map[string]error{}}, inv, deviceplugin.HealthOptions{Recover: false, Checks: 1})
	ctx := context.Background()
	h.Handle(ctx, nvml.Event{GPUIndex: 0, UUID: "GPU-0", Kind: nvml.EventXID, XID: 48})
	require.False(t, h.Healthy(0))
	// Run with recovery off never probes; Probe itself is only called by Run's ticker.
	runCtx, cancel := context.WithCancel(ctx)
	events := make(chan nvml.Event)
	close(events)
	done := make(chan struct{})
	go func() { h.Run(runCtx, events); close(done) }()
	cancel()
	<-done
	require.False(t, h.Healthy(0))
}
