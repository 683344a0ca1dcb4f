package deviceplugin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// The log lines of a refused recovery (healthreset.go) and of a failing
// check (health.go).
const (
	logNeedsReset   = "GPU needs a reset before it can recover"
	logNeedsService = "GPU needs service"
	logStillFailing = "GPU still failing its check"
)

// probeLog is a context whose logger keeps every entry up to V(4), and a
// counter of the entries whose message starts with a prefix, by verbosity.
func probeLog(t *testing.T) (context.Context, func(prefix string, v int) int) {
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(4), ktesting.BufferLogs(true)))
	buf := logger.GetSink().(ktesting.Underlier).GetBuffer()
	count := func(prefix string, v int) int {
		n := 0
		for _, e := range buf.Data() {
			if strings.HasPrefix(e.Message, prefix) && e.Verbosity == v {
				n++
			}
		}
		return n
	}
	return klog.NewContext(context.Background(), logger), count
}

// eventsWith are the recorded events (drained) of one reason.
func eventsWith(rec *events.FakeRecorder, reason string) []string {
	var out []string
	for _, e := range drain(rec) {
		if strings.Contains(e, " "+reason+" ") {
			out = append(out, e)
		}
	}
	return out
}

// recoveryRun is a plugin serving a machine's 8 GPUs whole, recovery
// after checks passing probes, watched from the kubelet (its first list
// read), with its events recorded and its probes logged (probeLog).
type recoveryRun struct {
	rec   *events.FakeRecorder
	k     *kubelet
	p     *plugin
	s     pluginapi.DevicePlugin_ListAndWatchClient
	h     *deviceplugin.Health
	ctx   context.Context
	count func(prefix string, v int) int
}

func startRecovery(t *testing.T, machine string, checks int) recoveryRun {
	t.Helper()
	r := recoveryRun{rec: events.NewFakeRecorder(1000)}
	r.k, r.p = setup(t, pluginOpts{machine: machine, events: deviceplugin.NewNodeEvents(r.rec, "node-1"),
		config: fmt.Sprintf("version: v1\nhealth: {recovery: {checks: %d, interval: 10s}}", checks)})
	r.k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	r.s = watch(t, r.p, "nvidia.com/gpu")
	_, err := r.s.Recv()
	require.NoError(t, err)
	r.h = r.p.mgr.Health()
	r.ctx, r.count = probeLog(t)
	return r
}

// TestDoubleBitECCRecoversOnlyAfterReset: a double-bit ECC error takes the
// GPU out and leaves it needing a reset (a row remapping pending on the
// A100, a page pending retirement on the V100, and one volatile
// uncorrectable error on both). The recovery probe keeps it out for 10 x
// Checks probes, saying once (log and Node event) that it needs a reset
// (nvidia-smi -r or a node reboot) and repeating it only at V(4); after
// ResetGPU it recovers after exactly Checks passing probes. A second
// episode says it again, once.
func TestDoubleBitECCRecoversOnlyAfterReset(t *testing.T) {
	const (
		gpu    = 2
		checks = 3
	)
	for _, machine := range []string{fake.DGXA100, fake.DGX1V100} {
		t.Run(machine, func(t *testing.T) {
			r := startRecovery(t, machine, checks)
			rec, k, p, s, h, ctx, count := r.rec, r.k, r.p, r.s, r.h, r.ctx, r.count

			for episode := 1; episode <= 2; episode++ {
				p.machine.InjectECC(gpu, true)
				out, err := s.Recv()
				require.NoError(t, err)
				require.Equal(t, []string{uuidOf(p, gpu)}, unhealthy(out), "episode %d", episode)
				require.Len(t, eventsWith(rec, deviceplugin.ReasonGPUUnhealthy), 1)

				// 10 x 3 = 30 probes while the reset is pending: each fails.
				for probe := 1; probe <= 10*checks; probe++ {
					h.Probe(ctx)
					require.False(t, h.Healthy(gpu), "episode %d, probe %d: reset pending", episode, probe)
				}
				// Said once per episode (episode 1: 1, episode 2: 1 + 1 = 2),
				// repeated at V(4) by every probe (30 per episode).
				require.Equal(t, episode, count(logNeedsReset, 0), "episode %d", episode)
				require.Equal(t, episode*10*checks, count(logStillFailing, 4), "episode %d", episode)
				refused := eventsWith(rec, deviceplugin.ReasonGPUResetRequired)
				require.Len(t, refused, 1, "episode %d: one event per episode", episode)
				require.Contains(t, refused[0], fmt.Sprintf("GPU %d (%s) needs a reset", gpu, uuidOf(p, gpu)))
				require.Contains(t, refused[0], "nvidia-smi -r")
				require.Contains(t, refused[0], "uncorrectable ECC errors since the last reset: 1")

				// nvidia-smi -r: exactly 3 passing probes bring it back.
				p.machine.ResetGPU(gpu)
				for probe := 1; probe < checks; probe++ {
					h.Probe(ctx)
					require.False(t, h.Healthy(gpu), "episode %d: %d passing probes of %d", episode, probe, checks)
				}
				h.Probe(ctx)
				require.True(t, h.Healthy(gpu), "episode %d: the %dth passing probe recovers it", episode, checks)
				back, err := s.Recv()
				require.NoError(t, err)
				require.Empty(t, unhealthy(back))
				require.Len(t, eventsWith(rec, deviceplugin.ReasonGPURecovered), 1)
			}
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
		})
	}
}

// TestRemapFailureNeverRecovers: a GPU whose row remapping failed needs
// service; a reset does not bring it back. Said once, as GPUNeedsService.
func TestRemapFailureNeverRecovers(t *testing.T) {
	const gpu = 5
	rec := events.NewFakeRecorder(1000)
	k, p := setup(t, pluginOpts{machine: fake.DGXH100, events: deviceplugin.NewNodeEvents(rec, "node-1")})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	h := p.mgr.Health()
	ctx, count := probeLog(t)
	require.NoError(t, p.machine.SetRemapFailure(gpu, true))
	p.machine.InjectXID(gpu, 64) // XID 64: a row remapping failure
	// 8 - 1 = 7 healthy.
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
	for range 10 {
		h.Probe(ctx)
	}
	p.machine.ResetGPU(gpu)
	for range 10 {
		h.Probe(ctx)
	}
	require.False(t, h.Healthy(gpu))
	require.Equal(t, 1, count(logNeedsService, 0))
	require.Zero(t, count(logNeedsReset, 0))
	refused := eventsWith(rec, deviceplugin.ReasonGPUNeedsService)
	require.Len(t, refused, 1)
	require.Contains(t, refused[0], fmt.Sprintf("GPU %d (%s) needs service", gpu, uuidOf(p, gpu)))
}

// TestXIDWithoutResetRecoversAsBefore: an XID that leaves nothing for a
// reset to do (an NVLink error, XID 74; single-bit ECC errors beside it are
// corrected and counted only) recovers after exactly Checks passing probes,
// as before the reset checks, and says nothing of a reset.
func TestXIDWithoutResetRecoversAsBefore(t *testing.T) {
	const (
		gpu    = 1
		checks = 3
	)
	for _, machine := range []string{fake.DGXA100, fake.DGX1V100} {
		t.Run(machine, func(t *testing.T) {
			r := startRecovery(t, machine, checks)
			rec, p, s, h, ctx, count := r.rec, r.p, r.s, r.h, r.ctx, r.count

			p.machine.InjectECC(gpu, false)
			p.machine.InjectXID(gpu, 74)
			out, err := s.Recv()
			require.NoError(t, err)
			require.Equal(t, []string{uuidOf(p, gpu)}, unhealthy(out))
			for probe := 1; probe < checks; probe++ {
				h.Probe(ctx)
				require.False(t, h.Healthy(gpu), "%d passing probes of %d", probe, checks)
			}
			h.Probe(ctx)
			require.True(t, h.Healthy(gpu))
			back, err := s.Recv()
			require.NoError(t, err)
			require.Empty(t, unhealthy(back))
			require.Zero(t, count(logNeedsReset, 0))
			require.Zero(t, count(logStillFailing, 4))
			require.Empty(t, eventsWith(rec, deviceplugin.ReasonGPUResetRequired))
		})
	}
}

// TestRecoveryRefusedSaidOncePerVerdict: the tracker says a GPU needs a
// reset (or service) when its check first says so in an unhealthy episode;
// a check failing for another reason (a transient NVML error) between two
// such answers does not make it say it again; a change of verdict (reset
// to service) is said; a passing check ends the episode.
func TestRecoveryRefusedSaidOncePerVerdict(t *testing.T) {
	resetErr := fmt.Errorf("GPU GPU-1: %w: uncorrectable ECC errors since the last reset: 1", nvml.ErrResetRequired)
	serviceErr := fmt.Errorf("GPU GPU-1: %w", nvml.ErrNeedsService)
	transient := fmt.Errorf("GPU GPU-1: GetTotalEccErrors: %w", gonvml.ERROR_UNKNOWN)
	inv := &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}, {Index: 1, UUID: "GPU-1"}}}
	lib := &checkLib{fail: map[string]error{}}
	rec := events.NewFakeRecorder(100)
	h := deviceplugin.NewHealth(lib, inv, deviceplugin.HealthOptions{Recover: true, Checks: 2, Events: deviceplugin.NewNodeEvents(rec, "node-1")})
	ctx, count := probeLog(t)
	h.Handle(ctx, nvml.Event{GPUIndex: 1, UUID: "GPU-1", Kind: nvml.EventECCDoubleBit, GIID: -1, CIID: -1})
	drain(rec)

	for i, step := range []struct {
		err           error
		resets, servs int    // log lines so far
		event         string // the event this probe records, "" none
		healthy       bool
	}{
		{resetErr, 1, 0, deviceplugin.ReasonGPUResetRequired, false},
		{resetErr, 1, 0, "", false},
		{transient, 1, 0, "", false},
		{resetErr, 1, 0, "", false},
		{serviceErr, 1, 1, deviceplugin.ReasonGPUNeedsService, false},
		{serviceErr, 1, 1, "", false},
		{resetErr, 2, 1, deviceplugin.ReasonGPUResetRequired, false},
		{nil, 2, 1, "", false}, // 1 pass of 2
		{resetErr, 3, 1, deviceplugin.ReasonGPUResetRequired, false},
		{nil, 3, 1, "", false},
		{nil, 3, 1, deviceplugin.ReasonGPURecovered, true}, // 2 passes of 2
	} {
		lib.mu.Lock()
		lib.fail["GPU-1"] = step.err
		lib.mu.Unlock()
		h.Probe(ctx)
		require.Equal(t, step.healthy, h.Healthy(1), "probe %d", i+1)
		require.Equal(t, step.resets, count(logNeedsReset, 0), "probe %d", i+1)
		require.Equal(t, step.servs, count(logNeedsService, 0), "probe %d", i+1)
		got := drain(rec)
		if step.event == "" {
			require.Empty(t, got, "probe %d", i+1)
			continue
		}
		require.Len(t, got, 1, "probe %d", i+1)
		require.Contains(t, got[0], " "+step.event+" GPU 1 (GPU-1)", "probe %d", i+1)
	}
}
