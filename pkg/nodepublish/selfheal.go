package nodepublish

import (
	"context"
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// The topology annotation heals itself: the scheduler places pods by it,
// so one that someone edits, removes or garbles on the Node must not stay
// until the next health change. With labels on, the relabel loop's apply
// rewrote it every RelabelInterval; without them nothing did. Now every
// Node the publisher sees is compared with what it applied (Observe): the
// responses of its own patches (the in-use report's, every InUseInterval
// and after each Allocate), a node watch that calls Observe, and, without
// the relabel loop and when nothing else showed the node for a
// RelabelInterval, a dry-run read (checkTopology; nothing is written). A
// difference arms one repair, a delay of the publication's retry backoff
// (Options.Retry) later, that republishes the node only if the annotation
// seen last still differs. The delays double while the annotation keeps
// being changed (another writer fighting over it gets one apply per delay,
// at most one per Retry.Cap) and start again after a quiet Retry.Cap. A
// node whose annotation is right is never written.

// Observe compares the node's topology annotation, as node shows it, with
// what the publisher last applied, and arms a repair when they differ (Run
// republishes the node). The publisher calls it with the Node of each of
// its patches' responses; a node watch (an informer's update handler) may
// call it with each update. Another node, or a node older (by
// resourceVersion) than one already seen, is ignored.
func (p *Publisher) Observe(ctx context.Context, node *v1.Node) {
	if p == nil || node == nil || node.Name != p.opts.NodeName {
		return
	}
	value := node.Annotations[protocol.TopologyAnnotation]
	now := p.opts.Clock.Now()
	p.mu.Lock()
	if olderVersion(node.ResourceVersion, p.seenRV) {
		p.mu.Unlock()
		return // a watch's event from before an apply whose response came first
	}
	p.seenTopology, p.seenRV, p.seenAt = value, node.ResourceVersion, now
	drifted := p.applied != "" && value != p.applied
	p.mu.Unlock()
	if !drifted {
		return
	}
	klog.FromContext(ctx).V(2).Info("The node's topology annotation is not the one published; a repair is due",
		"node", klog.KObj(node), "resourceVersion", node.ResourceVersion, "present", value != "", "bytes", len(value))
	select {
	case p.drift <- struct{}{}:
	default:
	}
}

// olderVersion reports whether resourceVersion rv is older than seen, when
// both are the apiserver's integers (the one comparison of them Kubernetes
// gives no guarantee for, but etcd's are ordered; anything else counts as
// newer, so that the latest arrival wins).
func olderVersion(rv, seen string) bool {
	a, errA := strconv.ParseUint(rv, 10, 64)
	b, errB := strconv.ParseUint(seen, 10, 64)
	return errA == nil && errB == nil && a < b
}

// setApplied records the topology annotation an apply wrote ("" for none).
func (p *Publisher) setApplied(value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied = value
}

// drifted reports whether the node was last seen with another topology
// annotation than the one applied.
func (p *Publisher) drifted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied != "" && !p.seenAt.IsZero() && p.seenTopology != p.applied
}

// checkTopology reads the node (an empty merge patch in dry-run mode, the
// patch verb the plugin has for its own node: RBAC grants it no get, and
// the node policy admits a patch that changes nothing) and Observes it,
// unless the publisher has applied no annotation or has seen the node
// within every (an in-use patch's response, a watch).
func (p *Publisher) checkTopology(ctx context.Context, every time.Duration) {
	p.mu.Lock()
	applied, seenAt := p.applied, p.seenAt
	p.mu.Unlock()
	if applied == "" || (!seenAt.IsZero() && p.opts.Clock.Since(seenAt) < every) {
		return
	}
	node, err := p.opts.Client.CoreV1().Nodes().Patch(ctx, p.opts.NodeName, types.MergePatchType, []byte("{}"),
		metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		klog.FromContext(ctx).Error(fmt.Errorf("reading node %s: %w", p.opts.NodeName, err),
			"Checking the node's topology annotation failed; checking again in a while", "node", klog.KRef("", p.opts.NodeName), "after", every)
		return
	}
	p.Observe(ctx, node)
}

// repairs paces the repairs of a drifted annotation: one pending at a
// time, each after the next step of the publication's retry backoff,
// started again after a quiet Cap.
type repairs struct {
	initial, backoff wait.Backoff
	quiet            time.Duration
	timer            clock.Timer
	// last is when the last repair was armed or, once due, fired: the
	// quiet that restarts the backoff is counted from the latest of them,
	// so a Cap-long delay that a fight fills is no quiet.
	last time.Time
}

func newRepairs(b wait.Backoff) *repairs {
	quiet := b.Cap
	if quiet <= 0 {
		quiet = DefaultPublishRetry.Cap
	}
	return &repairs{initial: b, backoff: b, quiet: quiet}
}

// arm schedules a repair unless one is pending.
func (r *repairs) arm(logger klog.Logger, clk clock.WithTicker) {
	if r.timer != nil {
		return
	}
	now := clk.Now()
	if !r.last.IsZero() && now.Sub(r.last) >= r.quiet {
		r.backoff = r.initial
	}
	d := r.backoff.Step()
	r.last = now
	r.timer = clk.NewTimer(d)
	logger.V(2).Info("Restoring the node's topology annotation", "after", d)
}

// due fires when the pending repair is due (nil: none pending).
func (r *repairs) due() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C()
}

// fired says the pending repair's time came, at now.
func (r *repairs) fired(now time.Time) { r.timer, r.last = nil, now }

func (r *repairs) stop() {
	if r.timer != nil {
		r.timer.Stop()
	}
}
