package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// podResourcesAnswer stands in for the kubelet's PodResources API: each
// read answers what was last set.
type podResourcesAnswer struct {
	mu     sync.Mutex
	answer map[types.NamespacedName]map[string]map[string][]string
	err    error
}

func (a *podResourcesAnswer) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answer, a.err
}

// set makes the answer list holdings, or fail with err.
func (a *podResourcesAnswer) set(err error, held ...sharing.Holding) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err, a.answer = err, answerOf(held...)
}

// answerOf is the PodResources answer listing held.
func answerOf(held ...sharing.Holding) map[types.NamespacedName]map[string]map[string][]string {
	out := map[types.NamespacedName]map[string]map[string][]string{}
	for _, h := range held {
		pod := types.NamespacedName{Namespace: h.Namespace, Name: h.Pod}
		if out[pod] == nil {
			out[pod] = map[string]map[string][]string{}
		}
		if out[pod][h.Container] == nil {
			out[pod][h.Container] = map[string][]string{}
		}
		out[pod][h.Container][h.Resource] = append(out[pod][h.Container][h.Resource], h.ID)
	}
	return out
}

// oneGPU is a node of one GPU, GPU-0, served in replicas under nvidia.com/gpu.
func oneGPU(t *testing.T, replicas int) (*nvml.Inventory, []sharing.Resource) {
	t.Helper()
	inv := &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}}}
	c, err := configv1.Parse(fmt.Appendf(nil, "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: %d}]}}", replicas))
	require.NoError(t, err)
	res, err := sharing.Build(inv, c)
	require.NoError(t, err)
	return inv, res
}

// A share held under an earlier name stays withheld on its replica when
// the kubelet's answer changes (a higher replica released) and across a
// reload to more replicas, with PodResources answering or not: the
// kubelet, told that replica alone is unhealthy, never sees another one
// withheld under it. Before, the share moved onto the highest free
// replica at each recompute (here ::3, then ::7 after the reload).
func TestHoldingsKeepAShareOnItsReplica(t *testing.T) {
	ctx := context.Background()
	const gpu = "nvidia.com/gpu"
	x := sharing.Holding{Namespace: "default", Pod: "x", Container: "main", Resource: gpu, ID: "GPU-0::3"}
	c := sharing.Holding{Namespace: "default", Pod: "c", Container: "main", Resource: "nvidia.com/gpu.shared", ID: "GPU-0::5"}
	inv, replicas4 := oneGPU(t, 4)
	_, replicas8 := oneGPU(t, 8)

	src := &podResourcesAnswer{}
	src.set(nil, x, c)
	h := newHoldings(src, inv, nil, replicas4, nil, nil, nil)
	_, err := h.refresh(ctx, "test")
	require.NoError(t, err)
	// ::3 held under its own name: c on the highest free, ::2.
	require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, h.of(gpu))

	src.set(nil, c) // x ended: ::3 is free
	changed, err := h.refresh(ctx, "test")
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, h.of(gpu))

	tests := []struct {
		name string
		src  Allocations
	}{
		{"reload, PodResources answering", src},
		{"reload, PodResources down", &podResourcesAnswer{err: errors.New("connection refused")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := newHoldings(tc.src, inv, nil, replicas8, h.snapshot(), h.all(), nil)
			require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, next.of(gpu))
			_, _ = next.refresh(ctx, "test")
			require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, next.of(gpu))
		})
	}
}

// Devices of a PodResources answer that are skipped (none of the node's
// GPUs, another vendor's) or counted although malformed are logged, each
// once however many reads list it; the others never. Before, they were
// skipped or counted silently.
func TestHoldingsLogOddDevicesOnce(t *testing.T) {
	inv, res := oneGPU(t, 4)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(4), ktesting.BufferLogs(true)))
	ctx := klog.NewContext(context.Background(), logger)
	hold := func(pod, res, id string) sharing.Holding {
		return sharing.Holding{Namespace: "default", Pod: pod, Container: "main", Resource: res, ID: id}
	}
	src := &podResourcesAnswer{}
	src.set(nil,
		hold("ok", "nvidia.com/gpu", "GPU-0::1"),      // its own name and ID
		hold("old", "nvidia.com/gpu.old", "GPU-0::7"), // a share under an earlier name
		hold("gone", "nvidia.com/mig-1g.5gb", "MIG-gone"),
		hold("nic", "example.com/nic", "0000:3b:00.0"),
		hold("bad", "example.com/gpu", "GPU-0::abc"),
		hold("empty", "nvidia.com/gpu", ""),
	)
	h := newHoldings(src, inv, nil, res, nil, nil, nil)
	for range 3 {
		_, err := h.refresh(ctx, "test")
		require.NoError(t, err)
	}
	// One more odd device in a later answer is logged then.
	src.set(nil, hold("gone2", "nvidia.com/gpu", "GPU-other"))
	for range 2 {
		_, err := h.refresh(ctx, "test")
		require.NoError(t, err)
	}
	logged := map[string]int{} // device -> lines
	verbosity := map[string]int{}
	for _, e := range logger.GetSink().(ktesting.Underlier).GetBuffer().Data() {
		if !strings.Contains(e.Message, "PodResources lists") {
			continue
		}
		for i := 0; i+1 < len(e.ParameterKVList); i += 2 {
			if e.ParameterKVList[i] == "device" {
				logged[e.ParameterKVList[i+1].(string)]++
				verbosity[e.ParameterKVList[i+1].(string)] = e.Verbosity
			}
		}
	}
	require.Equal(t, map[string]int{`"MIG-gone"`: 1, `"0000:3b:00.0"`: 1, `"GPU-0::abc"`: 1, `""`: 1, `"GPU-other"`: 1}, logged)
	require.Equal(t, map[string]int{`"MIG-gone"`: 0, `"0000:3b:00.0"`: 4, `"GPU-0::abc"`: 0, `""`: 0, `"GPU-other"`: 0}, verbosity)
}

// Odd devices are logged once each while the kubelet lists them, up to
// maxNoted at once, then one line says no more are; an ID the kubelet
// stops listing is forgotten, so one that comes back is logged again. The
// memory of what was logged stays bounded.
func TestHoldingsOddDevicesBounded(t *testing.T) {
	inv, res := oneGPU(t, 4)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	ctx := klog.NewContext(context.Background(), logger)
	src := &podResourcesAnswer{}
	h := newHoldings(src, inv, nil, res, nil, nil, nil)
	odd := func(n int, prefix string) []sharing.Holding {
		var held []sharing.Holding
		for i := range n {
			held = append(held, sharing.Holding{Namespace: "default", Pod: "p", Container: "main", Resource: "nvidia.com/gpu", ID: fmt.Sprintf("GPU-%s%d", prefix, i)})
		}
		return held
	}
	count := func() (lines, more int) {
		for _, e := range logger.GetSink().(ktesting.Underlier).GetBuffer().Data() {
			switch {
			case strings.Contains(e.Message, "more odd devices"):
				more++
			case strings.Contains(e.Message, "PodResources lists"):
				lines++
			}
		}
		return lines, more
	}
	for _, step := range []struct {
		name                string
		held                []sharing.Holding
		wantLines, wantMore int // totals so far
		wantTracked         int
	}{
		// 1124 odd devices > maxNoted = 1024: 1024 logged, one line more.
		{"over the bound", odd(maxNoted+100, "x"), maxNoted, 1, maxNoted},
		{"the same again", odd(maxNoted+100, "x"), maxNoted, 1, maxNoted},
		{"other devices, fewer", odd(10, "y"), maxNoted + 10, 1, 10},
		{"none", nil, maxNoted + 10, 1, 0},
		{"back again", odd(10, "y"), maxNoted + 20, 1, 10},
		{"over the bound again: said again", odd(maxNoted+1, "z"), 2*maxNoted + 20, 2, maxNoted},
	} {
		src.set(nil, step.held...)
		_, err := h.refresh(ctx, "test")
		require.NoError(t, err, step.name)
		lines, more := count()
		require.Equal(t, step.wantLines, lines, step.name)
		require.Equal(t, step.wantMore, more, step.name)
		require.Equal(t, step.wantTracked, h.noted.Len(), step.name)
	}
}

// hangingAnswer is a PodResources API that, while hang is set, does not
// answer until the read's context ends, release is closed, or its own
// limit passes (as the real client's 10 s); it counts the reads under way.
type hangingAnswer struct {
	mu      sync.Mutex
	answer  map[types.NamespacedName]map[string]map[string][]string
	hang    bool
	release chan struct{}
	limit   time.Duration
	active  int // reads under way
	most    int // the most reads ever under way at once
	reads   int
}

func (a *hangingAnswer) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	a.mu.Lock()
	a.reads++
	a.active++
	a.most = max(a.most, a.active)
	hang, release := a.hang, a.release
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.active--
		a.mu.Unlock()
	}()
	if hang {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(a.limit):
			return nil, context.DeadlineExceeded
		case <-release:
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answer, nil
}

// While the kubelet's PodResources API hangs, only the first refresh waits
// for its read to time out; the next ones wait at most stalledWait each
// for the one read under way (never more than one at a time) and keep
// what is known: the held share stays withheld. When the API answers
// again, its answer applies and refreshes wait for their reads again.
// Before, every refresh (each Allocate) waited the full timeout.
func TestHoldingsBoundedWaitWhileStalled(t *testing.T) {
	ctx := context.Background()
	const gpu = "nvidia.com/gpu"
	c := sharing.Holding{Namespace: "default", Pod: "c", Container: "main", Resource: "nvidia.com/gpu.shared", ID: "GPU-0::5"}
	inv, res := oneGPU(t, 4)
	src := &hangingAnswer{answer: answerOf(c), release: make(chan struct{}), limit: 5 * time.Second}
	h := newHoldings(src, inv, nil, res, nil, nil, nil)
	h.readTimeout, h.stalledWait = time.Second, 20*time.Millisecond
	_, err := h.refresh(ctx, "test")
	require.NoError(t, err)
	want := map[string]sharing.Holding{"GPU-0::3": c}
	require.Equal(t, want, h.of(gpu))

	src.mu.Lock()
	src.hang = true
	src.mu.Unlock()
	start := time.Now()
	_, err = h.refresh(ctx, "test")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "the first read waits for its timeout")
	// From now on a read answers only at release (an hour at most): a
	// refresh that waited for it would never return. 10 more must each
	// return (after stalledWait, 20 ms), keeping what is known.
	h.mu.Lock()
	h.readTimeout = time.Hour
	h.mu.Unlock()
	src.mu.Lock()
	src.limit = time.Hour
	src.mu.Unlock()
	for i := range 10 {
		done := make(chan error, 1)
		go func() {
			_, err := h.refresh(ctx, "test")
			done <- err
		}()
		select {
		case err := <-done:
			require.ErrorIs(t, err, errReadUnderWay, "refresh %d", i)
		case <-time.After(time.Minute):
			require.FailNow(t, "refresh waited for the hung read", "refresh %d", i)
		}
		require.Equal(t, want, h.of(gpu), "what is known stays")
	}
	src.mu.Lock()
	require.Equal(t, 1, src.most, "one read at a time")
	// The API answers again, without the holder.
	src.hang, src.answer = false, answerOf()
	close(src.release)
	src.mu.Unlock()
	require.Eventually(t, func() bool {
		_, err := h.refresh(ctx, "test")
		return err == nil && len(h.of(gpu)) == 0
	}, 5*time.Second, 10*time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.False(t, h.stalled)
}

// While PodResources keeps failing nothing prunes what Allocate gave since
// the last answer: the record keeps one entry per device (its latest
// Allocate), so it stays within the node's devices however many Allocates
// the outage sees. Before, it grew by one entry per device per Allocate
// (10,000 entries for one device here). The first answer after the
// outage prunes it as before.
func TestHoldingsSinceBoundedWhileReadsFail(t *testing.T) {
	ctx := context.Background()
	inv, res := oneGPU(t, 4)
	src := &podResourcesAnswer{}
	src.set(nil)
	h := newHoldings(src, inv, nil, res, nil, nil, nil)
	h.stalledWait = time.Hour // each failed read is waited for (no timing)
	_, err := h.refresh(ctx, "test")
	require.NoError(t, err)

	src.set(errors.New("PodResources down"))
	ids := []string{"GPU-0::0", "GPU-0::1"}
	for i := range 1000 {
		_, err := h.refresh(ctx, "test")
		require.Error(t, err)
		h.noteAllocated("nvidia.com/gpu", ids[i%2:i%2+1])
	}
	h.mu.Lock()
	require.Len(t, h.since, 2, "one entry per device given") // 2 replicas, 1000 Allocates
	h.mu.Unlock()
	require.Len(t, h.snapshot(), 2)

	// Two answers later (the record is kept until a read started after
	// the next one), what the kubelet lists is all that is known.
	src.set(nil)
	for range 2 {
		_, err := h.refresh(ctx, "test")
		require.NoError(t, err)
	}
	h.mu.Lock()
	require.Empty(t, h.since)
	h.mu.Unlock()
}

// The handoff takes an answer as "now" only from a read started after it
// asked (handoffReads): while the API counts as down a caller joins the
// read under way, which may have started before (up to the read timeout
// earlier), and an older listing may name a pod deleted and created again
// under its name. answerAfter tells them apart by read number.
func TestHoldingsAnswerAfter(t *testing.T) {
	ctx := context.Background()
	c := sharing.Holding{Namespace: "default", Pod: "c", Container: "main", Resource: "nvidia.com/gpu.shared", ID: "GPU-0::5"}
	inv, res := oneGPU(t, 4)
	src := &podResourcesAnswer{}
	src.set(nil, c)
	h := newHoldings(src, inv, nil, res, nil, nil, nil)
	h.stalledWait = time.Hour
	before := h.readsStarted() // 0
	_, err := h.refresh(ctx, "test")
	require.NoError(t, err)
	answer, fresh := h.answerAfter(before)
	require.True(t, fresh, "read 1 started after the first 0")
	require.Equal(t, answerOf(c), answer)
	// Asked after read 1 started (before = 1): read 1's answer is older.
	_, fresh = h.answerAfter(h.readsStarted())
	require.False(t, fresh)
}
