package nodepublish_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// racySource flips GPU 0's health inside the next HealthChanged call once
// armed: another goroutine changing health just as Run takes the next
// change's channel.
type racySource struct {
	mu      sync.Mutex
	healthy bool
	changed chan struct{}
	armed   bool
}

func (s *racySource) Node() *topology.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Healthy: s.healthy}}, Links: links(1, nil)}
}
func (s *racySource) GFD() *gfd.Node          { return nil }
func (s *racySource) ResourceNames() []string { return []string{"nvidia.com/gpu"} }
func (s *racySource) HealthChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.armed {
		s.armed = false
		s.healthy = !s.healthy
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return s.changed
}

// TestHealthChangeWhileResubscribingIsPublished: a change made as Run takes
// a new HealthChanged channel (or, when Run takes none after a kick, just
// after) is published. A non-blocking check of the old channel after each
// wake-up, the first fix of the lost change, still lost this one (found by
// review); Run now takes a new channel only when the old one fired, before
// it reads the node.
func TestHealthChangeWhileResubscribingIsPublished(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", PodResources: &hookedAllocations{}, Topology: true, InUse: true,
		InUseInterval: time.Hour, Clock: testingclock.NewFakeClock(time.Unix(1764500000, 0))})
	src := &racySource{healthy: true, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, src); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	published := func(healthy bool) func() bool {
		return func() bool {
			n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
			if err != nil {
				return false
			}
			topo, err := protocol.DecodeTopology(n.Annotations[protocol.TopologyAnnotation])
			return err == nil && len(topo.GPUs) == 1 && topo.GPUs[0].Healthy == healthy
		}
	}
	require.Eventually(t, published(true), 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // Run is parked in its select
	src.mu.Lock()
	src.armed = true
	src.mu.Unlock()
	p.Kick() // Run wakes on the kick, checks the old channel (open), loops, and the change lands as it subscribes
	time.Sleep(200 * time.Millisecond)
	src.mu.Lock()
	if src.armed { // Run did not subscribe again: the change comes now
		src.armed = false
		src.healthy = !src.healthy
		close(src.changed)
		src.changed = make(chan struct{})
	}
	src.mu.Unlock()
	require.Eventually(t, published(false), 3*time.Second, 10*time.Millisecond, "GPU 0 went unhealthy; never published")
}
