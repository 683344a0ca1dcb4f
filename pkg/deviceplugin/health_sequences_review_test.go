package deviceplugin_test

// Review: fault SEQUENCES (not single faults) against the device plugin's
// health, rebuild and MIG handling. Three showed defects, fixed since (a
// MIG mark lost across a layout change, a degraded GPU never read again
// with recovery off, restartOnDeviceUnhealthy ignoring carried marks); the
// others pin sequences that held.

import (
	"context"
	"slices"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// Sequence: migStrategy mixed, an XID names one MIG instance of GPU 0 (its
// MIG device goes unhealthy); then the MIG layout of GPU 0 changes (MIG
// disabled, or its instances re-created with new UUIDs) and the plugin is
// rebuilt with the previous Manager's marks (Options.Unhealthy), as
// cmd/device-plugin does after ErrMIGChanged. The mark names a MIG UUID the
// new inventory lacks and is dropped: GPU 0 (or its new MIG devices) is
// served healthy with no recovery check, although "a rebuild is no recovery
// check" and, under migStrategy none, a MIG device's mark is moved to its
// GPU (servedWhole). Expected: the mark moves to the MIG device's parent
// (known from MIGParents), which recovers after its checks.
func TestReviewMIGMarkSurvivesLayoutChange(t *testing.T) {
	const mixed = "version: v1\nflags: {migStrategy: mixed}\nhealth: {recovery: {checks: 3, interval: 10s}}"
	small := []string{"1g.5gb", "1g.5gb", "1g.5gb"}
	for _, tc := range []struct {
		name   string
		change func(*fake.Machine) error
	}{
		{"MIG disabled", func(m *fake.Machine) error {
			if err := m.ReconfigureMIG(0, nil); err != nil {
				return err
			}
			if ret, _ := m.Device(0).SetMigMode(gonvml.DEVICE_MIG_DISABLE); ret != gonvml.SUCCESS {
				return ret
			}
			return nil
		}},
		{"re-created with new UUIDs", func(m *fake.Machine) error { return m.ReconfigureMIG(0, small) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newReloadNode(t, fake.WithMIG(map[int][]string{0: small}))
			prev, stop := n.run(mixed, nil)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 3})
			var sick nvml.MIGDevice
			for _, d := range prev.Inventory().MIG {
				if d.ParentIndex == 0 {
					sick = d
					break
				}
			}
			n.machine.InjectMIGXID(0, sick.GIID, sick.CIID, 94)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 2})
			require.NoError(t, tc.change(n.machine))
			stop()
			marks := prev.Health().UnhealthyUUIDs()
			require.Equal(t, []string{sick.UUID}, marks)

			mgr, _ := n.run(mixed, func(o *deviceplugin.Options) {
				o.Unhealthy, o.MIGParents, o.Held, o.Withheld = marks, prev.MIGParents(), prev.Held(), prev.Withheld()
			})
			// No clock step: no recovery check has run.
			v := mgr.Health().Snapshot()
			healthyOn0 := v.GPU(0)
			for _, d := range mgr.Inventory().MIG {
				if d.ParentIndex == 0 {
					healthyOn0 = healthyOn0 && v.Device(0, d.UUID)
				}
			}
			require.False(t, healthyOn0, "GPU 0, whose MIG device an XID took out, is served healthy after the layout change with no check passed; marks now %v", mgr.Health().UnhealthyUUIDs())
		})
	}
}

// Sequence: an NVML call fails transiently for GPU 3 at discovery (it is
// served as GPU-unreadable-3, unhealthy), with health.recovery.enabled:
// false (the documented way to get NVIDIA's "unhealthy until restart"), or
// with health checks disabled; the call then answers again. The only way
// back for a degraded GPU is the recovery probe (RecheckGPUs, then
// ErrRediscover), which runs only with recovery on: the GPU, never
// unhealthy by any fault, stays out (under a placeholder ID) until the
// process restarts. Expected: a GPU discovery could not read is read again
// whatever recovery says of GPUs that failed (recovery.enabled is about
// faults; this is discovery).
func TestReviewDegradedGPUComesBackWithRecoveryDisabled(t *testing.T) {
	for _, tc := range []struct{ name, config string }{
		{"recovery disabled", "version: v1\nhealth: {recovery: {enabled: false, checks: 1, interval: 10s}}"},
		{"health checks disabled", "version: v1\nhealth: {disabled: true}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := configv1.Parse([]byte(tc.config)); err != nil {
				t.Skipf("config %q not accepted here: %v", tc.config, err)
			}
			dir := socketDir(t)
			k := startKubelet(t, dir)
			p := startPlugin(t, dir, pluginOpts{machine: fake.DGX1V100, kubelet: k, config: tc.config,
				prepare: func(m *fake.Machine) {
					require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_UNKNOWN))
				}})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
			require.True(t, nvml.IsPlaceholderUUID(uuidOf(p, 3)))
			p.machine.Heal(3) // the transient error is over
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				p.clock.Step(time.Minute)
				select {
				case err := <-p.done:
					p.done <- nil
					require.ErrorIs(t, err, deviceplugin.ErrRediscover)
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			t.Fatal("GPU 3 answers again, but the plugin never discovers it again: it stays GPU-unreadable-3, unhealthy, until the process restarts")
		})
	}
}

// Sequence: flags.restartOnDeviceUnhealthy is off; an XID takes GPU 2 out;
// a per-node config reload turns restartOnDeviceUnhealthy on (recovery
// off, NVIDIA's behaviour). cmd/device-plugin carries GPU 2's mark to the
// new Manager (Options.Unhealthy): its Run never restarts, since only a
// health *change* is looked at, so GPU 2 stays out for good although the
// config now says "restart on an unhealthy device" (a restart sees every
// device healthy). The same happens when the reload and the XID race with
// the flag already on. Expected: a Manager with restartOnDeviceUnhealthy
// that starts with carried marks restarts (or the command drops the marks
// for such a config).
func TestReviewRestartOnUnhealthyWithCarriedMarks(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	cfg, err := configv1.Parse([]byte("version: v1\nflags: {restartOnDeviceUnhealthy: true}\nhealth: {recovery: {enabled: false}}"))
	require.NoError(t, err)
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir, Unhealthy: []string{m.UUID(2)}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, deviceplugin.ErrRestartOnUnhealthy)
	case <-time.After(3 * time.Second):
		healthy, _ := k.counts()
		cancel()
		<-done
		t.Fatalf("GPU 2 carried unhealthy under restartOnDeviceUnhealthy and recovery off: no restart, served %v for good", healthy)
	}
}

// Held: double-bit ECC on GPU 2 (needs a reset), checks fail; the GPU is
// reset; 2 of 3 checks pass; another XID comes during the recovery
// checks: the count starts over, and the GPU recovers only after 3 checks
// after that XID. Driven synchronously through Handle/Probe on the fake
// machine's real NVML path (CheckGPU with checkMemory).
func TestReviewECCResetThenXIDDuringRecovery(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	inv, err := lib.Discover()
	require.NoError(t, err)
	h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: 3})
	ctx := context.Background()
	uuid := m.UUID(2)
	m.InjectECC(2, true)
	h.Handle(ctx, nvml.Event{GPUIndex: 2, UUID: uuid, Kind: nvml.EventECCDoubleBit, GIID: -1, CIID: -1})
	require.False(t, h.Healthy(2))
	for range 5 {
		h.Probe(ctx)
	}
	require.False(t, h.Healthy(2), "recovered without a reset")
	m.ResetGPU(2)
	h.Probe(ctx)
	h.Probe(ctx)
	h.Handle(ctx, nvml.Event{GPUIndex: 2, UUID: uuid, Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
	h.Probe(ctx)
	require.False(t, h.Healthy(2), "2 passes before the XID + 1 after recovered it")
	h.Probe(ctx)
	require.False(t, h.Healthy(2))
	h.Probe(ctx)
	require.True(t, h.Healthy(2))
	// A second double-bit ECC error after recovery needs a second reset.
	m.InjectECC(2, true)
	h.Handle(ctx, nvml.Event{GPUIndex: 2, UUID: uuid, Kind: nvml.EventECCDoubleBit, GIID: -1, CIID: -1})
	for range 4 {
		h.Probe(ctx)
	}
	require.False(t, h.Healthy(2))
}

// Held: a pod holds GPU 3; GPU 3 falls off the bus, is restored, recovers,
// and falls off again: the second loss takes it out again (the event
// watch reports a loss again after the GPU came back), the pod's
// allocation is never given to another pod, and after the second
// restoration it comes back.
func TestReviewLostRestoredLostAgainWhileHeld(t *testing.T) {
	k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: "version: v1\nhealth: {recovery: {checks: 2, interval: 10s}}"})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	all, _, err := k.allocate("holder", "nvidia.com/gpu", 8, nil)
	require.NoError(t, err)
	require.Contains(t, all, uuidOf(p, 3))
	for round := range 2 {
		p.machine.LoseGPU(3)
		require.Eventually(t, func() bool { return !p.mgr.Health().Healthy(3) }, 5*time.Second, 5*time.Millisecond, "loss %d not seen", round+1)
		k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
		_, _, err := k.allocate("thief-"+string(rune('a'+round)), "nvidia.com/gpu", 1, nil)
		require.Error(t, err, "every healthy GPU is the holder's")
		for range 3 {
			p.mgr.Health().Probe(context.Background())
		}
		require.False(t, p.mgr.Health().Healthy(3), "recovered while lost")
		p.machine.RestoreGPU(3)
		require.Eventually(t, func() bool {
			p.mgr.Health().Probe(context.Background())
			return p.mgr.Health().Healthy(3)
		}, 5*time.Second, 5*time.Millisecond)
		k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
		// Let the event watch answer (a timeout) after the restoration.
		time.Sleep(50 * time.Millisecond)
	}
	k.Forget(types.UID("uid-holder"))
}

// Held: under migStrategy mixed, GPU 0 (MIG) goes unhealthy as a whole
// (XID 48), its recovery half done, then an XID names one of its
// instances: the GPU's other MIG devices come back with the GPU's checks,
// the named one only after checks of its own; Node() publishes the same.
func TestReviewMIGInstanceXIDDuringGPURecovery(t *testing.T) {
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb", "1g.5gb"}}))
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	inv, err := lib.Discover()
	require.NoError(t, err)
	h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: 3})
	ctx := context.Background()
	var on0 []nvml.MIGDevice
	for _, d := range inv.MIG {
		if d.ParentIndex == 0 {
			on0 = append(on0, d)
		}
	}
	require.Len(t, on0, 3)
	h.Handle(ctx, nvml.Event{GPUIndex: 0, UUID: m.UUID(0), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1})
	h.Probe(ctx)
	h.Probe(ctx)
	h.Handle(ctx, nvml.Event{GPUIndex: 0, UUID: m.UUID(0), Kind: nvml.EventXID, XID: 94, GIID: on0[1].GIID, CIID: on0[1].CIID})
	h.Probe(ctx)
	v := h.Snapshot()
	for i, d := range on0 {
		// Whatever the GPU's count, the instance named by the XID is not
		// healthy after one check.
		if i == 1 {
			require.False(t, v.Device(0, d.UUID))
		}
	}
	for range 3 {
		h.Probe(ctx)
	}
	v = h.Snapshot()
	for _, d := range on0 {
		require.True(t, v.Device(0, d.UUID), d.UUID)
	}
	require.Empty(t, h.UnhealthyUUIDs())
}

// Held: an XID storm on several GPUs, each GPU's events racing the
// recovery probe (-race), then a rebuild: the marks carried are exactly
// the GPUs still out, and the rebuilt tracker serves none of them.
func TestReviewXIDStormAcrossRebuild(t *testing.T) {
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	inv, err := lib.Discover()
	require.NoError(t, err)
	clk := testingclock.NewFakeClock(time.Now())
	h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: 2, Interval: 10 * time.Second, Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	events, err := lib.WatchEvents(ctx, []string{m.UUID(0), m.UUID(1), m.UUID(2), m.UUID(3), m.UUID(4), m.UUID(5), m.UUID(6), m.UUID(7)})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { h.Run(ctx, events); close(done) }()
	stop := make(chan struct{})
	stepped := make(chan struct{})
	go func() {
		defer close(stepped)
		for {
			select {
			case <-stop:
				return
			default:
				clk.Step(10 * time.Second)
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for round := range 50 {
		for _, g := range []int{1, 3, 5} {
			m.InjectXID(g, uint64(48+round%2*31)) // 48 and 79 (lost) alternate
		}
	}
	close(stop)
	<-stepped
	// Let the last events land, with no probe any more.
	m.InjectXID(1, 48)
	m.InjectXID(3, 48)
	m.InjectXID(5, 48)
	require.Eventually(t, func() bool { return !h.Healthy(1) && !h.Healthy(3) && !h.Healthy(5) }, 5*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	marks := h.UnhealthyUUIDs()
	want := []string{m.UUID(1), m.UUID(3), m.UUID(5)}
	slices.Sort(want)
	require.Equal(t, want, marks)
	next := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: 2, Unhealthy: marks})
	for _, g := range []int{1, 3, 5} {
		require.False(t, next.Healthy(g))
	}
	require.True(t, next.Healthy(0))
}

// Held: GPU 0 is time-shared 4 ways and 2 replicas are allocated; an XID
// takes all 4 out while the 2 pods run; a pod asking a replica now is
// refused; after recovery exactly the 2 free replicas are given, never a
// held one, and a fifth pod is refused.
func TestReviewReplicasUnhealthyWhileAllocated(t *testing.T) {
	k, p, _, _ := sharedA100(t, "nvidia.com/gpu.shared")
	a, _, err := k.allocate("a", "nvidia.com/gpu.shared", 1, nil)
	require.NoError(t, err)
	b, _, err := k.allocate("b", "nvidia.com/gpu.shared", 1, nil)
	require.NoError(t, err)
	p.machine.InjectXID(0, 48)
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 0, "nvidia.com/gpu": 7})
	_, _, err = k.allocate("c", "nvidia.com/gpu.shared", 1, nil)
	require.Error(t, err, "a replica of an unhealthy GPU was given")
	k.Forget(types.UID("uid-c"))
	require.Eventually(t, func() bool {
		p.clock.Step(10 * time.Second)
		return p.mgr.Health().Healthy(0)
	}, 10*time.Second, 20*time.Millisecond)
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7})
	c, _, err := k.allocate("c2", "nvidia.com/gpu.shared", 1, nil)
	require.NoError(t, err)
	d, _, err := k.allocate("d", "nvidia.com/gpu.shared", 1, nil)
	require.NoError(t, err)
	got := append(append(append(append([]string{}, a...), b...), c...), d...)
	slices.Sort(got)
	require.Equal(t, replicaIDs(uuidOf(p, 0), 4), got, "each replica given once")
	_, _, err = k.allocate("e", "nvidia.com/gpu.shared", 1, nil)
	require.Error(t, err)
}
