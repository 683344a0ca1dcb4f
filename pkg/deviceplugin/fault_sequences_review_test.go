package deviceplugin_test

// Review: fault SEQUENCES across rebuilds, kubelet restarts, PodResources
// outages and Allocate (the sequences health_sequences_review_test.go does
// not cover).

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

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
		// lost: GPU 3 falls off the bus and is still off at rediscovery;
		// else an XID takes it out and its handle answers ret once.
		lost bool
		ret  gonvml.Return
	}{
		{name: "XID, then a transient error at rediscovery", ret: gonvml.ERROR_UNKNOWN},
		{name: "XID, then a timeout at rediscovery", ret: gonvml.ERROR_TIMEOUT},
		{name: "GPU lost, still lost at rediscovery", lost: true},
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
			ev := nvml.Event{GPUIndex: 3, UUID: m.UUID(3), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1}
			if tc.lost {
				m.LoseGPU(3)
				ev.Kind, ev.XID = nvml.EventGPULost, 0
			}
			first.Health().Handle(context.Background(), ev)
			require.Equal(t, []string{m.UUID(3)}, first.Health().UnhealthyUUIDs())

			if !tc.lost {
				require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, tc.ret))
			}
			degraded := build(first.Health().UnhealthyUUIDs())
			require.True(t, nvml.IsPlaceholderUUID(degraded.Inventory().GPUs[3].UUID), "GPU 3 is read at rediscovery")
			require.False(t, degraded.Health().Healthy(3))

			m.Heal(3)
			m.RestoreGPU(3)
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

// outageAllocations is the kubelet's PodResources API (inner), failing
// while down is set.
type outageAllocations struct {
	inner deviceplugin.Allocations
	down  atomic.Bool
}

func (o *outageAllocations) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	if o.down.Load() {
		return nil, errors.New("connection refused")
	}
	return o.inner.Allocated(ctx)
}

// Sequence: a pod holds a whole GPU; a reload turns on 4 replicas per GPU
// under the same name, so that GPU's 4 replicas are withheld (28 of 32).
// The kubelet's PodResources API then goes down, and a GPU (the held one,
// or another) goes unhealthy and recovers during the outage. Expected: the
// GPU's replicas go out and come back with its health; the held GPU's
// replicas stay withheld throughout (what the last answer said), also
// after its recovery, and Allocate refuses them naming the holder; the
// outage is told once and its end once; when the API answers again and
// the holder is gone, all 32 are served.
func TestReviewPodResourcesDownWhileHealthFlips(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flipHeld bool // the GPU that flips is the held one
	}{
		{name: "another GPU flips"},
		{name: "the held GPU flips", flipHeld: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newReloadNode(t)
			src := &outageAllocations{inner: n.podres}
			n.podres = src
			_, stop := n.run(whole, nil)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			held, _, err := n.k.allocate("running", "nvidia.com/gpu", 1, nil)
			require.NoError(t, err)
			stop()
			events := &withheldEvents{withheld: map[string][]string{}}
			mgr, _ := n.run(shared4Same, func(o *deviceplugin.Options) { o.Events = events })
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 28})
			g := gpuOf(t, mgr.Inventory(), held[0])
			flip, want := (g+1)%8, int64(24)
			if tc.flipHeld {
				flip, want = g, 28
			}
			pl := mgr.Plugins()[0]
			allocate := func(gpu, replica int) error {
				id := replicaIDs(mgr.Inventory().GPUs[gpu].UUID, 4)[replica]
				_, err := pl.Allocate(context.Background(), &pluginapi.AllocateRequest{
					ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}})
				return err
			}

			src.down.Store(true)
			n.machine.InjectXID(flip, 48)
			require.Eventually(t, func() bool { return !mgr.Health().Healthy(flip) }, 10*time.Second, time.Millisecond)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": want})
			err = allocate(flip, 0)
			require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
			require.EventuallyWithT(t, func(c *assertCollect) {
				n.clock.Step(10 * time.Second)
				requireEqualCollect(c, true, mgr.Health().Healthy(flip))
			}, 10*time.Second, 20*time.Millisecond)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 28})
			for r := range 4 {
				err = allocate(g, r)
				require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
				require.Contains(t, err.Error(), "default/running")
			}
			require.NoError(t, allocate((g+2)%8, 0), "a GPU neither held nor faulted is served during the outage")
			require.Eventually(t, func() bool {
				events.mu.Lock()
				defer events.mu.Unlock()
				return slices.Equal(events.outages, []string{"last answer"})
			}, 10*time.Second, time.Millisecond)

			src.down.Store(false)
			n.k.Forget(types.UID("uid-running"))
			require.EventuallyWithT(t, func(c *assertCollect) {
				n.clock.Step(deviceplugin.DefaultResyncPeriod)
				healthy, _ := n.k.counts()
				requireEqualCollect(c, map[string]int64{"nvidia.com/gpu": 32}, healthy)
			}, 10*time.Second, 20*time.Millisecond)
			events.mu.Lock()
			defer events.mu.Unlock()
			require.Equal(t, []string{"last answer", "answers"}, events.outages)
		})
	}
}

// Sequence: the kubelet picked a device from a ListAndWatch update that
// still showed it healthy; its GPU (or MIG instance) goes unhealthy before
// the Allocate comes, then recovers. Expected: the Allocate made while it
// is out is refused with FailedPrecondition naming the device (never
// given), one made after the recovery succeeds; a MIG device beside a
// faulted instance is given all along.
func TestReviewAllocateRacingHealthChange(t *testing.T) {
	onGPU0 := fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb", "1g.5gb"}})
	xid := func(gpu int) func(*deviceplugin.Manager, *fake.Machine) nvml.Event {
		return func(_ *deviceplugin.Manager, m *fake.Machine) nvml.Event {
			return nvml.Event{GPUIndex: gpu, UUID: m.UUID(gpu), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1}
		}
	}
	mig := func(mgr *deviceplugin.Manager, k int) nvml.MIGDevice { return mgr.Inventory().MIG[k] }
	migXID := func(k int) func(*deviceplugin.Manager, *fake.Machine) nvml.Event {
		return func(mgr *deviceplugin.Manager, m *fake.Machine) nvml.Event {
			d := mig(mgr, k)
			return nvml.Event{GPUIndex: d.ParentIndex, UUID: m.UUID(d.ParentIndex), Kind: nvml.EventXID, XID: 94, GIID: d.GIID, CIID: d.CIID}
		}
	}
	for _, tc := range []struct {
		name, config, resource string
		fake                   []fake.Option
		id                     func(*deviceplugin.Manager) string
		fault                  func(*deviceplugin.Manager, *fake.Machine) nvml.Event
		refused                bool // while the fault lasts
	}{
		{name: "whole GPU", config: whole, resource: "nvidia.com/gpu",
			id: func(mgr *deviceplugin.Manager) string { return mgr.Inventory().GPUs[2].UUID }, fault: xid(2), refused: true},
		{name: "replica", config: shared4Same, resource: "nvidia.com/gpu",
			id: func(mgr *deviceplugin.Manager) string { return mgr.Inventory().GPUs[2].UUID + "::3" }, fault: xid(2), refused: true},
		{name: "MIG device, its GPU faulted", config: migOnGPU0, resource: "nvidia.com/mig-1g.5gb", fake: []fake.Option{onGPU0},
			id: func(mgr *deviceplugin.Manager) string { return mig(mgr, 1).UUID }, fault: xid(0), refused: true},
		{name: "MIG device, its instance faulted", config: migOnGPU0, resource: "nvidia.com/mig-1g.5gb", fake: []fake.Option{onGPU0},
			id: func(mgr *deviceplugin.Manager) string { return mig(mgr, 1).UUID }, fault: migXID(1), refused: true},
		{name: "MIG device beside a faulted instance", config: migOnGPU0, resource: "nvidia.com/mig-1g.5gb", fake: []fake.Option{onGPU0},
			id: func(mgr *deviceplugin.Manager) string { return mig(mgr, 2).UUID }, fault: migXID(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100, tc.fake...)
			require.NoError(t, err)
			mgr, err := buildManager(t, m, tc.config)
			require.NoError(t, err)
			var pl *deviceplugin.Plugin
			for _, p := range mgr.Plugins() {
				if p.Name() == tc.resource {
					pl = p
				}
			}
			require.NotNil(t, pl, tc.resource)
			id := tc.id(mgr)
			listed := pl.Devices() // what the kubelet chose from
			require.True(t, slices.ContainsFunc(listed, func(d *pluginapi.Device) bool { return d.ID == id && d.Health == pluginapi.Healthy }))
			allocate := func() error {
				_, err := pl.Allocate(context.Background(), &pluginapi.AllocateRequest{
					ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}})
				return err
			}

			ctx := context.Background()
			mgr.Health().Handle(ctx, tc.fault(mgr, m))
			err = allocate()
			if tc.refused {
				require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
				require.Contains(t, err.Error(), id)
			} else {
				require.NoError(t, err)
			}
			mgr.Health().Probe(ctx) // recovery under way: still out
			if tc.refused {
				require.Equal(t, codes.FailedPrecondition, status.Code(allocate()))
			}
			for range 2 { // the default 3 checks
				mgr.Health().Probe(ctx)
			}
			require.NoError(t, allocate())
		})
	}
}

// Sequence: Allocates of one GPU's replicas race an XID storm and the
// recovery probe on that GPU (-race). Every Allocate either gives the
// replica or refuses it with FailedPrecondition; none fails otherwise, and
// once the GPU has recovered every replica is given.
func TestReviewAllocateDuringHealthFlaps(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	mgr, err := buildManager(t, m, "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}\nhealth: {recovery: {checks: 1}}")
	require.NoError(t, err)
	pl := mgr.Plugins()[0]
	ids := replicaIDs(m.UUID(2), 4)
	ctx, cancel := context.WithCancel(context.Background())
	flapped := make(chan struct{})
	go func() {
		defer close(flapped)
		for ctx.Err() == nil {
			mgr.Health().Handle(ctx, nvml.Event{GPUIndex: 2, UUID: m.UUID(2), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
			mgr.Health().Probe(ctx)
		}
	}()
	var given, refused int
	for i := range 400 {
		_, err := pl.Allocate(context.Background(), &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{ids[i%4]}}}})
		switch status.Code(err) {
		case codes.OK:
			given++
		case codes.FailedPrecondition:
			refused++
		default:
			t.Fatalf("Allocate %d: %v", i, err)
		}
		_ = pl.Devices()
	}
	cancel()
	<-flapped
	mgr.Health().Probe(context.Background())
	require.True(t, mgr.Health().Healthy(2))
	for _, id := range ids {
		_, err := pl.Allocate(context.Background(), &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}})
		require.NoError(t, err, id)
	}
	t.Logf("during the flaps: %d given, %d refused", given, refused)
}

// Sequence: GPU 2 (and, on a MIG GPU, one MIG instance) faulted; during
// its recovery checks one NVML call fails once (ERROR_UNKNOWN,
// GPU_IS_LOST, TIMEOUT), then answers again. Expected: the failed check
// resets the count and the device comes back after the required checks
// in a row after it, not before and not never.
func TestReviewTransientNVMLErrorDuringRecovery(t *testing.T) {
	const checks = 3
	for _, call := range []string{fake.CallDeviceGetHandleByUUID, fake.CallGetMemoryInfo, fake.CallGetTotalEccErrors} {
		for _, ret := range []gonvml.Return{gonvml.ERROR_UNKNOWN, gonvml.ERROR_GPU_IS_LOST, gonvml.ERROR_TIMEOUT} {
			t.Run(call+"/"+ret.String(), func(t *testing.T) {
				m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb"}}))
				require.NoError(t, err)
				mgr, err := buildManager(t, m, "version: v1\nflags: {migStrategy: mixed}\nhealth: {recovery: {checks: 3}}")
				require.NoError(t, err)
				h, ctx := mgr.Health(), context.Background()
				sick := mgr.Inventory().MIG[0]
				h.Handle(ctx, nvml.Event{GPUIndex: 2, UUID: m.UUID(2), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
				h.Handle(ctx, nvml.Event{GPUIndex: 0, UUID: m.UUID(0), Kind: nvml.EventXID, XID: 94, GIID: sick.GIID, CIID: sick.CIID})
				out := func() bool { v := h.Snapshot(); return !v.GPU(2) && !v.Device(0, sick.UUID) }
				require.True(t, out())
				for range checks - 1 {
					h.Probe(ctx)
				}
				for _, gpu := range []int{0, 2} {
					require.NoError(t, m.Fail(gpu, call, ret))
				}
				h.Probe(ctx) // the one failing check
				for _, gpu := range []int{0, 2} {
					m.Heal(gpu)
				}
				require.True(t, out(), "recovered through a failing check")
				for range checks - 1 {
					h.Probe(ctx)
				}
				require.True(t, out(), "recovered before %d checks in a row", checks)
				h.Probe(ctx)
				v := h.Snapshot()
				require.True(t, v.GPU(2) && v.Device(0, sick.UUID), "not recovered after %d checks in a row", checks)
				require.Empty(t, h.UnhealthyUUIDs())
			})
		}
	}
}
