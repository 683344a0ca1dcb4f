package nodepublish_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
)

// lateAllocations is a kubelet that records an allocation only after the
// plugin's Allocate has returned (the v1.37 device manager inserts the
// devices into its podDevices once the RPC answered): until record, its
// answer lists nothing.
type lateAllocations struct {
	mu       sync.Mutex
	reads    int
	recorded map[types.NamespacedName]map[string]map[string][]string
}

func (a *lateAllocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reads++
	return a.recorded, nil
}

func (a *lateAllocations) readCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reads
}

func (a *lateAllocations) record(m map[types.NamespacedName]map[string]map[string][]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recorded = m
}

// TestAllocationListedAfterItsKickIsReported: the refresh an Allocate asks
// for reads the kubelet's PodResources at once, and the kubelet records the
// allocation only once the Allocate has answered, so that read often comes
// first. The report then lacked the running pod until the next periodic
// refresh (30 s): meanwhile the scheduler saw the devices the pod holds
// free, and a pod not given its scheduled set that ended within the period
// never got its ScheduledDevicesNotHonoured event nor its count. The
// publisher now reads again, shortly, until the kubelet lists what was
// allocated (or a bound passes).
func TestAllocationListedAfterItsKickIsReported(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	alloc := &lateAllocations{}
	clk := testingclock.NewFakeClock(time.Unix(1764500000, 0))
	events := record.NewFakeRecorder(10)
	metrics := &countingRecorder{}
	short := pod("short", "uid-short", []string{"GPU-a"})
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", PodResources: alloc, Pods: pods{short},
		InUse: true, InUseInterval: time.Hour, Clock: clk, Recorder: events, Metrics: metrics})
	src := &flappingSource{healthy: true, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, src); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { return alloc.readCount() >= 1 }, 10*time.Second, time.Millisecond, "the report at start")

	// The kubelet gave the pod GPU-b, not its scheduled GPU-a; its
	// Allocate asks for a refresh, whose read comes before the kubelet
	// recorded the allocation.
	before := alloc.readCount()
	p.KickAllocated("nvidia.com/gpu", [][]string{{"GPU-b"}})
	require.Eventually(t, func() bool { return alloc.readCount() > before }, 10*time.Second, time.Millisecond, "the kicked read")
	alloc.record(map[types.NamespacedName]map[string]map[string][]string{
		{Namespace: "default", Name: "short"}: {"main": {"nvidia.com/gpu": {"GPU-b"}}},
	})

	// Well within the periodic refresh (an hour here), the report names
	// the pod and the pod is told.
	require.Eventually(t, func() bool {
		clk.Step(100 * time.Millisecond)
		n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			return false
		}
		u, err := protocol.DecodeInUse(n.Annotations[protocol.InUseAnnotation])
		return err == nil && len(u.Pods) == 1 && u.Pods[0].UID == "uid-short"
	}, 10*time.Second, 5*time.Millisecond, "the pod in the report before the periodic refresh")
	require.Less(t, clk.Since(time.Unix(1764500000, 0)), time.Minute)
	select {
	case ev := <-events.Events:
		require.True(t, strings.Contains(ev, nodepublish.ReasonScheduledSetNotHonoured), ev)
	case <-time.After(10 * time.Second):
		t.Fatal("no ScheduledDevicesNotHonoured event")
	}
	require.Equal(t, int32(1), metrics.missed.Load())

	// Listed: the publisher stops reading again until the next kick or
	// tick.
	reads := alloc.readCount()
	for range 50 {
		clk.Step(time.Second)
		time.Sleep(time.Millisecond)
	}
	require.LessOrEqual(t, alloc.readCount(), reads+1, "reads went on once the allocation was listed")
}

// countingRecorder counts not-honoured pods, safe for Run's goroutine.
type countingRecorder struct{ missed atomic.Int32 }

func (r *countingRecorder) SetPodDevices([]nodepublish.PodDevice) {}
func (r *countingRecorder) HandoffNotHonoured(string)             { r.missed.Add(1) }
func (r *countingRecorder) MalformedDevice(string)                {}
