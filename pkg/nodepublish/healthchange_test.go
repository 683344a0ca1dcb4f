package nodepublish_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// flappingSource is a device plugin whose GPU 0 changes health on flip.
type flappingSource struct {
	mu      sync.Mutex
	healthy bool
	changed chan struct{}
}

func (s *flappingSource) Node() *topology.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Healthy: s.healthy}}, Links: links(1, nil)}
}
func (s *flappingSource) GFD() *gfd.Node          { return nil }
func (s *flappingSource) ResourceNames() []string { return []string{"nvidia.com/gpu"} }
func (s *flappingSource) HealthChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// flip changes GPU 0's health and wakes HealthChanged's takers.
func (s *flappingSource) flip() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.healthy = !s.healthy
	close(s.changed)
	s.changed = make(chan struct{})
}

// hookedAllocations answers no allocations and calls hook, when set, once.
type hookedAllocations struct {
	mu   sync.Mutex
	hook func()
}

func (a *hookedAllocations) arm(hook func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hook = hook
}

func (a *hookedAllocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	a.mu.Lock()
	hook := a.hook
	a.hook = nil
	a.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil, nil
}

// TestHealthChangeBesideAKickIsPublished: a health change that comes while
// the in-use report is refreshed, together with a kick (an Allocate), leaves
// two of Run's wake-ups ready at once. select takes one; when it took the
// kick, the next round took the next change's channel and the GPU's new
// health was never published (TestPublish in pkg/deviceplugin failed so,
// about 1 run in 60 under load). Each of 10 rounds flips GPU 0 and kicks
// inside the PodResources read: before the fix about half the rounds lost
// the change (all 10 pass by chance 1 in 2^10).
func TestHealthChangeBesideAKickIsPublished(t *testing.T) {
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	alloc := &hookedAllocations{}
	p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", PodResources: alloc, Topology: true, InUse: true,
		InUseInterval: time.Hour, Clock: testingclock.NewFakeClock(time.Unix(1764500000, 0))})
	src := &flappingSource{healthy: true, changed: make(chan struct{})}
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
	require.Eventually(t, published(true), 10*time.Second, time.Millisecond, "published at start")
	want := true
	for round := range 10 {
		want = !want
		hooked := make(chan struct{})
		alloc.arm(func() {
			src.flip()
			p.Kick()
			close(hooked)
		})
		p.Kick()
		<-hooked
		require.Eventually(t, published(want), 5*time.Second, time.Millisecond, "round %d: GPU 0 healthy=%v published", round, want)
	}
}
