package gpupack

import (
	"context"
	"sync"

	"k8s.io/client-go/informers"

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

// sharedCaches maps an informer factory to its cache and the context of the
// instance that registered the handlers; the entry goes when that context
// ends (the scheduler stops), so tests that build many frameworks do not
// accumulate caches.
var sharedCaches = struct {
	sync.Mutex
	m map[informers.SharedInformerFactory]*gpucache.Cache
}{m: map[informers.SharedInformerFactory]*gpucache.Cache{}}

// sharedCache returns f's cache, made now (and kept until ctx ends) when
// no instance has made it yet; fresh says it was made now, and the caller
// then registers the informer handlers that feed it.
func sharedCache(ctx context.Context, f informers.SharedInformerFactory) (c *gpucache.Cache, fresh bool) {
	sharedCaches.Lock()
	defer sharedCaches.Unlock()
	if got := sharedCaches.m[f]; got != nil {
		return got, false
	}
	c = gpucache.New()
	sharedCaches.m[f] = c
	context.AfterFunc(ctx, func() { dropSharedCache(f, c) })
	return c, true
}

// dropSharedCache forgets f's cache if it is still c.
func dropSharedCache(f informers.SharedInformerFactory, c *gpucache.Cache) {
	sharedCaches.Lock()
	defer sharedCaches.Unlock()
	if sharedCaches.m[f] == c {
		delete(sharedCaches.m, f)
	}
}
