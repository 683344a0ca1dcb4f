package deviceplugin_test

import (
	"context"
	"slices"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
)

// TestOneBadGPUAtStart is the field report: dgx-1-v100 whose GPU 3 answers
// ERROR_GPU_IS_LOST to DeviceGetHandleByIndex before the plugin starts. The
// plugin used to exit ("discovering GPUs: GPU 3 ..."). Now it serves the other
// 7: capacity 8, allocatable 7, GPU 3 unhealthy in the published topology;
// when GPU 3 answers again the probe passes and the plugin asks to be
// rebuilt (Run returns ErrRediscover), and the rebuilt plugin serves all 8.
func TestOneBadGPUAtStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(m *fake.Machine)
		heal   func(m *fake.Machine)
	}{
		{"handle lost", func(m *fake.Machine) {
			require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_GPU_IS_LOST))
		}, func(m *fake.Machine) { m.Heal(3) }},
		// Same kind: the GPU has fallen off the bus (every call answers
		// ERROR_GPU_IS_LOST), and another per-GPU error after the handle.
		{"fallen off the bus", func(m *fake.Machine) { m.LoseGPU(3) }, func(m *fake.Machine) { m.RestoreGPU(3) }},
		{"memory query fails", func(m *fake.Machine) {
			require.NoError(t, m.Fail(3, fake.CallGetMemoryInfo, gonvml.ERROR_UNKNOWN))
		}, func(m *fake.Machine) { m.Heal(3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := socketDir(t)
			k := startKubelet(t, dir)
			const config = "version: v1\nhealth: {recovery: {checks: 2, interval: 10s}}"
			p := startPlugin(t, dir, pluginOpts{machine: fake.DGX1V100, prepare: tc.break_, kubelet: k, config: config})
			// Capacity 8, allocatable 7.
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
			_, total := k.counts()
			require.Equal(t, int64(8), total["nvidia.com/gpu"])
			require.False(t, p.mgr.Health().Healthy(3))
			for i := range 8 {
				require.Equal(t, i != 3, p.mgr.Health().Healthy(i), "GPU %d", i)
			}
			n := p.mgr.Node()
			require.Len(t, n.GPUs, 8)
			require.False(t, n.GPUs[3].Healthy)
			_, err := protocol.EncodeTopology(n)
			require.NoError(t, err, "a node with a degraded GPU is still published")
			// The 7 others are served: a 7-GPU pod fits, without GPU 3.
			ids, _, err := k.allocate("seven", "nvidia.com/gpu", 7, nil)
			require.NoError(t, err)
			require.Len(t, ids, 7)
			require.NotContains(t, ids, uuidOf(p, 3))

			// Still broken: probes fail, nothing changes.
			p.mgr.Health().Probe(context.Background())
			p.mgr.Health().Probe(context.Background())
			select {
			case <-p.mgr.Health().Rediscover():
				t.Fatal("rediscovery asked while GPU 3 still fails")
			default:
			}
			// GPU 3 answers again: after 2 passing probes the plugin asks
			// to discover the node again.
			tc.heal(p.machine)
			p.mgr.Health().Probe(context.Background())
			p.mgr.Health().Probe(context.Background())
			select {
			case err := <-p.done:
				require.ErrorIs(t, err, deviceplugin.ErrRediscover)
				p.done <- nil // for the cleanup
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return ErrRediscover")
			}
			// A new Manager (what the command does on ErrRediscover) serves 8.
			lib := nvml.New(p.machine.Interface())
			require.NoError(t, lib.Init())
			cfg, err := configv1.Parse([]byte(config))
			require.NoError(t, err)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir, Clock: p.clock})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- mgr.Run(ctx) }()
			t.Cleanup(func() {
				k.Stop()
				cancel()
				require.NoError(t, <-done)
			})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			require.Equal(t, p.machine.UUID(3), mgr.Inventory().GPUs[3].UUID)
		})
	}
}

// TestEventRegistrationFailsForOneGPU: GPU 2 cannot be registered for events
// at start; XIDs on the other GPUs still take them out, and GPU 2 is watched
// once its registration succeeds on a retry.
func TestEventRegistrationFailsForOneGPU(t *testing.T) {
	k, p := setup(t, pluginOpts{machine: fake.DGXH100, prepare: func(m *fake.Machine) {
		require.NoError(t, m.Fail(2, fake.CallRegisterEvents, gonvml.ERROR_UNKNOWN))
	}})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	p.machine.InjectXID(5, 48)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
	require.False(t, p.mgr.Health().Healthy(5))
	p.machine.Heal(2)
	require.Eventually(t, func() bool {
		p.machine.InjectXID(2, 48) // lost until GPU 2 is registered again
		return !p.mgr.Health().Healthy(2)
	}, 20*time.Second, 50*time.Millisecond)
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 6})
}

// TestMIGEventPartialKey is the field report: dgx-a100 with GPU 0 split in
// three 1g.5gb, migStrategy mixed, 2 replicas each (6 devices). XID 94 on
// GPU 0 naming the first GPU instance with compute instance 0xFFFFFFFF
// ("none") took all of GPU 0 out (0 of 6 healthy); only that GPU
// instance's devices go: 4 of 6 stay healthy. Whole GPU only when neither
// id is set.
func TestMIGEventPartialKey(t *testing.T) {
	const cfg = `version: v1
flags: {migStrategy: mixed}
sharing: {timeSlicing: {resources: [{name: nvidia.com/mig-1g.5gb, replicas: 2}]}}`
	k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: cfg,
		fake: []fake.Option{fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb", "1g.5gb"}})}})
	const res = "nvidia.com/mig-1g.5gb"
	k.waitCounts(map[string]int64{res: 6, "nvidia.com/gpu": 7})
	migs := p.mgr.Inventory().MIG
	require.Len(t, migs, 3)
	first := migs[0]
	s := watch(t, p, res)
	_, err := s.Recv()
	require.NoError(t, err)

	const none = 0xFFFFFFFF
	p.machine.InjectMIGXID(0, first.GIID, none, 94)
	next, err := s.Recv()
	require.NoError(t, err)
	// The two replicas of the first instance: 6 - 2 = 4 healthy.
	require.Equal(t, replicaIDs(first.UUID, 2), unhealthy(next))
	k.waitCounts(map[string]int64{res: 4, "nvidia.com/gpu": 7})
	require.True(t, p.mgr.Health().Healthy(0), "the GPU itself stays healthy")

	// An instance the node does not serve (GI 13) changes nothing; the
	// marker XID on GPU 1 is the next change.
	p.machine.InjectMIGXID(0, 13, none, 94)
	p.machine.InjectXID(1, 48)
	k.waitCounts(map[string]int64{res: 4, "nvidia.com/gpu": 6})

	// Neither id: the whole GPU 0, all 6.
	p.machine.InjectMIGXID(0, none, none, 94)
	next, err = s.Recv()
	require.NoError(t, err)
	var all []string
	for _, m := range migs {
		all = append(all, replicaIDs(m.UUID, 2)...)
	}
	slices.Sort(all)
	require.Equal(t, all, unhealthy(next))
	k.waitCounts(map[string]int64{res: 0, "nvidia.com/gpu": 6})
}
