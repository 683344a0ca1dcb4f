package mps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/mps/mpstest"
)

// healthLog records OnHealth calls.
type healthLog struct {
	mu     sync.Mutex
	events []string
	ch     chan string
}

func newHealthLog() *healthLog { return &healthLog{ch: make(chan string, 100)} }

func (h *healthLog) on(_ context.Context, g GPU, err error) {
	e := g.UUID + " healthy"
	if err != nil {
		e = g.UUID + " unhealthy"
	}
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
	h.ch <- e
}

func (h *healthLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.events
	h.events = nil
	for len(h.ch) > 0 {
		<-h.ch
	}
	return out
}

const (
	gpuA = "GPU-aaaaaaaa-0000-0000-0000-000000000001"
	gpuB = "GPU-bbbbbbbb-0000-0000-0000-000000000002"
)

func testGPUs() []GPU {
	return []GPU{
		{Index: 0, UUID: gpuA, MemoryMiB: 40960, Replicas: 4}, // 100/4 = 25 %, 40960/4 = 10240 MiB
		{Index: 1, UUID: gpuB, MemoryMiB: 81920, Replicas: 3}, // 100/3 = 33 %, 81920/3 = 27306 MiB
	}
}

func newTestRunner(t *testing.T, fake *mpstest.Fake, clk *testingclock.FakeClock, h *healthLog) (*Runner, Root) {
	t.Helper()
	root := Root(filepath.Join(t.TempDir(), "mps"))
	r, err := New(testGPUs(), Options{Binary: fake.Binary, Root: root, Clock: clk, CheckInterval: 10 * time.Second,
		InitialBackoff: 15 * time.Second, MaxBackoff: time.Minute, OnHealth: h.on})
	require.NoError(t, err)
	return r, root
}

// startup is what a daemon is sent when it starts: NVIDIA's commands.
func startup(root Root, uuid, mem, pct string) []string {
	return []string{
		"-d pipe=" + root.PipeDir(uuid) + " log=" + root.LogDir(uuid),
		"set_default_device_pinned_mem_limit " + uuid + " " + mem,
		"set_default_active_thread_percentage " + pct,
		"get_default_active_thread_percentage",
	}
}

// TestDaemonLifecycle: start -> crash -> unhealthy -> restart -> healthy,
// a daemon that fails to start backs off, a daemon that lost its settings
// is restarted, and Stop quits every daemon; every command is recorded by
// the fake control program.
func TestDaemonLifecycle(t *testing.T) {
	ctx := context.Background()
	fake := mpstest.New(t)
	clk := testingclock.NewFakeClock(time.Unix(1_700_000_000, 0))
	h := newHealthLog()
	r, root := newTestRunner(t, fake, clk, h)

	r.Start(ctx)
	require.Equal(t, []string{gpuA + " healthy", gpuB + " healthy"}, h.take())
	require.Equal(t, startup(root, gpuA, "10240M", "25"), fake.RecordOf(t, gpuA))
	require.Equal(t, startup(root, gpuB, "27306M", "33"), fake.RecordOf(t, gpuB))
	for _, dir := range []string{root.PipeDir(gpuA), root.LogDir(gpuA), root.ShmDir()} {
		require.DirExists(t, dir)
	}

	// A check pass with both alive sends one check each and changes nothing.
	clk.Step(10 * time.Second)
	r.pass(ctx)
	require.Empty(t, h.take())
	require.Equal(t, "get_default_active_thread_percentage", last(fake.RecordOf(t, gpuA)))

	// Crash A: the next check finds it dead, reports it, and restarts it.
	fake.Crash(t, root.PIDFile(gpuA))
	before := len(fake.RecordOf(t, gpuA))
	clk.Step(10 * time.Second)
	r.pass(ctx)
	require.Equal(t, []string{gpuA + " unhealthy", gpuA + " healthy"}, h.take())
	want := append([]string{"get_default_active_thread_percentage", "quit"}, startup(root, gpuA, "10240M", "25")...)
	require.Equal(t, want, fake.RecordOf(t, gpuA)[before:])

	// Crash A while it cannot start: unhealthy, retried after the backoff
	// (15 s: not at +10 s, at +20 s), healthy once it starts again.
	fake.FailStarts(t, gpuA, true)
	fake.Crash(t, root.PIDFile(gpuA))
	clk.Step(10 * time.Second)
	r.pass(ctx)
	require.Equal(t, []string{gpuA + " unhealthy"}, h.take())
	starts := countPrefix(fake.RecordOf(t, gpuA), "-d ")
	clk.Step(10 * time.Second) // 10 s after the failure < 15 s
	r.pass(ctx)
	require.Equal(t, starts, countPrefix(fake.RecordOf(t, gpuA), "-d "), "no restart before the backoff")
	clk.Step(10 * time.Second) // 20 s >= 15 s: tried, fails again; next wait 30 s
	r.pass(ctx)
	require.Equal(t, starts+1, countPrefix(fake.RecordOf(t, gpuA), "-d "))
	require.Empty(t, h.take(), "still unhealthy: no change to report")
	fake.FailStarts(t, gpuA, false)
	clk.Step(20 * time.Second) // 20 s < 30 s
	r.pass(ctx)
	require.Equal(t, starts+1, countPrefix(fake.RecordOf(t, gpuA), "-d "))
	clk.Step(10 * time.Second) // 30 s
	r.pass(ctx)
	require.Equal(t, []string{gpuA + " healthy"}, h.take())

	// B's daemon restarted without our settings (100 %): restarted.
	require.NoError(t, os.WriteFile(filepath.Join(root.PipeDir(gpuB), "atp"), []byte("100\n"), 0o644))
	clk.Step(10 * time.Second)
	r.pass(ctx)
	require.Equal(t, []string{gpuB + " unhealthy", gpuB + " healthy"}, h.take())

	r.Stop(ctx)
	require.Equal(t, "quit", last(fake.RecordOf(t, gpuA)))
	require.Equal(t, "quit", last(fake.RecordOf(t, gpuB)))
	require.NoFileExists(t, root.PIDFile(gpuA))
	require.NoFileExists(t, root.PIDFile(gpuB))
}

// TestSupervise: the clock's ticks drive the checks; a crash is reported
// and repaired without anyone calling pass, and the daemons quit when the
// context ends.
func TestSupervise(t *testing.T) {
	fake := mpstest.New(t)
	clk := testingclock.NewFakeClock(time.Unix(1_700_000_000, 0))
	h := newHealthLog()
	r, root := newTestRunner(t, fake, clk, h)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	require.Len(t, h.take(), 2)
	done := make(chan struct{})
	go func() { defer close(done); r.Supervise(ctx) }()
	require.Eventually(t, clk.HasWaiters, 5*time.Second, time.Millisecond)

	fake.Crash(t, root.PIDFile(gpuB))
	clk.Step(10 * time.Second)
	require.Equal(t, gpuB+" unhealthy", wait(t, h.ch))
	require.Equal(t, gpuB+" healthy", wait(t, h.ch))

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Supervise did not return")
	}
	require.Equal(t, "quit", last(fake.RecordOf(t, gpuA)))
	require.Equal(t, "quit", last(fake.RecordOf(t, gpuB)))
}

// TestNewRefusesBadInput: a missing or unusable binary and GPUs the runner
// cannot serve are errors at construction, not crashes later.
func TestNewRefusesBadInput(t *testing.T) {
	fake := mpstest.New(t)
	root := Root(t.TempDir())
	notExec := filepath.Join(t.TempDir(), "nvidia-cuda-mps-control")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	good := []GPU{{Index: 0, UUID: gpuA, Replicas: 2}}
	tests := []struct {
		name    string
		gpus    []GPU
		opts    Options
		wantErr string
	}{
		{"missing binary", good, Options{Binary: "/nonexistent/nvidia-cuda-mps-control", Root: root}, `MPS control binary "/nonexistent/nvidia-cuda-mps-control"`},
		{"not in PATH", good, Options{Binary: "no-such-mps-control-in-path", Root: root}, "executable file not found"},
		{"not executable", good, Options{Binary: notExec, Root: root}, "permission denied"},
		{"relative root", good, Options{Binary: fake.Binary, Root: "run/mps"}, `MPS root "run/mps": must be an absolute path`},
		{"one replica", []GPU{{Index: 0, UUID: gpuA, Replicas: 1}}, Options{Binary: fake.Binary, Root: root}, "1 MPS replicas, want at least 2"},
		{"no UUID", []GPU{{Index: 3, Replicas: 2}}, Options{Binary: fake.Binary, Root: root}, "GPU 3: UUID \"\" cannot name"},
		{"UUID with a slash", []GPU{{Index: 3, UUID: "GPU-../x", Replicas: 2}}, Options{Binary: fake.Binary, Root: root}, "cannot name an MPS pipe directory"},
		{"twice", []GPU{good[0], good[0]}, Options{Binary: fake.Binary, Root: root}, "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.gpus, tc.opts)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	r, err := New(good, Options{Binary: fake.Binary, Root: root})
	require.NoError(t, err)
	require.Equal(t, fake.Binary, r.Binary())
}

// TestStartFailureIsReported: a binary that fails at once leaves the GPU
// unhealthy with its output in the error; nothing panics or hangs.
func TestStartFailureIsReported(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "nvidia-cuda-mps-control")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\necho 'no NVIDIA driver' >&2\nexit 3\n"), 0o755))
	var got error
	r, err := New([]GPU{{Index: 0, UUID: gpuA, Replicas: 2}}, Options{Binary: bin, Root: Root(t.TempDir()),
		OnHealth: func(_ context.Context, _ GPU, err error) { got = err }})
	require.NoError(t, err)
	r.Start(context.Background())
	require.ErrorContains(t, got, "exit status 3: no NVIDIA driver")
}

func TestGPUShares(t *testing.T) {
	for _, tc := range []struct {
		g        GPU
		pct      int
		mem      uint64
		commands []string
	}{
		{GPU{UUID: "GPU-x", MemoryMiB: 81559, Replicas: 10}, 10, 8155, []string{"set_default_device_pinned_mem_limit GPU-x 8155M", "set_default_active_thread_percentage 10"}},
		{GPU{UUID: "GPU-x", MemoryMiB: 16384, Replicas: 48}, 2, 341, nil},                             // 100/48 = 2; 16384/48 = 341
		{GPU{UUID: "GPU-x", Replicas: 7}, 14, 0, []string{"set_default_active_thread_percentage 14"}}, // unknown memory: no limit
	} {
		require.Equal(t, tc.pct, tc.g.ThreadPercentage())
		require.Equal(t, tc.mem, tc.g.PinnedMemLimitMiB())
		if tc.commands != nil {
			require.Equal(t, tc.commands, tc.g.commands())
		}
	}
}

func wait(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no health report")
		return ""
	}
}

func last(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

func countPrefix(l []string, p string) int {
	n := 0
	for _, s := range l {
		if len(s) >= len(p) && s[:len(p)] == p {
			n++
		}
	}
	return n
}

// TestStopAfterCutShortStart: a daemon whose setup was cut short by the
// end of the context (the plugin stopping while it starts) is still quit.
func TestStopAfterCutShortStart(t *testing.T) {
	fake := mpstest.New(t)
	// The settings hang (until the context ends); the rest is the fake's.
	hang := filepath.Join(t.TempDir(), "nvidia-cuda-mps-control")
	require.NoError(t, os.WriteFile(hang, []byte(`#!/bin/sh
if [ "$1" = "-d" ]; then exec '`+fake.Binary+`' -d; fi
read -r cmd
case "$cmd" in set_*) exec sleep 30 ;; esac
echo "$cmd" | exec '`+fake.Binary+`'
`), 0o755))
	root := Root(t.TempDir())
	r, err := New([]GPU{{Index: 0, UUID: gpuA, Replicas: 2}}, Options{Binary: hang, Root: root})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	r.Start(ctx)
	require.True(t, r.daemons[0].launched, "-d ran")
	require.FileExists(t, root.PIDFile(gpuA))
	r.Stop(context.Background())
	require.Equal(t, "quit", last(fake.RecordOf(t, gpuA)))
	require.NoFileExists(t, root.PIDFile(gpuA))
}

// TestComputeMode: EXCLUSIVE_PROCESS before each start, DEFAULT after
// quit, as NVIDIA's daemon does; a failure to set it (no privileges) is
// logged and the daemon still runs.
func TestComputeMode(t *testing.T) {
	fake := mpstest.New(t)
	var calls []string
	fail := false
	set := func(uuid string, exclusive bool) error {
		calls = append(calls, fmt.Sprintf("%s %v", uuid, exclusive))
		if fail {
			return errors.New("Insufficient Permissions")
		}
		return nil
	}
	h := newHealthLog()
	r, err := New([]GPU{{Index: 0, UUID: gpuA, Replicas: 2}}, Options{Binary: fake.Binary, Root: Root(t.TempDir()),
		OnHealth: h.on, SetExclusiveProcess: set})
	require.NoError(t, err)
	r.Start(context.Background())
	r.Stop(context.Background())
	require.Equal(t, []string{gpuA + " true", gpuA + " false"}, calls)

	fail, calls = true, nil
	r.Start(context.Background())
	require.Equal(t, []string{gpuA + " healthy"}, h.take()[1:], "started in spite of the compute mode")
	r.Stop(context.Background())
	require.Equal(t, []string{gpuA + " true", gpuA + " false"}, calls)
}
