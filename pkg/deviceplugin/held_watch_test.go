package deviceplugin

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/sharing"
)

// countedAnswer is a podResourcesAnswer that counts its reads.
type countedAnswer struct {
	podResourcesAnswer
	reads atomic.Int64
}

func (a *countedAnswer) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	a.reads.Add(1)
	return a.podResourcesAnswer.Allocated(ctx)
}

// watchedHoldings runs watchHeld of a Manager of one GPU in 4 replicas
// under nvidia.com/gpu, on a fake clock, polling every 5 s with a 30 s
// resync; carried is what it starts from (Options.Held). The poll's timer
// is the clock's only waiter: it is armed when Waiters is 1.
func watchedHoldings(t *testing.T, src Allocations, carried []sharing.Holding) (*Manager, *testingclock.FakeClock, *PodEnds) {
	t.Helper()
	inv, res := oneGPU(t, 4)
	clk := testingclock.NewFakeClock(time.Now())
	ends := NewPodEnds()
	m := &Manager{opts: Options{Clock: clk, WithheldPollPeriod: 5 * time.Second, ResyncPeriod: 30 * time.Second, PodEnds: ends},
		held: newHoldings(src, inv, nil, res, carried, nil, nil), heldAsk: make(chan string, 1)}
	// Each refresh waits for its read (they answer at once here): no real
	// time decides a step.
	m.held.stalledWait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.watchHeld(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return m, clk, ends
}

// armed waits until the poll's timer is armed again: its last fire was
// handled.
func armed(t *testing.T, clk *testingclock.FakeClock) {
	t.Helper()
	require.Eventually(t, func() bool { return clk.Waiters() == 1 }, 10*time.Second, time.Millisecond)
}

// While a device is withheld, PodResources is read every poll period;
// each failed read doubles the wait, up to the resync period, and a read
// that succeeds brings it back to the period. The clock is stepped to
// just before each read is due (nothing read) and then onto it (one read).
func TestWatchHeldPollsWhileWithholdingWithBackoff(t *testing.T) {
	c := sharing.Holding{Namespace: "default", Pod: "c", Container: "main", Resource: "nvidia.com/gpu.shared", ID: "GPU-0::5"}
	src := &countedAnswer{}
	src.set(errors.New("connection refused"))
	// The previous Manager knew c: GPU-0::3 is withheld, the API is down.
	m, clk, _ := watchedHoldings(t, src, []sharing.Holding{c})
	require.True(t, m.held.withholding())
	steps := []struct {
		wait   time.Duration // until the read is due
		answer bool          // the read succeeds
	}{
		{5 * time.Second, false},  // the period
		{10 * time.Second, false}, // 2 x 5
		{20 * time.Second, false}, // 2 x 10
		{30 * time.Second, false}, // 2 x 20 = 40, at most the resync's 30
		{30 * time.Second, true},  // still 30; this read succeeds
		{5 * time.Second, true},   // the period again
		{5 * time.Second, true},
	}
	for i, s := range steps {
		armed(t, clk)
		if s.answer {
			src.set(nil, c)
		}
		clk.Step(s.wait - time.Millisecond)
		require.Equal(t, 1, clk.Waiters(), "step %d: not due yet", i)
		require.Equal(t, int64(i), src.reads.Load(), "step %d: not due yet", i)
		clk.Step(time.Millisecond)
		require.Eventually(t, func() bool { return src.reads.Load() == int64(i+1) }, 10*time.Second, time.Millisecond, "step %d", i)
	}
	armed(t, clk)
	require.Equal(t, map[string]sharing.Holding{"GPU-0::3": c}, m.held.of("nvidia.com/gpu"))
}

// With nothing withheld, neither the poll nor a pod's end reads
// PodResources; with a device withheld, a pod's end reads it at once (the
// clock does not move), and a holder gone releases the device.
func TestWatchHeldReadsOnlyWhileWithholding(t *testing.T) {
	c := sharing.Holding{Namespace: "default", Pod: "c", Container: "main", Resource: "nvidia.com/gpu.shared", ID: "GPU-0::5"}
	tests := []struct {
		name      string
		carried   []sharing.Holding
		wantReads int64
	}{
		{"nothing withheld", []sharing.Holding{}, 0},
		{"a device withheld", []sharing.Holding{c}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &countedAnswer{}
			src.set(nil) // c is gone
			m, clk, ends := watchedHoldings(t, src, tc.carried)
			armed(t, clk)
			ends.Deleted()
			// Taken, and handled before the poll below (one goroutine).
			require.Eventually(t, func() bool { return len(ends.c) == 0 }, 10*time.Second, time.Millisecond)
			require.Eventually(t, func() bool { return src.reads.Load() == tc.wantReads }, 10*time.Second, time.Millisecond)
			require.False(t, m.held.withholding())
			// Nothing withheld now: the polls read nothing more.
			for range 3 {
				clk.Step(5 * time.Second)
				armed(t, clk)
			}
			require.Equal(t, tc.wantReads, src.reads.Load())
		})
	}
}

// A read slower than the wait (the API counts as down, the read is still
// under way) is no failure: the poll keeps its delay instead of doubling
// it, so a kubelet that answers, slowly, releases a withheld device at the
// poll period, not at the resync's 30 s. Before, the delay doubled.
func TestWatchHeldSlowReadKeepsTheDelay(t *testing.T) {
	c := sharing.Holding{Namespace: "default", Pod: "c", Container: "main", Resource: "nvidia.com/gpu.shared", ID: "GPU-0::5"}
	// Reads fail at once (hang with no time left) until limit is raised.
	src := &hangingAnswer{answer: answerOf(c), hang: true, release: make(chan struct{})}
	m, clk, _ := watchedHoldings(t, src, []sharing.Holding{c})
	reads := func() int {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.reads
	}

	armed(t, clk)
	clk.Step(5 * time.Second) // read 1 fails: the delay doubles to 10 s
	require.Eventually(t, func() bool { return reads() == 1 }, 10*time.Second, time.Millisecond)

	armed(t, clk)
	src.mu.Lock()
	src.limit = time.Hour // read 2 hangs until released
	src.mu.Unlock()
	m.held.mu.Lock()
	m.held.stalledWait = time.Millisecond // the poll stops waiting for it
	m.held.mu.Unlock()
	clk.Step(10 * time.Second)
	require.Eventually(t, func() bool { return reads() == 2 }, 10*time.Second, time.Millisecond)
	armed(t, clk)      // the poll gave up waiting: errReadUnderWay
	close(src.release) // read 2 answers, c still held
	require.Eventually(t, func() bool {
		m.held.mu.Lock()
		defer m.held.mu.Unlock()
		return m.held.pending == nil && !m.held.stalled
	}, 10*time.Second, time.Millisecond)

	// The delay stayed 10 s (2 x 10 = 20 s before): read 3 is due then.
	clk.Step(10*time.Second - time.Millisecond)
	require.Equal(t, 2, reads(), "not due yet")
	clk.Step(time.Millisecond)
	require.Eventually(t, func() bool { return reads() == 3 }, 10*time.Second, time.Millisecond)
}
