package deviceplugin_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
)

// TestHealthFlapping: GPU 0 goes unhealthy and recovers again and again,
// with skipped XIDs, an event for a GPU the node does not have and repeats
// on the unhealthy GPU between the changes. Each change is exactly one
// ListAndWatch update with all 4 replicas in the new state (nothing else
// sends one), and gpupack.io/topology's generation grows with each change
// and only then.
func TestHealthFlapping(t *testing.T) {
	k, p, s, _ := sharedA100(t, "nvidia.com/gpu.shared")
	replicas := replicaIDs(uuidOf(p, 0), 4)
	gen := p.mgr.Node().Generation
	ctx := context.Background()
	noise := func() {
		for _, xid := range []uint64{13, 31, 43, 45, 68, 109} { // skipped: application errors
			p.machine.InjectXID(0, xid)
		}
		p.machine.InjectECC(0, false) // single-bit: counted only
		p.mgr.Health().Handle(ctx, nvml.Event{GPUIndex: 9, UUID: "GPU-not-on-this-node", Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
		p.mgr.Health().Handle(ctx, nvml.Event{GPUIndex: -1, UUID: "GPU-not-on-this-node", Kind: nvml.EventGPULost, GIID: -1, CIID: -1})
	}
	for cycle := range 5 {
		noise()
		p.machine.InjectXID(0, 48)
		p.machine.InjectXID(0, 48) // a repeat on the unhealthy GPU changes nothing
		out, err := s.Recv()
		require.NoError(t, err)
		require.Equal(t, replicas, unhealthy(out), "cycle %d: all 4 replicas out in one update", cycle)
		require.False(t, p.mgr.Node().GPUs[0].Healthy)
		require.Greater(t, p.mgr.Node().Generation, gen, "cycle %d", cycle)
		gen = p.mgr.Node().Generation
		noise()
		// 3 passing checks, 10 s apart on the fake clock.
		require.Eventually(t, func() bool {
			p.clock.Step(10 * time.Second)
			return p.mgr.Health().Healthy(0)
		}, 10*time.Second, 5*time.Millisecond)
		back, err := s.Recv()
		require.NoError(t, err)
		require.Empty(t, unhealthy(back), "cycle %d: all 4 replicas back in one update", cycle)
		require.True(t, p.mgr.Node().GPUs[0].Healthy)
		require.Equal(t, gen+1, p.mgr.Node().Generation, "cycle %d: one change, one generation", cycle)
		gen = p.mgr.Node().Generation
	}
	// The noise alone changes nothing: the generation moves by the
	// marker's change only, and the next update is the marker's.
	noise()
	p.machine.InjectXID(0, 48)
	next, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, replicas, unhealthy(next))
	require.Equal(t, gen+1, p.mgr.Node().Generation)
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 0, "nvidia.com/gpu": 7})
}
