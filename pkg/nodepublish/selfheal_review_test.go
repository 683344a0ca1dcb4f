package nodepublish_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestReviewRepairsStayAtCapWhileFought: a writer that garbles the
// annotation again right after each repair is fighting without pause: the
// repairs' delays double up to Retry.Cap and stay there (at most one write
// per Cap). The backoff starts again only after a quiet Cap, one without a
// garbling. It restarted from the first step whenever a Cap had passed
// since the last repair was armed, which a Cap-long delay always makes
// true: 1s, 2s, 4s, 1s, 2s, 4s... with Cap 4s.
func TestReviewRepairsStayAtCapWhileFought(t *testing.T) {
	const capDelay = 4 * time.Second
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	clk := testingclock.NewFakeClock(time.Unix(1764500000, 0))
	p := nodepublish.New(nodepublish.Options{
		Client: client, NodeName: "n1", Topology: true, Clock: clk,
		Retry: wait.Backoff{Duration: time.Second, Factor: 2, Steps: 1 << 30, Cap: capDelay},
	})
	src := source{node: &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true}}, Links: links(1, nil)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, src); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { a, _, _ := nodePatches(client); return a == 1 }, 10*time.Second, time.Millisecond)
	want := getNode(t, client, "n1").Annotations[protocol.TopologyAnnotation]

	for i, atLeast := range []time.Duration{time.Second, 2 * time.Second, capDelay, capDelay, capDelay} {
		n := getNode(t, client, "n1")
		n.Annotations[protocol.TopologyAnnotation] = "{not json"
		n, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		require.NoError(t, err)
		garbled := clk.Now()
		p.Observe(ctx, n)
		require.Eventually(t, func() bool {
			clk.Step(100 * time.Millisecond)
			return getNode(t, client, "n1").Annotations[protocol.TopologyAnnotation] == want
		}, 10*time.Second, 5*time.Millisecond, "repair %d", i)
		require.GreaterOrEqual(t, clk.Since(garbled), atLeast, "repair %d: a fight without pause must not restart the backoff", i)
	}

	// A quiet Cap after the last repair: the next garbling is repaired
	// after the first step again.
	clk.Step(capDelay)
	n := getNode(t, client, "n1")
	n.Annotations[protocol.TopologyAnnotation] = "{not json"
	n, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
	garbled := clk.Now()
	p.Observe(ctx, n)
	require.Eventually(t, func() bool {
		clk.Step(100 * time.Millisecond)
		return getNode(t, client, "n1").Annotations[protocol.TopologyAnnotation] == want
	}, 10*time.Second, 5*time.Millisecond, "repair after the quiet")
	require.Less(t, clk.Since(garbled), 2*time.Second, "after a quiet Cap the backoff starts again")
}
