package gpupack

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
)

// One device cache per scheduler.
//
// kube-scheduler builds a GPUPack instance for every profile that enables
// it, all on the scheduler's one informer factory and one scheduling loop.
// Each instance must see the devices the others have reserved (assumed,
// not yet reported bound): with a cache per instance, a pod of profile A
// reserved GPU 3 and, until the informer reported it bound, profile B's
// next pod could be given GPU 3 too. So the instances of one factory share
// one gpucache.Cache, fed by one set of informer handlers (those of the
// first instance); their workloads and args stay their own.

// sharedCaches maps an informer factory to its cache and the sync gate of
// the handlers that feed it; the entry goes when the context of the
// instance that registered the handlers ends (the scheduler stops), so
// tests that build many frameworks do not accumulate caches.
var sharedCaches = struct {
	sync.Mutex
	m map[informers.SharedInformerFactory]*sharedEntry
}{m: map[informers.SharedInformerFactory]*sharedEntry{}}

type sharedEntry struct {
	cache  *gpucache.Cache
	synced *syncGate
}

// sharedCache returns f's cache and its handlers' sync gate, made now (and
// kept until ctx ends) when no instance has made them yet; fresh says they
// were made now, and the caller then registers the informer handlers that
// feed the cache and gives the gate their registrations (syncGate.set).
func sharedCache(ctx context.Context, f informers.SharedInformerFactory) (c *gpucache.Cache, g *syncGate, fresh bool) {
	sharedCaches.Lock()
	defer sharedCaches.Unlock()
	if got := sharedCaches.m[f]; got != nil {
		return got.cache, got.synced, false
	}
	c, g = gpucache.New(), &syncGate{}
	sharedCaches.m[f] = &sharedEntry{cache: c, synced: g}
	context.AfterFunc(ctx, func() { dropSharedCache(f, c) })
	return c, g, true
}

// dropSharedCache forgets f's cache if it is still c.
func dropSharedCache(f informers.SharedInformerFactory, c *gpucache.Cache) {
	sharedCaches.Lock()
	defer sharedCaches.Unlock()
	if got := sharedCaches.m[f]; got != nil && got.cache == c {
		delete(sharedCaches.m, f)
	}
}

// syncGateTimeout is the longest one scheduling cycle waits for the
// handlers (syncGate.wait) before failing the pod with an error (retried
// with backoff), so that a stuck handler cannot hang the scheduler.
const syncGateTimeout = 30 * time.Second

// syncGate says whether the cache's informer handlers have folded in the
// informers' initial lists: the pods already bound with their devices
// (gpupack.io/devices) above all. kube-scheduler waits, before its first
// cycle, for its informers' stores and for its own handlers, not for a
// plugin's: each handler runs on its own goroutine, so a restarted
// scheduler's first cycles could see a node's GPUs free that bound pods
// hold, not yet in the node's in-use report, and give them again.
type syncGate struct {
	mu   sync.Mutex
	regs []cache.ResourceEventHandlerRegistration
	done atomic.Bool
}

// set records the handlers' registrations to wait for.
func (g *syncGate) set(regs ...cache.ResourceEventHandlerRegistration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.regs = regs
}

// synced reports whether every registered handler has synced; true once
// is true for good.
func (g *syncGate) synced() bool {
	if g == nil || g.done.Load() {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.regs {
		if !r.HasSynced() {
			return false
		}
	}
	g.done.Store(true)
	return true
}

// wait returns once the handlers have synced, or an error when ctx ends
// or syncGateTimeout passes first.
func (g *syncGate) wait(ctx context.Context) error {
	if g.synced() {
		return nil
	}
	klog.FromContext(ctx).Info("Waiting for GPUPack's node and pod handlers to fold in the informers' initial lists")
	ctx, cancel := context.WithTimeout(ctx, syncGateTimeout)
	defer cancel()
	if err := wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
		return g.synced(), nil
	}); err != nil {
		return fmt.Errorf("%s's node and pod handlers have not read the informers' initial lists (which devices bound pods hold is not known yet): %w", Name, err)
	}
	return nil
}
