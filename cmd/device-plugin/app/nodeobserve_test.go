package app

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// oneGPU is a nodepublish.Source serving one healthy GPU.
type oneGPU struct{}

func (oneGPU) Node() *topology.Node {
	return &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true}},
		Links: [][]topology.Link{{{}}}}
}
func (oneGPU) GFD() *gfd.Node                 { return nil }
func (oneGPU) ResourceNames() []string        { return []string{"nvidia.com/gpu"} }
func (oneGPU) HealthChanged() <-chan struct{} { return nil }

// countingObserver counts the Nodes the informer hands the publisher, by
// their topology annotation, and passes them on.
type countingObserver struct {
	next nodeObserver
	mu   sync.Mutex
	seen map[string]int
}

func (c *countingObserver) Observe(ctx context.Context, n *corev1.Node) {
	c.mu.Lock()
	c.seen[n.Annotations[protocol.TopologyAnnotation]+"|"+n.Labels["team"]]++
	c.mu.Unlock()
	c.next.Observe(ctx, n)
}

func (c *countingObserver) saw(topologyValue, team string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[topologyValue+"|"+team] > 0
}

// topologyApplies counts the publisher's server-side applies to the node.
func topologyApplies(c *k8sfake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if p, ok := a.(k8stesting.PatchActionImpl); ok && a.GetResource().Resource == "nodes" &&
			p.GetPatchType() == types.ApplyPatchType && len(p.PatchOptions.DryRun) == 0 {
			n++
		}
	}
	return n
}

// TestNodeWatchRepairsTopology: with per-node configs the plugin watches
// its Node for the config label (watchNodeLabel); that informer now also
// hands each added or updated Node to the publisher (observeNodes ->
// Publisher.Observe), so a topology annotation edited or removed on the
// Node is repaired one retry delay later, not at the publisher's next
// read of the node (a RelabelInterval, 60 s, away without labels). A Node
// update that leaves the annotation as applied writes nothing. Without
// per-node configs there is no informer to feed (and no RBAC watch).
func TestNodeWatchRepairsTopology(t *testing.T) {
	const delay = time.Second // Retry's first step: the repair's delay
	tests := []struct {
		name   string
		change func(n *corev1.Node)
		// wantApplies: the start's apply + the repair's (1 + 1 = 2), or
		// the start's alone (1).
		wantApplies int
	}{
		{"annotation edited", func(n *corev1.Node) {
			n.Annotations[protocol.TopologyAnnotation] = `{"version":"v1","node":{"gpus":[],"links":[],"generation":1}}`
		}, 2},
		{"annotation removed", func(n *corev1.Node) { delete(n.Annotations, protocol.TopologyAnnotation) }, 2},
		{"annotation garbled", func(n *corev1.Node) { n.Annotations[protocol.TopologyAnnotation] = "{not json" }, 2},
		{"another label changed", func(n *corev1.Node) { n.Labels["team"] = "b" }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := configMapDir(t, map[string]string{"ts": tsConfig})
			client := k8sfake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1",
				Labels: map[string]string{DefaultConfigLabel: "ts", "team": "a"}}})
			ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), ktesting.NewLogger(t, ktesting.NewConfig())))
			o := options{configDir: dir, nodeName: "n1", nodeLabel: DefaultConfigLabel, fallbacks: []string{"named", "single"}}
			_, labels, err := o.choosePerNode(ctx, NewCommand().Flags(), client)
			require.NoError(t, err)

			clk := testingclock.NewFakeClock(time.Unix(1764500000, 0))
			p := nodepublish.New(nodepublish.Options{Client: client, NodeName: "n1", Topology: true, Clock: clk,
				Retry: wait.Backoff{Duration: delay, Factor: 2, Steps: 1 << 30, Cap: 5 * time.Minute}})
			// No labels, no in-use report: nothing but the watch reads the
			// node within a RelabelInterval (a minute; the test moves the
			// clock by seconds).
			p.Reconfigure(nodepublish.Settings{Topology: true, RelabelInterval: time.Minute})
			obs := &countingObserver{next: p, seen: map[string]int{}}
			require.True(t, observeNodes(labels, obs), "per-node configs: the node informer feeds the publisher")
			done := make(chan struct{})
			go func() { p.Run(ctx, oneGPU{}); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			getNode := func() *corev1.Node {
				n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
				require.NoError(t, err)
				return n
			}
			require.Eventually(t, func() bool { return topologyApplies(client) == 1 }, 10*time.Second, time.Millisecond)
			want := getNode().Annotations[protocol.TopologyAnnotation]
			require.NotEmpty(t, want)
			require.Eventually(t, func() bool { return obs.saw(want, "a") }, 10*time.Second, time.Millisecond,
				"the informer hands the publisher the Node its apply wrote")

			n := getNode()
			tc.change(n)
			_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			require.NoError(t, err)
			changed, team := n.Annotations[protocol.TopologyAnnotation], n.Labels["team"]
			require.Eventually(t, func() bool { return obs.saw(changed, team) }, 10*time.Second, time.Millisecond,
				"the informer hands the publisher the updated Node")

			if tc.wantApplies == 1 {
				// 10 repair delays and more: still the start's apply.
				for range 10 {
					clk.Step(delay)
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond) // time for a wrong apply to show
				require.Equal(t, 1, topologyApplies(client), "an update that leaves the annotation as applied writes nothing")
				require.Equal(t, want, getNode().Annotations[protocol.TopologyAnnotation])
				return
			}
			// The repair waits its delay (1s); the clock stops at 5 x 1s
			// = 5s, far short of the minute after which the publisher
			// would read the node by itself.
			stop := clk.Now().Add(5 * delay)
			require.Eventually(t, func() bool {
				if clk.Now().Before(stop) {
					clk.Step(delay / 10)
				}
				return getNode().Annotations[protocol.TopologyAnnotation] == want
			}, 10*time.Second, 5*time.Millisecond, "repaired within 5s of the clock")
			require.Equal(t, tc.wantApplies, topologyApplies(client))
		})
	}
}

// TestNoNodeWatchWithoutPerNodeConfigs: without --config-file-srcdir
// choosePerNode starts no informer, and observeNodes has nothing to feed.
func TestNoNodeWatchWithoutPerNodeConfigs(t *testing.T) {
	o := options{nodeName: "n1", nodeLabel: DefaultConfigLabel}
	_, labels, err := o.choosePerNode(context.Background(), NewCommand().Flags(), k8sfake.NewClientset())
	require.NoError(t, err)
	require.Nil(t, labels)
	require.False(t, observeNodes(labels, &countingObserver{seen: map[string]int{}}))
}
