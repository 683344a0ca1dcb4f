package app

import (
	"context"
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
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// rebuildFailures records the failed rebuilds (rebuildEvents) and the
// refused configs (configEvents).
type rebuildFailures struct {
	refusals
	failMu  sync.Mutex
	retries []time.Duration
	errs    []string
}

func (r *rebuildFailures) RebuildFailed(err error, retryIn time.Duration) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	r.retries = append(r.retries, retryIn)
	r.errs = append(r.errs, err.Error())
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
			// skip: the calls that answer before the failures begin.
			var (
				countMu     sync.Mutex
				skip, fails int
			)
			count := m.Server().DeviceGetCountFunc
			m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) {
				countMu.Lock()
				defer countMu.Unlock()
				switch {
				case skip > 0:
					skip--
				case fails > 0:
					fails--
					return 0, gonvml.ERROR_UNKNOWN
				}
				return count()
			}
			lib := m.Lib(t)
			dir := t.TempDir()

			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
			defer cancel()
			clk := testingclock.NewFakeClock(time.Now())
			ev := &rebuildFailures{}
			fs := NewCommand().Flags()
			o := &options{configDir: t.TempDir(), chosen: &choice{name: "ts", data: []byte(ts)}, configEvents: ev,
				rebuildRetry: wait.Backoff{Duration: time.Minute, Factor: 2, Steps: math.MaxInt32, Cap: time.Hour}, rebuildClock: clk}
			cfg, err := o.loadConfig(ctx, fs)
			require.NoError(t, err)
			reload := make(chan choice)
			done := make(chan error, 1)
			go func() {
				done <- o.serve(ctx, fs, deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir}, reload)
			}()
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
			countMu.Lock()
			skip, fails = 1, tc.failures
			countMu.Unlock()
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

			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Fatal("the plugin did not stop")
			}
		})
	}
}
