package deviceplugin_test

// Review: fault SEQUENCES across rebuilds, kubelet restarts, PodResources
// outages and Allocate (the sequences health_sequences_review_test.go does
// not cover).

import (
	"context"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// Sequence: with health.recovery.enabled false (a faulted GPU stays out
// until the plugin restarts), GPU 3 faults; the node is then discovered
// again (a reload, a MIG change, another GPU read again) while GPU 3 does
// not answer: a transient NVML error, or the GPU still off the bus. GPU 3
// is served degraded, under GPU-unreadable-3, and the mark carried under
// its real UUID names nothing of that inventory. Once GPU 3 answers, the
// degraded GPU's probe (which runs with recovery off too) discovers the
// node again. Expected: the rebuilt Manager still has GPU 3's fault; it
// had no recovery check (and none is allowed). Before, the mark was
// dropped with the degraded rebuild and GPU 3 came back healthy.
func TestReviewFaultMarkSurvivesDegradedRediscovery(t *testing.T) {
	const config = "version: v1\nhealth: {recovery: {enabled: false, checks: 1, interval: 10s}}"
	for _, tc := range []struct {
		name string
		// fault takes GPU 3 out on m's tracker; unread makes discovery
		// unable to read it; answer brings it back.
		fault, unread, answer func(t *testing.T, m *fake.Machine, h *deviceplugin.Health)
	}{
		{
			name: "XID, then a transient error at rediscovery",
			fault: func(t *testing.T, m *fake.Machine, h *deviceplugin.Health) {
				h.Handle(context.Background(), nvml.Event{GPUIndex: 3, UUID: m.UUID(3), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
			},
			unread: func(t *testing.T, m *fake.Machine, _ *deviceplugin.Health) {
				require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_UNKNOWN))
			},
			answer: func(_ *testing.T, m *fake.Machine, _ *deviceplugin.Health) { m.Heal(3) },
		},
		{
			name: "XID, then a timeout at rediscovery",
			fault: func(t *testing.T, m *fake.Machine, h *deviceplugin.Health) {
				h.Handle(context.Background(), nvml.Event{GPUIndex: 3, UUID: m.UUID(3), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
			},
			unread: func(t *testing.T, m *fake.Machine, _ *deviceplugin.Health) {
				require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_TIMEOUT))
			},
			answer: func(_ *testing.T, m *fake.Machine, _ *deviceplugin.Health) { m.Heal(3) },
		},
		{
			name: "GPU lost, still lost at rediscovery",
			fault: func(_ *testing.T, m *fake.Machine, h *deviceplugin.Health) {
				m.LoseGPU(3)
				h.Handle(context.Background(), nvml.Event{GPUIndex: 3, UUID: m.UUID(3), Kind: nvml.EventGPULost, GIID: -1, CIID: -1})
			},
			unread: func(*testing.T, *fake.Machine, *deviceplugin.Health) {},
			answer: func(_ *testing.T, m *fake.Machine, _ *deviceplugin.Health) { m.RestoreGPU(3) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			lib := m.Lib(t)
			cfg, err := configv1.Parse([]byte(config))
			require.NoError(t, err)
			build := func(unhealthy []string) *deviceplugin.Manager {
				mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, Unhealthy: unhealthy})
				require.NoError(t, err)
				return mgr
			}
			first := build(nil)
			tc.fault(t, m, first.Health())
			require.Equal(t, []string{m.UUID(3)}, first.Health().UnhealthyUUIDs())

			tc.unread(t, m, first.Health())
			degraded := build(first.Health().UnhealthyUUIDs())
			require.True(t, nvml.IsPlaceholderUUID(degraded.Inventory().GPUs[3].UUID), "GPU 3 is read at rediscovery")
			require.False(t, degraded.Health().Healthy(3))

			tc.answer(t, m, degraded.Health())
			degraded.Health().Probe(context.Background())
			select {
			case <-degraded.Health().Rediscover():
			default:
				t.Fatal("GPU 3 answers again, but the node is not discovered again")
			}

			again := build(degraded.Health().UnhealthyUUIDs())
			require.Equal(t, m.UUID(3), again.Inventory().GPUs[3].UUID)
			require.False(t, again.Health().Healthy(3),
				"GPU 3 faulted with recovery disabled and came back healthy through a rediscovery that could not read it; marks %v",
				again.Health().UnhealthyUUIDs())
			for _, g := range []int{0, 1, 2, 4, 5, 6, 7} {
				require.True(t, again.Health().Healthy(g), "GPU %d", g)
			}
		})
	}
}

// Sequence: the plugin is rebuilt (a per-node config reload, a
// rediscovery: cmd/device-plugin/app stops one Manager and runs the next
// with the same Handoff), and the kubelet restarts in between, while no
// Manager runs. Two pods were bound meanwhile, "late" (created second,
// delivered first) and "early". The restarted kubelet admits them as one
// batch by creation time: early first. Expected: each gets its own set,
// as when the kubelet restarts under a running Manager
// (TestHandoffKubeletRestartInProcess); the next Manager must tell the
// handoff that the kubelet it finds is not the one the previous Manager
// had. Without a restart the kubelet admits them as they arrive, late
// first, and each gets its own set too (no batch is made up).
func TestReviewKubeletRestartDuringRebuild(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart bool
	}{
		{name: "kubelet restarted between the Managers", restart: true},
		{name: "kubelet kept running", restart: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newReloadNode(t)
			ctx := klog.NewContext(context.Background(), ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(1))))
			pods := &fixture.PodLister{}
			h := deviceplugin.NewHandoff(pods, deviceplugin.WithAllocations(deviceplugin.NewPodResources(servePodResources(t, n.k))))
			withHandoff := func(o *deviceplugin.Options) { o.Handoff = h }
			first, stop := n.run(whole, withHandoff)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			uuid := func(i int) string { return first.Inventory().GPUs[i].UUID }
			late := bound(t, "late", 20, "required", uuid(0), uuid(3))
			early := bound(t, "early", 10, "", uuid(1), uuid(6))
			stop() // the rebuild begins
			arrive := func() error {
				for _, pod := range []*corev1.Pod{late, early} { // the informer's (bind) order
					pods.Add(pod)
					h.Observe(pod)
				}
				return nil
			}
			if tc.restart {
				require.NoError(t, n.k.Restart(arrive))
			} else {
				require.NoError(t, arrive())
			}
			n.run(whole, withHandoff)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

			var got map[string][]string
			if tc.restart {
				got = admitBatch(t, ctx, n.k.Kubelet, late, early)
			} else {
				got = map[string][]string{}
				for _, pod := range []*corev1.Pod{late, early} {
					require.NoError(t, n.k.Admit(ctx, pod))
					got[pod.Name] = n.k.Devices(pod)["nvidia.com/gpu"]
				}
			}
			require.Equal(t, map[string][]string{
				"early": sortedIDs([]string{uuid(1), uuid(6)}),
				"late":  sortedIDs([]string{uuid(0), uuid(3)}),
			}, got)
		})
	}
}
