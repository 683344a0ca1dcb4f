package nodepublish_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// nodePatches counts the node patches of c by kind: the server-side applies
// (the topology annotation: writes), the in-use report's merge patches, and
// the dry-run reads (nothing written).
func nodePatches(c *fake.Clientset) (applies, inUse, dryRuns int) {
	for _, a := range c.Actions() {
		p, ok := a.(k8stesting.PatchActionImpl)
		if !ok || a.GetResource().Resource != "nodes" {
			continue
		}
		switch {
		case len(p.PatchOptions.DryRun) > 0:
			dryRuns++
		case p.GetPatchType() == types.ApplyPatchType:
			applies++
		default:
			inUse++
		}
	}
	return applies, inUse, dryRuns
}

// topologyRun is a publisher of node n1's topology (one GPU) running on a
// fake client and clock, with publish.labels off (no relabel loop), its
// start's apply done.
type topologyRun struct {
	client *fake.Clientset
	clk    *testingclock.FakeClock
	p      *nodepublish.Publisher
	ctx    context.Context
	want   string // the topology annotation the start published
}

// startTopology starts a publisher with o (its client, node, topology and
// clock filled in), reconfigured with settings if not nil, and waits for
// its start's apply.
func startTopology(t *testing.T, o nodepublish.Options, settings *nodepublish.Settings) *topologyRun {
	t.Helper()
	r := &topologyRun{
		client: fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}),
		clk:    testingclock.NewFakeClock(time.Unix(1764500000, 0)),
	}
	o.Client, o.NodeName, o.Topology, o.Clock = r.client, "n1", true, r.clk
	r.p = nodepublish.New(o)
	if settings != nil {
		r.p.Reconfigure(*settings)
	}
	src := source{node: &topology.Node{GPUs: []topology.GPU{{Index: 0, UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Healthy: true}}, Links: links(1, nil)}}
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	done := make(chan struct{})
	go func() { r.p.Run(ctx, src); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { a, _, _ := nodePatches(r.client); return a == 1 }, 10*time.Second, time.Millisecond)
	r.want = getNode(t, r.client, "n1").Annotations[protocol.TopologyAnnotation]
	return r
}

// awaitRepair steps the clock by step until the node's topology annotation
// is the published one again.
func (r *topologyRun) awaitRepair(t *testing.T, step time.Duration, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, func() bool {
		r.clk.Step(step)
		return getNode(t, r.client, "n1").Annotations[protocol.TopologyAnnotation] == r.want
	}, 10*time.Second, 5*time.Millisecond, msgAndArgs...)
}

// garbleAndRepair garbles the node's topology annotation, shows the
// publisher the node (Observe, a watch) and waits for the repair, stepping
// the clock 100ms at a time; it returns the clock's time from the garbling
// to the repair.
func (r *topologyRun) garbleAndRepair(t *testing.T, msgAndArgs ...any) time.Duration {
	t.Helper()
	n := getNode(t, r.client, "n1")
	n.Annotations[protocol.TopologyAnnotation] = "{not json"
	n, err := r.client.CoreV1().Nodes().Update(r.ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
	garbled := r.clk.Now()
	r.p.Observe(r.ctx, n)
	r.awaitRepair(t, 100*time.Millisecond, msgAndArgs...)
	return r.clk.Since(garbled)
}

// TestTopologySelfHeals: with publish.labels off (no relabel loop), a
// topology annotation that someone edits, removes or garbles on the Node is
// restored once the plugin sees the node, by each way it sees it: the
// response of the in-use report's patch (every InUseInterval), a node watch
// (Observe), or, when nothing else read the node for a RelabelInterval,
// a dry-run read. The repair is one apply, after the publication's retry
// delay (Retry, 1s here); a node whose annotation is right gets no write.
func TestTopologySelfHeals(t *testing.T) {
	const (
		interval = time.Minute // RelabelInterval and InUseInterval
		delay    = time.Second // Retry's first step: the repair's delay
	)
	for _, way := range []string{"in-use response", "node watch", "periodic read"} {
		for _, tc := range []struct {
			name  string
			apply func(annotations map[string]string)
		}{
			{"edited", func(a map[string]string) {
				a[protocol.TopologyAnnotation] = `{"version":"v1","node":{"gpus":[],"links":[],"generation":1}}`
			}},
			{"removed", func(a map[string]string) { delete(a, protocol.TopologyAnnotation) }},
			{"garbled", func(a map[string]string) { a[protocol.TopologyAnnotation] = "{not json" }},
		} {
			t.Run(way+"/"+tc.name, func(t *testing.T) {
				o := nodepublish.Options{
					Retry: wait.Backoff{Duration: delay, Factor: 2, Steps: 1 << 30, Cap: 5 * time.Minute},
				}
				if way == "in-use response" {
					o.InUse, o.InUseInterval, o.PodResources = true, interval, allocations{}
				}
				r := startTopology(t, o, &nodepublish.Settings{Topology: true, InUse: o.InUse, InUseInterval: o.InUseInterval, RelabelInterval: interval})
				client, clk, p, ctx := r.client, r.clk, r.p, r.ctx
				require.NotEmpty(t, r.want)

				// see makes the plugin look at the node: the in-use tick's
				// patch, a watch event, or the periodic check's read; it
				// waits until it has.
				see := func() {
					_, inUse, dryRuns := nodePatches(client)
					switch way {
					case "node watch":
						p.Observe(ctx, getNode(t, client, "n1"))
						return
					case "in-use response":
						inUse++
					default:
						dryRuns++
					}
					require.Eventually(t, clk.HasWaiters, 10*time.Second, time.Millisecond)
					clk.Step(interval)
					require.Eventually(t, func() bool {
						_, i, d := nodePatches(client)
						return i >= inUse && d >= dryRuns
					}, 10*time.Second, time.Millisecond)
				}

				// Unchanged: seen, and after the repair's delay (and more)
				// still the start's one apply.
				see()
				clk.Step(delay)
				time.Sleep(50 * time.Millisecond) // time for a wrong apply to show
				applies, _, _ := nodePatches(client)
				require.Equal(t, 1, applies, "an unchanged node gets no write")

				n := getNode(t, client, "n1")
				tc.apply(n.Annotations)
				_, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
				require.NoError(t, err)
				see()
				// The repair waits its delay: 1 start apply + 1 repair = 2.
				r.awaitRepair(t, delay/10)
				applies, _, _ = nodePatches(client)
				require.Equal(t, 2, applies)

				// Restored: seen again, no further write.
				see()
				clk.Step(delay)
				time.Sleep(50 * time.Millisecond)
				applies, _, _ = nodePatches(client)
				require.Equal(t, 2, applies, "a restored node gets no write")
			})
		}
	}
}

// TestTopologyRepairsBackOff: a writer that keeps garbling the annotation
// gets one repair per delay of the retry backoff, doubling: 1s, 2s, 4s
// after each garbling seen (Observe, a watch), never sooner.
func TestTopologyRepairsBackOff(t *testing.T) {
	r := startTopology(t, nodepublish.Options{
		Retry: wait.Backoff{Duration: time.Second, Factor: 2, Steps: 1 << 30, Cap: 5 * time.Minute},
	}, nil)
	for i, tc := range []struct {
		atLeast time.Duration // the backoff's step: 1s, then x2
		applies int           // the start's apply plus one per repair
	}{
		{time.Second, 2},     // 1s
		{2 * time.Second, 3}, // 1s x 2
		{4 * time.Second, 4}, // 2s x 2
	} {
		took := r.garbleAndRepair(t, "repair %d", i)
		require.GreaterOrEqual(t, took, tc.atLeast, "repair %d", i)
		applies, _, _ := nodePatches(r.client)
		require.Equal(t, tc.applies, applies, "repair %d", i)
	}
}

// TestTopologyRepairsStayAtCapWhileFought: a writer that garbles the
// annotation again right after each repair is fighting without pause: the
// repairs' delays double up to Retry.Cap and stay there (at most one write
// per Cap). The backoff starts again only after a quiet Cap, one without a
// garbling. It restarted from the first step whenever a Cap had passed
// since the last repair was armed, which a Cap-long delay always makes
// true: 1s, 2s, 4s, 1s, 2s, 4s... with Cap 4s.
func TestTopologyRepairsStayAtCapWhileFought(t *testing.T) {
	const capDelay = 4 * time.Second
	r := startTopology(t, nodepublish.Options{
		Retry: wait.Backoff{Duration: time.Second, Factor: 2, Steps: 1 << 30, Cap: capDelay},
	}, nil)
	for i, atLeast := range []time.Duration{time.Second, 2 * time.Second, capDelay, capDelay, capDelay} {
		took := r.garbleAndRepair(t, "repair %d", i)
		require.GreaterOrEqual(t, took, atLeast, "repair %d: a fight without pause must not restart the backoff", i)
	}

	// A quiet Cap after the last repair: the next garbling is repaired
	// after the first step again.
	r.clk.Step(capDelay)
	took := r.garbleAndRepair(t, "repair after the quiet")
	require.Less(t, took, 2*time.Second, "after a quiet Cap the backoff starts again")
}
