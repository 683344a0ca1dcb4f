package app

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// rebuildFailures records the failed rebuilds and trial builds
// (rebuildEvents) and the refused configs (configEvents).
type rebuildFailures struct {
	refusals
	failMu  sync.Mutex
	retries []time.Duration
	errs    []string
	// trials are the trial builds that failed, to be retried in
	// trialRetries.
	trialRetries []time.Duration
	trials       []string
}

func (r *rebuildFailures) RebuildFailed(err error, retryIn time.Duration) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	r.retries = append(r.retries, retryIn)
	r.errs = append(r.errs, err.Error())
}

func (r *rebuildFailures) ConfigTrialFailed(name, running string, err error, retryIn time.Duration) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	r.trialRetries = append(r.trialRetries, retryIn)
	r.trials = append(r.trials, fmt.Sprintf("%s (running %s): %v", name, running, err))
}

func (r *rebuildFailures) trialsFailed() ([]time.Duration, []string) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	return slices.Clone(r.trialRetries), slices.Clone(r.trials)
}

func (r *rebuildFailures) failed() ([]time.Duration, []string) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	return slices.Clone(r.retries), slices.Clone(r.errs)
}

// served is what the plugin of nvidia.com/gpu lists now (its first
// ListAndWatch answer), with the unhealthy device IDs; ok is false while
// not exactly one server listens.
func served(t *testing.T, dir string) (ids, unhealthy []string, ok bool) {
	t.Helper()
	socks, err := filepath.Glob(filepath.Join(dir, "gpupack-nvidia_com-gpu-*.sock"))
	if err != nil || len(socks) != 1 {
		return nil, nil, false
	}
	conn, err := grpc.NewClient("unix://"+socks[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, false
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return nil, nil, false
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, nil, false
	}
	for _, d := range resp.Devices {
		ids = append(ids, d.ID)
		if d.Health != pluginapi.Healthy {
			unhealthy = append(unhealthy, d.ID)
		}
	}
	return ids, unhealthy, true
}

// countFailures makes a fake machine's DeviceGetCount fail: after skip
// calls that answer, fails calls fail (ERROR_UNKNOWN).
type countFailures struct {
	mu          sync.Mutex
	skip, fails int
}

func failCount(m *fake.Machine) *countFailures {
	c := &countFailures{}
	count := m.Server().DeviceGetCountFunc
	m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case c.skip > 0:
			c.skip--
		case c.fails > 0:
			c.fails--
			return 0, gonvml.ERROR_UNKNOWN
		}
		return count()
	}
	return c
}

// set arms the failures; it returns the failures left unused.
func (c *countFailures) set(skip, fails int) (left int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	left = c.fails
	c.skip, c.fails = skip, fails
	return left
}

// serveRun is o.serve running the per-node config running on lib, its
// sockets in dir, its retries 1 min doubling on clk (startServe).
type serveRun struct {
	o      *options
	ev     *rebuildFailures
	clk    *testingclock.FakeClock
	logger klog.Logger
	dir    string
	reload chan choice
	done   chan error
	cancel context.CancelFunc
}

func startServe(t *testing.T, lib nvml.Lib, running choice) *serveRun {
	t.Helper()
	return startServeRetry(t, lib, running, wait.Backoff{Duration: time.Minute, Factor: 2, Steps: math.MaxInt32, Cap: time.Hour})
}

// startServeRetry is startServe, its retries paced by retry.
func startServeRetry(t *testing.T, lib nvml.Lib, running choice, retry wait.Backoff) *serveRun {
	t.Helper()
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	t.Cleanup(cancel)
	r := &serveRun{ev: &rebuildFailures{}, clk: testingclock.NewFakeClock(time.Now()), logger: logger, dir: t.TempDir(),
		reload: make(chan choice), done: make(chan error, 1), cancel: cancel}
	fs := NewCommand().Flags()
	r.o = &options{configDir: t.TempDir(), chosen: &running, configEvents: r.ev,
		rebuildRetry: retry, rebuildClock: r.clk}
	cfg, err := r.o.loadConfig(ctx, fs)
	require.NoError(t, err)
	go func() {
		r.done <- r.o.serve(ctx, fs, deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: r.dir}, r.reload)
	}()
	return r
}

// startServingTS is startServe on a fake DGX A100 with tsConfig (4
// replicas of each of its 8 GPUs), once its 32 devices are served; fails
// makes the machine's GPU count fail.
func startServingTS(t *testing.T) (*serveRun, *countFailures) {
	t.Helper()
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	fails := failCount(m)
	r := startServe(t, m.Lib(t), choice{name: "ts", data: []byte(tsConfig)})
	r.serving(t, 32, false, "the ts config is served")
	return r, fails
}

// wholeRebuildFails reloads wholeChoice, whose trial passes and whose
// rebuild's discovery fails once, and waits for the failure to be recorded
// and its retry armed.
func (r *serveRun) wholeRebuildFails(t *testing.T, fails *countFailures) {
	t.Helper()
	fails.set(1, 1)
	r.reload <- wholeChoice
	require.Eventually(t, func() bool {
		retries, _ := r.ev.failed()
		return len(retries) == 1 && r.clk.HasWaiters()
	}, 20*time.Second, 10*time.Millisecond, "the rebuild fails and its retry is armed")
}

// stop ends serve and waits for it, which must end without an error.
func (r *serveRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the plugin did not stop")
	}
}

// serving waits until the plugin of nvidia.com/gpu serves n devices, all
// healthy when healthy is set; the plugin must not end meanwhile.
func (r *serveRun) serving(t *testing.T, n int, healthy bool, msg string) {
	t.Helper()
	var (
		ended  bool
		endErr error
	)
	require.Eventually(t, func() bool {
		select {
		case endErr = <-r.done:
			ended = true
			return true
		default:
		}
		ids, unhealthy, ok := served(t, r.dir)
		return ok && len(ids) == n && (!healthy || len(unhealthy) == 0)
	}, 20*time.Second, 20*time.Millisecond, msg)
	require.False(t, ended, "the plugin ended: %v", endErr)
}

var (
	// wholeChoice serves the DGX A100's 8 GPUs whole.
	wholeChoice = choice{name: "whole", data: []byte("version: v1\n")}
	// noFitChoice is valid but does not fit the node: no GPU 99 here.
	noFitChoice = choice{name: "nofit", data: []byte("sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [99]}]}}")}
)

// TestRebuildFailureKeepsServing: a config reload whose rebuild meets a
// one-off NVML error in discovery (DeviceGetCount fails) used to end the
// process, and the restarted plugin lost what only it knew: GPU 3, which
// faulted with recovery disabled, was served healthy again. Now the
// running Manager serves its devices again (GPU 3 still unhealthy), the
// process does not end, each failure is a Warning event, and the rebuild
// is retried with backoff until it succeeds, GPU 3's fault carried into
// the new config.
func TestRebuildFailureKeepsServing(t *testing.T) {
	const (
		recoveryOff = "health: {recovery: {enabled: false}}\n"
		// ts serves 4 replicas of each of the DGX A100's 8 GPUs; whole
		// serves the GPUs.
		ts    = "version: v1\n" + recoveryOff + "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}\n"
		whole = "version: v1\n" + recoveryOff
	)
	tests := []struct {
		name string
		// failures: the DeviceGetCount calls of the rebuild that fail.
		failures int
		// wantRetries: the delays announced, one per failure.
		wantRetries []time.Duration
	}{
		{name: "fails once", failures: 1, wantRetries: []time.Duration{time.Minute}},
		{name: "fails three times", failures: 3, wantRetries: []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			gpu3 := m.UUID(3)
			fails := failCount(m)
			r := startServe(t, m.Lib(t), choice{name: "ts", data: []byte(ts)})
			dir, ev, clk, o, reload, done, logger := r.dir, r.ev, r.clk, r.o, r.reload, r.done, r.logger
			running := func() {
				t.Helper()
				select {
				case err := <-done:
					t.Fatalf("the plugin ended: %v", err)
				default:
				}
			}
			// onGPU3 are the IDs of GPU 3's devices among ids.
			onGPU3 := func(ids []string) []string {
				var out []string
				for _, id := range ids {
					if strings.HasPrefix(id, gpu3) {
						out = append(out, id)
					}
				}
				return out
			}
			// serving waits until n devices are served, those of GPU 3
			// (and only they) unhealthy.
			serving := func(n int, msg string) {
				t.Helper()
				require.Eventually(t, func() bool {
					ids, unhealthy, ok := served(t, dir)
					return ok && len(ids) == n && len(onGPU3(ids)) > 0 && slices.Equal(unhealthy, onGPU3(ids))
				}, 20*time.Second, 20*time.Millisecond, msg)
				running()
			}

			require.Eventually(t, func() bool {
				ids, unhealthy, ok := served(t, dir)
				return ok && len(ids) == 32 && len(unhealthy) == 0
			}, 20*time.Second, 20*time.Millisecond, "the ts config is served")
			// GPU 3 faults (XID 48); recovery is disabled, so it stays out
			// until the plugin restarts. The event set may not be
			// registered yet: the XID is sent until it is seen.
			require.Eventually(t, func() bool {
				m.InjectXID(3, 48)
				_, unhealthy, ok := served(t, dir)
				return ok && len(unhealthy) == 4
			}, 20*time.Second, 50*time.Millisecond, "GPU 3 goes unhealthy")
			serving(32, "GPU 3's replicas are unhealthy")

			// The reload's trial Manager (accept) reads the node, then the
			// rebuild's discovery fails tc.failures times.
			fails.set(1, tc.failures)
			reload <- choice{name: "whole", data: []byte(whole)}
			for i := range tc.failures {
				require.Eventually(t, func() bool {
					retries, _ := ev.failed()
					return len(retries) == i+1 && clk.HasWaiters()
				}, 20*time.Second, 10*time.Millisecond, "failure %d is recorded and its retry armed", i+1)
				// Meanwhile the running config is served again, GPU 3
				// still out.
				serving(32, "the running devices are served until the retry")
				clk.Step(time.Hour)
			}
			// The retry after the last failure succeeds: the new config is
			// served, with GPU 3's fault carried.
			serving(8, "the rebuild completes after the retries, GPU 3 still unhealthy")
			ids, _, _ := served(t, dir)
			require.Equal(t, []string{gpu3}, onGPU3(ids), "whole GPUs")
			retries, errs := ev.failed()
			require.Equal(t, tc.wantRetries, retries, "the retries back off")
			for _, e := range errs {
				require.Contains(t, e, "discovering GPUs")
			}
			require.Empty(t, ev.got(), "no config was refused")
			require.Equal(t, "whole", o.chosen.name)
			require.Contains(t, logger.GetSink().(ktesting.Underlier).GetBuffer().String(), "Rebuilding the device plugin failed")
			r.stop(t)
		})
	}
}

// TestTrialRetry: a reloaded config whose trial build (accept) met a
// one-off NVML error in discovery (DeviceGetCount fails) was refused (DevicePluginConfigRefused) and never tried again until the
// ConfigMap or label changed. Now such a config is not refused: a Warning
// says it is retried, the running config is served meanwhile, and the
// trial is retried on the rebuild's backoff until it can be tried; it is
// then taken, or refused if it is wrong. A config that is wrong is still
// refused at once, and a valid config is taken after any of these.
func TestTrialRetry(t *testing.T) {
	whole, noFit := wholeChoice, noFitChoice
	tests := []struct {
		name   string
		config choice
		// failures: the DeviceGetCount calls that fail after the reload.
		failures int
		// wantRetries: the trial retries announced, one per failure.
		wantRetries []time.Duration
		// refused: the config is refused in the end (else taken).
		refused bool
	}{
		{name: "fails once", // taken at the retry
			config: whole, failures: 1, wantRetries: []time.Duration{time.Minute}},
		{name: "fails twice", config: whole, failures: 2, wantRetries: []time.Duration{time.Minute, 2 * time.Minute}},
		{name: "does not load", // refused at once, before discovery
			config: choice{name: "bad", data: []byte("flags: {migStrategy: diagonal}")}, failures: 1, refused: true},
		{name: "does not fit", // refused at once
			config: noFit, refused: true},
		{name: "does not fit, fails once", // refused once it can be tried
			config: noFit, failures: 1, wantRetries: []time.Duration{time.Minute}, refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, fails := startServingTS(t)
			ev, clk, reload := r.ev, r.clk, r.reload
			serving := func(n int, msg string) { t.Helper(); r.serving(t, n, false, msg) }

			fails.set(0, tc.failures)
			reload <- tc.config
			for i := range tc.wantRetries {
				require.Eventually(t, func() bool {
					retries, _ := ev.trialsFailed()
					return len(retries) == i+1 && clk.HasWaiters()
				}, 20*time.Second, 10*time.Millisecond, "failure %d is recorded and its retry armed", i+1)
				require.Empty(t, ev.got(), "not refused")
				serving(32, "the running config is served until the retry")
				clk.Step(time.Hour)
			}
			if tc.refused {
				require.Eventually(t, func() bool { return len(ev.got()) == 1 }, 20*time.Second, 10*time.Millisecond, "refused")
				require.Contains(t, ev.got()[0], tc.config.name+" (running ts)")
				require.Eventually(t, func() bool { return !clk.HasWaiters() }, 20*time.Second, 10*time.Millisecond, "no retry is pending")
				serving(32, "the running config is served on")
				// A config that does not load is refused before any
				// NVML call: its failure is left.
				left := fails.set(0, 0)
				require.Equal(t, tc.failures-len(tc.wantRetries), left, "DeviceGetCount failures left")
				// A valid config is taken after the refusal.
				reload <- whole
			}
			serving(8, "the whole config is served")
			retries, trials := ev.trialsFailed()
			require.Equal(t, tc.wantRetries, retries, "the trial retries back off")
			for _, e := range trials {
				require.Contains(t, e, tc.config.name+" (running ts): discovering GPUs")
			}
			require.Len(t, ev.got(), map[bool]int{true: 1}[tc.refused], "refusals: %v", ev.got())
			rebuilds, _ := ev.failed()
			require.Empty(t, rebuilds, "no rebuild failed")

			r.stop(t)
			require.Equal(t, "whole", r.o.chosen.name)
		})
	}
}

// TestServedConfigWhileRebuildRetries: while the rebuild of a reloaded
// config (whole) fails and is retried, the Manager of the config before
// (ts) serves on; a third config whose trial fails, or that is refused,
// named whole as the config still served, since accept had chosen it
// before its rebuild. The events and the log name ts until a Manager
// built from whole runs.
func TestServedConfigWhileRebuildRetries(t *testing.T) {
	noFit := noFitChoice
	tests := []struct {
		name  string
		third choice
		// trialFails: the third config's trial build fails (else it is
		// refused).
		trialFails bool
		// wantServed: the config served once the retry is through
		// (third if taken, whole otherwise).
		wantServed string
	}{
		{name: "trial fails", third: choice{name: "third", data: []byte("version: v1\nflags: {migStrategy: none}\n")}, trialFails: true, wantServed: "third"},
		{name: "refused", third: noFit, wantServed: "whole"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, fails := startServingTS(t)
			serving := func(n int, msg string) { t.Helper(); r.serving(t, n, false, msg) }

			r.wholeRebuildFails(t, fails)
			serving(32, "ts is served until the retry")
			logs := r.logger.GetSink().(ktesting.Underlier).GetBuffer()
			require.Contains(t, logs.String(), `config="whole" running="ts"`, "the rebuild's log names the config served")

			if tc.trialFails {
				fails.set(0, 1)
			}
			r.reload <- tc.third
			if tc.trialFails {
				require.Eventually(t, func() bool {
					_, trials := r.ev.trialsFailed()
					return len(trials) == 1
				}, 20*time.Second, 10*time.Millisecond, "the third config's trial fails")
				_, trials := r.ev.trialsFailed()
				require.Contains(t, trials[0], tc.third.name+" (running ts): discovering GPUs")
			} else {
				require.Eventually(t, func() bool { return len(r.ev.got()) == 1 }, 20*time.Second, 10*time.Millisecond, "the third config is refused")
				require.Contains(t, r.ev.got()[0], tc.third.name+" (running ts)")
			}
			require.NotContains(t, logs.String(), `running="whole"`, "no log names whole as served")
			serving(32, "ts is served until the retry")

			// At the retry a Manager is built (third's, or whole's):
			// from then on it is the config served.
			r.clk.Step(time.Hour)
			serving(8, "the retry builds the next Manager")
			require.Eventually(t, func() bool { return !r.clk.HasWaiters() }, 20*time.Second, 10*time.Millisecond, "no retry is pending")
			refused := len(r.ev.got())
			r.reload <- noFit
			require.Eventually(t, func() bool { return len(r.ev.got()) > refused }, 20*time.Second, 10*time.Millisecond, "nofit is refused")
			require.Contains(t, r.ev.got()[refused], "nofit (running "+tc.wantServed+")")
			r.stop(t)
			require.Equal(t, tc.wantServed, r.o.served.name)
		})
	}
}

// TestChosenAgainWhileRebuildRetries: while the rebuild of a reloaded
// config (whole) fails and is retried, the label or ConfigMap delivering
// whole again changes nothing (the armed retry builds it), but the log
// said "Per-node config is the running one again" though ts was the one
// running. It now says whole is the config chosen already, its start
// retried, and names ts as running; once whole runs, delivering it again
// is "the running one again".
func TestChosenAgainWhileRebuildRetries(t *testing.T) {
	r, fails := startServingTS(t)
	logs := r.logger.GetSink().(ktesting.Underlier).GetBuffer()
	const (
		runningAgain = "Per-node config is the running one again"
		chosenAgain  = `Per-node config is the one chosen already, whose start is being retried; nothing to do config="whole" running="ts"`
	)

	r.wholeRebuildFails(t, fails)
	r.reload <- wholeChoice
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), chosenAgain) },
		20*time.Second, 10*time.Millisecond, "whole again is the chosen config, ts running")
	require.NotContains(t, logs.String(), runningAgain)
	r.serving(t, 32, false, "ts is served until the retry")
	require.Empty(t, r.ev.got(), "nothing refused")

	// The retry builds whole; then whole again is the running one.
	r.clk.Step(time.Hour)
	r.serving(t, 8, false, "the retry builds whole")
	r.reload <- wholeChoice
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), runningAgain+`; nothing to do config="whole"`) },
		20*time.Second, 10*time.Millisecond, "whole again is the running config")
	r.stop(t)
	require.Equal(t, "whole", r.o.served.name)
}

// TestRetryDelayShown: the retries' delays carry defaultRebuildRetry's
// 10% jitter; the events and the log said them to the nanosecond
// ("retrying in 2.093847263s"). They say them to the second now, for a
// failed rebuild and a failed trial build alike.
func TestRetryDelayShown(t *testing.T) {
	tests := []struct {
		name string
		// skip: the DeviceGetCount calls that answer before the
		// failures (1: the trial passes, the rebuild fails).
		skip int
		// failed: the delays announced.
		failed func(*rebuildFailures) []time.Duration
		// wantLog: the failure's log message.
		wantLog string
	}{
		{name: "rebuild", skip: 1, failed: func(r *rebuildFailures) []time.Duration { d, _ := r.failed(); return d },
			wantLog: "Rebuilding the device plugin failed"},
		{name: "trial build", failed: func(r *rebuildFailures) []time.Duration { d, _ := r.trialsFailed(); return d },
			wantLog: "Trying the new per-node config failed"},
	}
	// Each failure's delay is its step's (2 s, 4 s, 8 s) plus up to 10%.
	steps := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			fails := failCount(m)
			r := startServeRetry(t, m.Lib(t), choice{name: "ts", data: []byte(tsConfig)}, defaultRebuildRetry)
			r.serving(t, 32, false, "the ts config is served")
			fails.set(tc.skip, len(steps))
			r.reload <- wholeChoice
			for i := range steps {
				require.Eventually(t, func() bool { return len(tc.failed(r.ev)) == i+1 && r.clk.HasWaiters() },
					20*time.Second, 10*time.Millisecond, "failure %d is recorded and its retry armed", i+1)
				r.clk.Step(time.Hour)
			}
			r.serving(t, 8, false, "the whole config is served after the retries")
			logs := r.logger.GetSink().(ktesting.Underlier).GetBuffer().String()
			for i, d := range tc.failed(r.ev) {
				require.Zero(t, d%time.Second, "delay %d (%s) to the second", i+1, d)
				require.GreaterOrEqual(t, d, steps[i], "delay %d", i+1)
				require.LessOrEqual(t, d, (steps[i] + steps[i]/10).Round(time.Second), "delay %d", i+1)
				require.Contains(t, logs, fmt.Sprintf("retryIn=%q", d.String()), "the log shows delay %d so", i+1)
			}
			require.Equal(t, len(steps), strings.Count(logs, tc.wantLog))
			r.stop(t)
		})
	}
}

// TestRestartPacedOnClock: the restarts of restartOnDeviceUnhealthy are
// paced (restartPacer: at once, then 10 s doubling) on the clock the
// rebuild's retries use; they were paced on the real clock, the one loop
// keeping two clocks. On the fake clock a restart waits its delay, and
// starts once the clock has passed it, with every device healthy.
func TestRestartPacedOnClock(t *testing.T) {
	tests := []struct {
		name string
		// wantDelays: the waits of the restarts after the first, which
		// is at once.
		wantDelays []time.Duration
	}{
		{name: "second restart", wantDelays: []time.Duration{10 * time.Second}},
		{name: "third restart", wantDelays: []time.Duration{10 * time.Second, 20 * time.Second}},
	}
	const (
		restarted = "Discovering the node's GPUs again"
		waiting   = "Waiting before the restart"
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			r := startServe(t, m.Lib(t), choice{name: "restart", data: []byte("version: v1\nflags: {restartOnDeviceUnhealthy: true}\n")})
			logs := r.logger.GetSink().(ktesting.Underlier).GetBuffer()
			count := func(msg string) int { return strings.Count(logs.String(), msg) }
			healthy := func(msg string) { t.Helper(); r.serving(t, 8, true, msg) }
			// fault faults GPU 2 (XID 48) until until holds: the event
			// set may not be registered yet.
			fault := func(until func() bool, msg string) {
				t.Helper()
				require.Eventually(t, func() bool {
					if until() {
						return true
					}
					m.InjectXID(2, 48)
					return false
				}, 20*time.Second, 100*time.Millisecond, msg)
			}
			healthy("the plugin serves")
			fault(func() bool { return count(restarted) == 1 }, "the first restart is at once")
			require.Zero(t, count(waiting))
			healthy("the plugin serves again after the first restart")
			for i, d := range tc.wantDelays {
				fault(r.clk.HasWaiters, "the next restart waits on the clock")
				require.Equal(t, i+1, count(waiting))
				require.Contains(t, logs.String(), fmt.Sprintf("delay=%q", d.String()))
				r.clk.Step(d - time.Millisecond)
				require.Never(t, func() bool { return count(restarted) > i+1 }, 200*time.Millisecond, 20*time.Millisecond, "no restart before the delay")
				require.True(t, r.clk.HasWaiters(), "still waiting")
				r.clk.Step(time.Millisecond)
				require.Eventually(t, func() bool { return count(restarted) == i+2 }, 20*time.Second, 10*time.Millisecond, "restart %d", i+2)
				healthy("every device is healthy after the restart")
			}
			rebuilds, _ := r.ev.failed()
			require.Empty(t, rebuilds, "no rebuild failed")
			r.stop(t)
		})
	}
}
