// Package gpucache is the GPUPack scheduler plugin's view of every GPU
// node: decoded topology and usage (own choices UNION the node's in-use
// report), with the layers of caching listed on Cache. The plugin uses it
// through Interface.
package gpucache

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Cache is the plugin's view of every GPU node: its decoded topology
// (decoded once per annotation change) and its usage, which is the union of
// the scheduler's own choices (assumed in Reserve, or bound pods carrying
// gpupack.io/devices) and the node's gpupack.io/in-use report. The union
// can only over-count, so a GPU is never given twice.
//
// Every layer of caching between a node's annotations and a device choice,
// innermost first, and what invalidates it. Each layer is valid while the
// pointers it was made from stay equal: the objects are never mutated.
//
//  1. Decoded topology (nodeEntry.topo, decodeLocked), and the node's
//     State with nothing in use (nodeEntry.empty, NodeView.Empty: what the
//     plugin asks whether a request would ever fit), keyed by the raw
//     gpupack.io/topology string: a different string; the node deleted
//     (RemoveNode) or its annotations gone (clearLocked). Health changes
//     arrive as a new string (new generation), so they go through here.
//
//  2. Decoded in-use report (nodeEntry.inUse, inUseByPod), keyed by the raw
//     gpupack.io/in-use string: as 1.
//
//  3. Usage State (nodeEntry.state, stateLocked): topology + in-use + own
//     choices on the node + the stand-ins of bound pods' requests that
//     no known device covers (nodeEntry.standIns, foreign.go). Set to nil when either annotation changes and
//     when a pod is assumed, forgotten, unassumed or added on the node
//     (setPod, dropLocked); rebuilt lazily.
//
//  4. State with free CPU and memory (nodeEntry.hot, hotView.state;
//     entryForNodeInfo): the usage State + the NodeInfo's free CPU and
//     memory: a new usage State, other free CPU/memory, or a new Node
//     object (the fast path compares the Node pointer, hotView.obj). The
//     fast path takes no lock: it finds the entry by the Node object
//     (Cache.index, nodeindex.go) and knows the hotView
//     current while the usage State it was made from is still the entry's
//     (an atomic pointer that 3 replaces).
//     A NodeInfo of the generation the free CPU/memory were read from
//     has them (the framework gives every change a new one): only
//     another generation reads them again. Not so in a pod group
//     scheduling cycle, whose snapshot keeps a NodeInfo's generation
//     while it adds and removes the group's pods: the plugin passes
//     such NodeInfos without a generation (gpupack cycleNodeInfo).
//
//  5. Last plans (hotView.last, lastplan.go; the plugin's planFor through
//     NodeView.LastPlan/StoreLastPlan): one-request pods' plan figures by
//     request ID, on one State under one workload snapshot: any other
//     State or snapshot (with starts over); at most maxLastPlans a node.
//
//  6. A cycle's plans (the plugin's cycleState.plans, gpupack/prefilter.go):
//     one pod's plans per node for one scheduling cycle: gone with the
//     cycle.
//
//  7. pkg/score's choice memo (memo.go): keyed by immutable facts (layout,
//     usage, request, workload snapshot ID): never invalidated; a full
//     shard is cleared.
//
//  8. pkg/topology's shape memo (shape.go): best sets and qualities per
//     interned link matrix, and the traced searches BestSetWithout
//     answers from (without.go): never invalidated; cleared when full.
//
//  9. The supply (Cache.supply, Pricing; score.Supply): every readable
//     node's slots per task type, counted from its usage State (layer
//     3, with the Node's allocatable): a node is recounted when marked
//     dirty (its State set to nil, its annotations read, its pods or
//     allocatable changed, or the node gone) at the next Pricing; a new
//     task type is counted on every node once. The prices are kept
//     while the supply's Version (its totals, free capacity and
//     distribution) stays.
//
// The workload snapshot (score.Workload.Distribution) moves only when the
// learned task mix moves by score.DefaultTolerance and
// score.DefaultSnapshotInterval pods have passed, or by score.DefaultMaxLag;
// a new snapshot invalidates 5 and changes the key of 7.
type Cache struct {
	mu    sync.RWMutex
	nodes map[string]*nodeEntry
	// index finds the entries by the Node object they last read
	// (nodeEntry.obj), without mu (nodeindex.go); written under mu.
	index atomic.Pointer[nodeIndex]
	// objects counts the entries with a Node object (nodeEntry.obj).
	objects int
	pods    map[types.UID]*podEntry
	// published are the resource names nodes publish in their resource
	// tables (gpupack.io/topology v2), each with the number of node
	// entries that publish it (nodeEntry.published): a pod's resource of
	// one of these names is a GPU request. A name goes with the last table
	// that publishes it; at most maxPublishedNames at once.
	published map[string]int
	// supply is the cluster's slots per task type (score.Supply) over the
	// readable GPU nodes' usage States; dirty are the nodes whose State
	// or allocatable may have changed since they were counted; pricing is
	// the supply's prices for the distribution last asked (Pricing).
	supply  *score.Supply[string]
	dirty   map[string]struct{}
	pricing *score.Pricing
	// pricedAt is the supply's Version pricing was made at.
	pricedAt uint64
	// argsNames are the profiles' resource names (AddArgsNames), for
	// foreign pods' requests on nodes without a resource table.
	argsNames []Names
	// bare are the nodes the informer last delivered without GPU
	// annotations after the cache had read some of theirs, with that Node
	// object's resourceVersion: a cycle's snapshot of an older version
	// still has the annotations, and must not bring the topology and
	// usage back (entryForNode). A name goes when the informer delivers
	// the node's annotations again or deletes the node; at most one a
	// node the informer knows.
	bare map[string]string
}

// dirtyKeep is the most dirty nodes whose map Pricing clears for reuse: a
// map keeps its capacity when cleared and iterating it costs as much as
// its capacity, so one that held more (every node, at start) is replaced.
const dirtyKeep = 64

// maxPublishedNames bounds Cache.published (a cluster serves a few names).
const maxPublishedNames = 1024

type nodeEntry struct {
	// The per-node hot path (entryForNodeInfo) reads only hot and state
	// of an entry, without the cache's lock: they come first, on one cache
	// line.

	// hot is what Filter and Score read of the node (layers 4 and 5 on
	// Cache): replaced, never mutated.
	hot atomic.Pointer[hotView]
	// state is the usage as a score.State, rebuilt lazily (nil: stale);
	// stored under the cache's lock, loaded anywhere. Readers share it;
	// it is never mutated once built. A hotView is valid while its base
	// is this State: every change of the entry's topology, in-use report
	// or pods that the State reflects stores a new one (or nil), so the
	// hot path needs no lock to know its view is current.
	state atomic.Pointer[score.State]
	// obj is the Node object the annotations were last read from: the
	// informer replaces a Node object on every change and never mutates
	// one, so the same pointer means the same annotations, and the per-node
	// hot path of Filter skips two annotation lookups.
	obj      *v1.Node
	inUseErr error
	// live: the node informer knows the node (UpdateNode, until
	// RemoveNode). An entry that is not live exists only for the pods
	// held on it and goes with the last of them.
	live              bool
	topoRaw, inUseRaw string
	// reported are the annotation values whose decoding errors UpdateNode
	// last returned (the node informer's): a cycle's snapshot may fold a
	// value into the entry first (entryForNode), and its error is still
	// the handler's to report.
	reported reportedRaw
	topo     *topology.Node
	// empty is topo's State with nothing in use (NodeView.Empty), built
	// with topo; never mutated.
	empty   *score.State
	topoErr error
	inUse   map[string]bool
	// inUseByPod are the in-use report's devices per pod UID.
	inUseByPod map[types.UID][]string
	// pods holds the own choices on this node, and the bound pods whose
	// requests they do not cover (foreign.go).
	pods map[types.UID]*podEntry
	// standIns are the devices counted for the pods' requests that no
	// known device covers yet (foreign.go), per pod: valid while the
	// usage State is standInsFor (both set by stateLocked, under the
	// lock).
	standIns    map[types.UID][]string
	standInsFor *score.State
	// allocCPU (milli) and allocMem (MiB) are the Node's allocatable CPU
	// and memory (allocKnown: it reports CPU), which bound the task types
	// it can host (score.State.Slots); set on every usage State.
	allocKnown         bool
	allocCPU, allocMem int64
	// supplied is the usage State the cache's supply last counted.
	supplied *score.State
	// published are the resource names of topo's table this entry counts
	// in Cache.published.
	published []string
}

// hotView is what the per-node hot path of Filter and Score needs of an
// entry, in one small object read through one atomic pointer: the usage
// State with the node's free CPU and memory as ViewNodeInfo last saw them
// (layer 4), valid while the entry's usage State is base and the Node
// object is obj, and the node's last plans (layer 5). Never mutated.
type hotView struct {
	obj *v1.Node
	// base is the usage State state was made from; state is base with the
	// free CPU and memory cpu and mem (known), or base itself when the
	// NodeInfo reports no allocatable CPU.
	base, state *score.State
	topo        *topology.Node
	empty       *score.State
	cpu, mem    int64
	known       bool
	// gen is the generation of the NodeInfo cpu and mem were read from:
	// the framework gives every change of a NodeInfo (pods, Node) a new
	// generation from one counter, so a NodeInfo of that generation has
	// those free resources without reading them again.
	gen int64
	// last are the node's last plans (planFor): later pods asking the same
	// find them while the node's usage and the workload snapshot stay.
	// They outlive a new hotView (carried over) until the next plan is
	// stored, as their own key (State, snapshot) says when they answer.
	last lastPlans
}

type podEntry struct {
	node string
	ids  []string
	// assumed: Reserve's choice that the informer has not yet confirmed
	// (a bound pod carrying these devices). Only an assumed pod is
	// forgotten by Unreserve, as kube-scheduler's own cache forgets only
	// assumed pods: a bind call can fail after the apiserver applied it.
	assumed bool
	// needs are a bound pod's requests of extended resources, with its
	// topology hint and replica policy (policySet: its own annotation):
	// the devices it is known to hold (ids the node has, the in-use
	// report's) stand for them, stand-ins for the rest until the in-use
	// report names them (foreign.go). nil for a pod only assumed.
	needs     []need
	hint      score.TopologyHint
	policy    score.ReplicaPolicy
	policySet bool
	// coveredOn is the node topology on which the pod's ids were found to
	// cover its needs (standInsLocked): rebuilds of the node's State skip
	// it while the topology is that one. Written and read under c.mu's
	// write lock.
	coveredOn *topology.Node
}

// confirmedBy reports whether bound pod o is what assumed pod p held: the
// devices Reserve chose on the node, as many as the pod asks (AddPod
// checked o's count). While the node still has them (knownLocked), o's
// needs are covered and take no stand-ins: the node's State stays.
func (p *podEntry) confirmedBy(o *podEntry) bool {
	if !p.assumed || o.assumed || p.needs != nil || p.node != o.node || len(p.ids) == 0 || !slices.Equal(p.ids, o.ids) {
		return false
	}
	// Every request of the pod named (a pod asking resources Reserve does
	// not place, another profile's names, takes stand-ins at once).
	asked := 0
	for _, n := range o.needs {
		asked += sum(n.chunks)
	}
	return asked == len(o.ids)
}

// knownLocked reports whether node's topology names every device of ids
// (a replica by its GPU); false when the node has no topology. c.mu must
// be held.
func (c *Cache) knownLocked(node string, ids []string) bool {
	e := c.nodes[node]
	if e == nil || e.topo == nil {
		return false
	}
	for _, id := range ids {
		uuid, _ := deviceid.UUIDOf(id)
		if !slices.ContainsFunc(e.topo.GPUs, func(g topology.GPU) bool { return g.UUID == uuid }) &&
			!slices.ContainsFunc(e.topo.MIG, func(m topology.MIGDevice) bool { return m.UUID == uuid }) {
			return false
		}
	}
	return true
}

// sameAs reports whether p holds what o holds (assumed aside).
func (p *podEntry) sameAs(o *podEntry) bool {
	return p.node == o.node && slices.Equal(p.ids, o.ids) && p.hint == o.hint && p.policy == o.policy && p.policySet == o.policySet &&
		slices.EqualFunc(p.needs, o.needs, func(a, b need) bool { return a.resource == b.resource && slices.Equal(a.chunks, b.chunks) })
}

// New returns an empty cache.
func New() *Cache {
	return &Cache{nodes: map[string]*nodeEntry{}, pods: map[types.UID]*podEntry{},
		published: map[string]int{}, dirty: map[string]struct{}{}, bare: map[string]string{}}
}

// Interface is what the scheduler plugin uses of the cache.
type Interface interface {
	// Node informer.
	UpdateNode(node *v1.Node) (topoErr, inUseErr error)
	RemoveNode(name string)
	// Pod informer and the plugin's Reserve/Unreserve.
	AddArgsNames(n Names)
	AddPod(pod *v1.Pod) error
	Forget(uid types.UID)
	Assume(uid types.UID, node string, ids []string)
	Unassume(uid types.UID)
	// Filter, Score, Reserve: a node's topology and usage.
	ViewNode(node *v1.Node) (NodeView, error)
	ViewNodeInfo(ni fwk.NodeInfo) (NodeView, error)
	ForEachLastPlan(scores fwk.NodeScoreList, id uint64, dist *score.Distribution, fn func(int, Figures))
	// Preemption and queries.
	HeldBy(node string, uid types.UID) []string
	PodDevices(uid types.UID) (node string, ids []string, ok bool)
	Used(node string) map[string]bool
	Published(name string) bool
	Topology(name string) *topology.Node
	PublishedCount() int
	Fragmentation(d *score.Distribution) float64
	// PreScore: the prices of the cluster's supply.
	Pricing(d *score.Distribution) *score.Pricing
}

var _ Interface = &Cache{}

// NodeView is what Filter, Score and Reserve need of a node: its topology
// and usage State, and (from ViewNodeInfo and ViewNode) a handle on the
// node's entry for its used device IDs and last plans.
type NodeView struct {
	Topology *topology.Node
	State    *score.State
	// Empty is Topology's State with none of the node's devices in use
	// (no pod, no in-use report; healthy devices and layout as they are),
	// built once per decoded topology and shared: never to be mutated. nil
	// in a view not made by the cache.
	Empty *score.State
	c     *Cache
	e     *nodeEntry
}

// WithState is v with another State (an adjusted view of the same node).
func (v NodeView) WithState(st *score.State) NodeView {
	v.State = st
	return v
}

// Used is the device IDs counted as in use on the view's node (own choices
// UNION in-use report UNION foreign pods' stand-ins) without those of the
// pods in skip (preemption victims). For a node the cache keeps no entry
// of: none.
func (v NodeView) Used(skip []types.UID) map[string]bool {
	if v.c == nil {
		return map[string]bool{}
	}
	return v.c.used(v.e, skip)
}

// LastPlan is the node's last plan figures for request id on the view's
// State under dist (layer 5 on Cache).
func (v NodeView) LastPlan(dist *score.Distribution, id uint64) (Figures, error, bool) {
	if v.e == nil {
		return Figures{}, nil, false
	}
	h := v.e.hot.Load()
	if h == nil {
		return Figures{}, nil, false
	}
	return h.last.find(v.State, dist, id)
}

// StoreLastPlan records request id's plan figures (or error) on the view's
// State under dist; the oldest of maxLastPlans goes.
func (v NodeView) StoreLastPlan(dist *score.Distribution, id uint64, f Figures, err error) {
	if v.e == nil {
		return
	}
	for {
		// Only the last plans change: a hotView the fast path never takes
		// (no Node object) holds them when the node has none yet.
		h := v.e.hot.Load()
		nh := &hotView{}
		if h != nil {
			*nh = *h
		}
		nh.last = nh.last.with(v.State, dist, id, f, err)
		if v.e.hot.CompareAndSwap(h, nh) {
			return
		}
	}
}

// ViewNode returns node's topology and usage, first folding in annotation
// changes. err explains why the node has no usable GPUs (no or malformed
// annotation).
func (c *Cache) ViewNode(node *v1.Node) (NodeView, error) {
	v, e, err := c.entryForNode(node)
	v.c, v.e = c, e
	return v, err
}

// entryForNode is ViewNode that also returns the node's entry (nil with an error).
func (c *Cache) entryForNode(node *v1.Node) (NodeView, *nodeEntry, error) {
	c.mu.RLock()
	e := c.nodes[node.Name]
	if st := e.stateOrNil(); st != nil && e.inUseErr == nil && e.obj == node {
		v := NodeView{Topology: e.topo, State: st, Empty: e.empty}
		c.mu.RUnlock()
		return v, e, nil
	}
	if e != nil && e.obj == node && (e.topoErr != nil || e.inUseErr != nil) {
		// This Node object's annotations are read and do not decode: the
		// same answer again, under the read lock. Filter asks it of such
		// a node in every cycle; the write lock below (and the node
		// marked for the supply) cost 5x a readable node's view.
		_, _, err := c.viewLocked(e)
		c.mu.RUnlock()
		return NodeView{}, nil, err
	}
	c.mu.RUnlock()
	topoRaw, hasTopo := node.Annotations[protocol.TopologyAnnotation]
	inUseRaw := node.Annotations[protocol.InUseAnnotation]
	c.mu.Lock()
	defer c.mu.Unlock()
	if e = c.nodes[node.Name]; e != nil && e.obj != nil && e.obj != node &&
		(e.live && !newerObject(node, e.obj) || newerObject(e.obj, node)) {
		// A cycle's snapshot holds an older Node object than the one the
		// informer delivered (its handler ran after the snapshot was
		// taken), or than the one an earlier snapshot brought: its
		// annotations would undo a newer in-use report, health or
		// unreadable report, and the view would count a GPU free that is
		// not. The entry's object is viewed instead, and the entry keeps
		// it.
		return c.viewLocked(e)
	}
	if rv, ok := c.bare[node.Name]; ok && hasTopo && !newerThan(node, rv) {
		// The informer has delivered the node without GPU annotations
		// since the version this snapshot holds: its annotations are
		// gone, and must not come back into the entry (or a new one).
		hasTopo = false
	}
	if !hasTopo {
		return NodeView{}, nil, fmt.Errorf("node has no %s annotation (no gpupack device plugin?)", protocol.TopologyAnnotation)
	}
	// A node the informer has not delivered yet (or has just deleted: a
	// cycle's older snapshot) gets an entry that is not live: the next
	// RemoveNode sweeps it unless the informer delivers the node or a pod
	// holds devices on it meanwhile.
	e = c.updateNodeLocked(node.Name, topoRaw, inUseRaw)
	c.setObjLocked(e, node)
	return c.viewLocked(e)
}

// viewLocked is the view of e as its annotations were last read, or why
// it has none.
func (c *Cache) viewLocked(e *nodeEntry) (NodeView, *nodeEntry, error) {
	switch {
	case e.obj == nil || (e.topoRaw == "" && e.topoErr == nil):
		return NodeView{}, nil, fmt.Errorf("node has no %s annotation (no gpupack device plugin?)", protocol.TopologyAnnotation)
	case e.topoErr != nil:
		return NodeView{}, nil, e.topoErr
	case e.inUseErr != nil:
		return NodeView{}, nil, e.inUseErr
	}
	return NodeView{Topology: e.topo, State: c.stateLocked(e), Empty: e.empty}, e, nil
}

// newerObject reports whether Node object a is a later version of b than b
// is of a, by their resourceVersions: the informer and kube-scheduler's
// snapshot read one watch, whose resourceVersions (etcd revisions) grow.
// False when either is not a number (then neither is known newer).
func newerObject(a, b *v1.Node) bool {
	if a == nil || b == nil {
		return false
	}
	return newerThan(a, b.ResourceVersion)
}

// newerThan reports whether Node object a is a later version than
// resourceVersion rv (newerObject's rule).
func newerThan(a *v1.Node, rv string) bool {
	ra, errA := strconv.ParseUint(a.ResourceVersion, 10, 64)
	rb, errB := strconv.ParseUint(rv, 10, 64)
	return errA == nil && errB == nil && ra > rb
}

// ViewNodeInfo is View for a scheduling framework NodeInfo: the State also knows
// the node's free CPU and memory, allocatable minus requested (the pods on
// the node, nominated pods included when the framework added them), so
// that fragmentation counts a node's free GPUs as stranded for task types
// whose CPU or memory it cannot hold (FGD). A node that reports no
// allocatable CPU is taken as not knowing its CPU and memory.
func (c *Cache) ViewNodeInfo(ni fwk.NodeInfo) (NodeView, error) {
	v, e, err := c.entryForNodeInfo(ni)
	if err != nil {
		return NodeView{}, err
	}
	v.c, v.e = c, e
	return v, nil
}

// entryForNodeInfo is ViewNodeInfo that also returns the node's entry (nil with an error).
// It runs for every node in every Filter and Score: the fast path is one
// lock-free lookup (index), two small objects read (the entry's first
// cache line and its hotView), no lock, no write to shared memory and no
// allocation; the NodeInfo's free CPU and memory are read only when its
// generation is not the hotView's.
//
// Without the lock, the fast path answers from the hotView that was
// current when it read the entry: a change being made at that moment
// (under the lock, which replaces the entry's State before anything else
// can read the change) is seen by the next call, as if this one had come
// just before it.
func (c *Cache) entryForNodeInfo(ni fwk.NodeInfo) (NodeView, *nodeEntry, error) {
	node := ni.Node()
	gen := ni.GetGeneration()
	var cpu, mem int64
	var ok, read bool
	// Fast path: the same Node object (annotations), usage State and free
	// resources as the entry's hotView. A hotView is made only for a
	// readable node (no topology or in-use error), and the State it was
	// made from is replaced when the annotations it read change.
	if e := c.lookupNode(node); e != nil {
		if h := e.currentHot(node); h != nil {
			if h.gen != gen || gen == 0 { // 0: a NodeInfo that counts none
				cpu, mem, ok = freeResources(ni)
				read = true
			}
			if !read || (h.known == ok && h.cpu == cpu && h.mem == mem) {
				return NodeView{Topology: h.topo, State: h.state, Empty: h.empty}, e, nil
			}
		}
	}
	if !read {
		cpu, mem, ok = freeResources(ni)
	}
	v, e, err := c.entryForNode(node)
	if err != nil {
		return v, e, err
	}
	h := &hotView{obj: node, base: v.State, state: v.State, topo: v.Topology, empty: v.Empty, cpu: cpu, mem: mem, known: ok, gen: gen}
	if ok {
		h.state = v.State.Clone()
		h.state.SetFree(cpu, mem)
	}
	c.mu.Lock()
	if e.state.Load() == v.State && e.obj == node && e.inUseErr == nil {
		if old := e.hot.Load(); old != nil {
			h.last = old.last // they answer for their own State only
		}
		e.hot.Store(h)
	}
	c.mu.Unlock()
	v.State = h.state
	return v, e, nil
}

// currentHot is e's hotView when it was made from node and from e's
// current usage State (the lock-free path may answer from it), else nil.
func (e *nodeEntry) currentHot(node *v1.Node) *hotView {
	if h := e.hot.Load(); h != nil && h.obj == node && h.base != nil && h.base == e.state.Load() {
		return h
	}
	return nil
}

// ForEachLastPlan calls fn with the index and the last plan figures of
// every node in scores whose last plan answers request id under dist.
func (c *Cache) ForEachLastPlan(scores fwk.NodeScoreList, id uint64, dist *score.Distribution, fn func(int, Figures)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, ns := range scores {
		e := c.nodes[ns.Name]
		if e == nil {
			continue
		}
		if h := e.hot.Load(); h != nil && h.last.dist == dist {
			if p, err, ok := h.last.find(h.last.state, dist, id); ok && err == nil {
				fn(i, p)
			}
		}
	}
}

// freeResources is the NodeInfo's allocatable minus requested CPU (milli)
// and memory (MiB, rounded down); false when it has no allocatable CPU.
func freeResources(ni fwk.NodeInfo) (cpuMilli, memMiB int64, ok bool) {
	alloc := ni.GetAllocatable()
	if alloc == nil || alloc.GetMilliCPU() <= 0 {
		return 0, 0, false
	}
	req := ni.GetRequested()
	cpuMilli, memBytes := alloc.GetMilliCPU(), alloc.GetMemory()
	if req != nil {
		cpuMilli -= req.GetMilliCPU()
		memBytes -= req.GetMemory()
	}
	return cpuMilli, memBytes >> 20, true
}

// UpdateNode folds in a node's annotations (node informer). It returns the
// decoding errors of annotation values it has not returned before (nil
// when none; unreported), for the caller to report once, also when a
// cycle's newer snapshot read the value first. A node with neither GPU
// annotation gets no entry (it keeps one only while pods hold devices on
// it).
func (c *Cache) UpdateNode(node *v1.Node) (topoErr, inUseErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	topoRaw, hasTopo := node.Annotations[protocol.TopologyAnnotation]
	inUseRaw, hasInUse := node.Annotations[protocol.InUseAnnotation]
	e := c.nodes[node.Name]
	if e != nil && newerObject(e.obj, node) {
		// A cycle's snapshot delivered a newer version of the node before
		// the informer (entryForNode): this older one must not roll it
		// back; the informer's next delivery catches up.
		e.live = true
		return nil, nil
	}
	if !hasTopo && !hasInUse {
		if _, ok := c.bare[node.Name]; ok || e != nil {
			// The annotations the entry read (or a snapshot may still
			// hold) are gone as of this version.
			c.bare[node.Name] = node.ResourceVersion
		}
		if e != nil {
			c.clearLocked(e)
			e.live = true
			c.dirty[node.Name] = struct{}{}
			c.dropIfUnusedLocked(node.Name, e)
		}
		return nil, nil
	}
	delete(c.bare, node.Name)
	e = c.updateNodeLocked(node.Name, topoRaw, inUseRaw)
	e.live = true
	c.setObjLocked(e, node)
	return e.unreported()
}

// reportedRaw are a node's annotation values whose decoding errors
// UpdateNode has returned (set: any at all).
type reportedRaw struct {
	set         bool
	topo, inUse string
}

// unreported returns e's decoding errors of annotation values UpdateNode
// has not returned yet, and records them as returned. Compared with what
// the informer delivered before, not with the entry's values: a cycle's
// newer snapshot may have read the new value into the entry first.
func (e *nodeEntry) unreported() (topoErr, inUseErr error) {
	r := e.reported
	if !r.set || r.topo != e.topoRaw {
		topoErr = e.topoErr
	}
	if !r.set || r.inUse != e.inUseRaw {
		inUseErr = e.inUseErr
	}
	e.reported = reportedRaw{set: true, topo: e.topoRaw, inUse: e.inUseRaw}
	return topoErr, inUseErr
}

// RemoveNode forgets a deleted node: its entry goes now, or with the last
// pod still held on it.
func (c *Cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.bare, name)
	if e := c.nodes[name]; e != nil {
		c.clearLocked(e)
		e.live = false
		c.dirty[name] = struct{}{}
	}
	// Also sweep the entries View made for nodes the informer never
	// delivered, or made again for a deleted node from an older snapshot.
	for n, e := range c.nodes {
		if !e.live {
			c.dropIfUnusedLocked(n, e)
		}
	}
}

// clearLocked drops what e read from its Node (topology, in-use report,
// States, last plans); the pods held on it stay.
func (c *Cache) clearLocked(e *nodeEntry) {
	c.setObjLocked(e, nil)
	e.topoRaw, e.inUseRaw, e.reported = "", "", reportedRaw{}
	c.unpublishLocked(e)
	e.topo, e.empty, e.topoErr, e.inUse, e.inUseErr, e.inUseByPod = nil, nil, nil, nil, nil, nil
	e.state.Store(nil)
	e.hot.Store(nil)
}

// dropIfUnusedLocked deletes e (the entry of node name) when the node
// informer does not know the node, or it has no GPU annotation, and no pod
// holds devices on it.
func (c *Cache) dropIfUnusedLocked(name string, e *nodeEntry) {
	if len(e.pods) > 0 || (e.live && (e.topoRaw != "" || e.inUseRaw != "")) {
		return
	}
	c.setObjLocked(e, nil)
	c.unpublishLocked(e)
	if c.nodes[name] == e {
		delete(c.nodes, name)
		c.dirty[name] = struct{}{}
	}
}

// stateOrNil is e's usage State, nil for no entry or a stale State.
func (e *nodeEntry) stateOrNil() *score.State {
	if e == nil {
		return nil
	}
	return e.state.Load()
}

// Nodes is the number of node entries (for tests and benchmarks of the
// cache's footprint).
func (c *Cache) Nodes() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.nodes)
}

// setObjLocked records the Node object e was last read from.
func (c *Cache) setObjLocked(e *nodeEntry, node *v1.Node) {
	if e.obj == node {
		return
	}
	if e.obj != nil {
		c.unindexLocked(e.obj)
		c.objects--
	}
	e.obj = node
	if node == nil {
		// A reader on an older table may still find e: with no
		// hotView it takes the locked path.
		e.hot.Store(nil)
		return
	}
	c.indexLocked(node, e)
	c.objects++
	c.setAllocatableLocked(node.Name, e, node)
}

// setAllocatableLocked records node's allocatable CPU and memory on e; a
// change makes e's usage State stale (it carries them).
func (c *Cache) setAllocatableLocked(name string, e *nodeEntry, node *v1.Node) {
	cpu, mem, ok := allocatable(node)
	if ok == e.allocKnown && cpu == e.allocCPU && mem == e.allocMem {
		return
	}
	e.allocKnown, e.allocCPU, e.allocMem = ok, cpu, mem
	c.staleLocked(name, e)
}

// staleLocked drops node name's usage State (rebuilt lazily) and marks the
// node for the supply to count again (Pricing).
func (c *Cache) staleLocked(name string, e *nodeEntry) {
	e.state.Store(nil)
	c.dirty[name] = struct{}{}
}

// allocatable is node's allocatable CPU (milli) and memory (MiB, rounded
// down); false when it reports no CPU.
func allocatable(node *v1.Node) (cpuMilli, memMiB int64, ok bool) {
	cpu, ok := node.Status.Allocatable[v1.ResourceCPU]
	if !ok || cpu.MilliValue() <= 0 {
		return 0, 0, false
	}
	mem := node.Status.Allocatable[v1.ResourceMemory]
	return cpu.MilliValue(), mem.Value() >> 20, true
}

func (c *Cache) entryLocked(name string) *nodeEntry {
	e := c.nodes[name]
	if e == nil {
		e = &nodeEntry{pods: map[types.UID]*podEntry{}}
		c.nodes[name] = e
	}
	return e
}

func (c *Cache) updateNodeLocked(name, topoRaw, inUseRaw string) *nodeEntry {
	e := c.entryLocked(name)
	c.decodeLocked(e, topoRaw, inUseRaw)
	c.dirty[name] = struct{}{}
	return e
}

// decodeLocked folds changed annotation values into e.
func (c *Cache) decodeLocked(e *nodeEntry, topoRaw, inUseRaw string) {
	if topoRaw != e.topoRaw || (e.topo == nil && e.topoErr == nil) {
		e.topoRaw = topoRaw
		e.topo, e.empty, e.topoErr = nil, nil, nil
		c.unpublishLocked(e)
		if topoRaw == "" {
			e.topoErr = fmt.Errorf("node has no %s annotation", protocol.TopologyAnnotation)
		} else if n, err := protocol.DecodeTopology(topoRaw); err != nil {
			e.topoErr = err
		} else {
			e.topo, e.empty = n, score.NewState(n)
			c.publishLocked(e, n.Resources)
		}
		e.state.Store(nil)
	}
	if inUseRaw != e.inUseRaw || e.inUse == nil {
		e.inUseRaw = inUseRaw
		e.inUse, e.inUseErr, e.inUseByPod = map[string]bool{}, nil, nil
		if inUseRaw != "" {
			if u, err := protocol.DecodeInUse(inUseRaw); err != nil {
				// A report we cannot read: we cannot know which GPUs are in
				// use (pods of other schedulers included), so the node gets
				// no GPU pods until the device plugin writes a good one.
				e.inUseErr = fmt.Errorf("node's %s report is unreadable, so which GPUs are in use is unknown: %w", protocol.InUseAnnotation, err)
			} else {
				e.inUse = u.IDs()
				e.inUseByPod = map[types.UID][]string{}
				for _, p := range u.Pods {
					e.inUseByPod[types.UID(p.UID)] = append(e.inUseByPod[types.UID(p.UID)], p.Devices...)
				}
			}
		}
		e.state.Store(nil)
	}
}

// publishLocked counts the resource names node entry e publishes (its
// previous names uncounted first).
func (c *Cache) publishLocked(e *nodeEntry, rs []topology.Resource) {
	c.unpublishLocked(e)
	for _, r := range rs {
		if n, ok := c.published[r.Name]; ok || len(c.published) < maxPublishedNames {
			c.published[r.Name] = n + 1
			e.published = append(e.published, r.Name)
		}
	}
}

// unpublishLocked uncounts the names e published; a name no entry
// publishes any more is forgotten.
func (c *Cache) unpublishLocked(e *nodeEntry) {
	for _, name := range e.published {
		if c.published[name] <= 1 {
			delete(c.published, name)
		} else {
			c.published[name]--
		}
	}
	e.published = nil
}

// PublishedCount is how many resource names nodes publish now.
func (c *Cache) PublishedCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.published)
}

// Published reports whether some node publishes a resource of that name.
func (c *Cache) Published(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.published[name]
	return ok
}

// stateLocked returns e's usage State, rebuilding it when stale. Called
// with the write lock held.
func (c *Cache) stateLocked(e *nodeEntry) *score.State {
	if st := e.state.Load(); st != nil || e.topo == nil {
		return st
	}
	used := make(map[string]bool, len(e.inUse))
	for id := range e.inUse {
		used[id] = true
	}
	for _, p := range e.pods {
		for _, id := range p.ids {
			used[id] = true
		}
	}
	st, _ := score.StateOf(e.topo, used)
	e.standIns, e.standInsFor = c.standInsLocked(e, st, used), st
	if e.allocKnown {
		st.SetAllocatable(e.allocCPU, e.allocMem)
	}
	e.state.Store(st)
	return st
}

// Used returns the device IDs counted as in use on node (own choices
// UNION in-use report UNION foreign pods' stand-ins).
func (c *Cache) Used(node string) map[string]bool {
	return c.UsedWithout(node, nil)
}

// UsedWithout is Used without the devices of the pods in skip (preemption
// victims), from the own choices and the in-use report of every other pod.
func (c *Cache) UsedWithout(node string, skip []types.UID) map[string]bool {
	c.mu.RLock()
	if e := c.nodes[node]; e.standInsCurrent() {
		defer c.mu.RUnlock()
		return usedOf(e, skip)
	}
	c.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usedLocked(c.nodes[node], skip)
}

// used is usedLocked under the read lock while e's stand-ins are current
// (Filter asks it of every node with nominated pods or victims, on every
// worker at once); under the write lock when they are to be worked out.
func (c *Cache) used(e *nodeEntry, skip []types.UID) map[string]bool {
	c.mu.RLock()
	if e.standInsCurrent() {
		defer c.mu.RUnlock()
		return usedOf(e, skip)
	}
	c.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usedLocked(e, skip)
}

// standInsCurrent reports whether e's stand-ins are those of its current
// usage State (then readable under the read lock). False for no entry.
func (e *nodeEntry) standInsCurrent() bool {
	st := e.stateOrNil()
	return st != nil && st == e.standInsFor
}

// usedLocked is e's used device IDs without skip's; it brings e's usage
// State, and so its stand-ins, up to date. c.mu must be held for writing.
func (c *Cache) usedLocked(e *nodeEntry, skip []types.UID) map[string]bool {
	if e == nil {
		return map[string]bool{}
	}
	c.stateLocked(e)
	return usedOf(e, skip)
}

// usedOf is usedLocked once e's stand-ins are current (or e has no
// topology); c.mu held for reading at least.
func usedOf(e *nodeEntry, skip []types.UID) map[string]bool {
	used := map[string]bool{}
	if e.standInsCurrent() {
		for uid, ids := range e.standIns {
			if !slices.Contains(skip, uid) {
				for _, id := range ids {
					used[id] = true
				}
			}
		}
	}
	if len(skip) == 0 {
		for id := range e.inUse {
			used[id] = true
		}
	} else {
		for uid, ids := range e.inUseByPod {
			if !slices.Contains(skip, uid) {
				for _, id := range ids {
					used[id] = true
				}
			}
		}
	}
	for uid, p := range e.pods {
		if slices.Contains(skip, uid) {
			continue
		}
		for _, id := range p.ids {
			used[id] = true
		}
	}
	return used
}

// Assume records the scheduler's choice for a pod (Reserve). A pod the
// informer has reported bound keeps the devices it was bound with: a cycle
// that began before that report (the pod requeued after a bind call that
// failed once the apiserver had applied it) may reserve it again, but its
// bind is refused, and its Unreserve must not take the bound devices away.
func (c *Cache) Assume(uid types.UID, node string, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pods[uid]; p != nil && !p.assumed {
		return
	}
	c.setPodLocked(uid, &podEntry{node: node, ids: ids, assumed: true})
}

// Forget drops a pod's choice (pod deleted or finished).
func (c *Cache) Forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(uid)
}

// Unassume drops a pod's choice if it is still merely assumed (Unreserve).
// A pod the informer has reported bound with its devices keeps them: the
// bind call may have failed after the apiserver applied the binding, and
// the pod then runs on those devices. It goes when the informer reports it
// deleted or finished (Forget).
func (c *Cache) Unassume(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pods[uid]; p != nil && p.assumed {
		c.dropLocked(uid)
	}
}

// AddPod folds in a pod from the informer: a pod bound to a node with a
// gpupack.io/devices annotation holds those devices until it finishes. A
// bound pod's requests that its annotation does not cover (none, or one
// that does not decode: another scheduler's pod) hold their count of the
// node's devices (foreign.go). So do requests whose devices the
// annotation names but the node does not have (a node re-created with
// other GPUs, another machine's UUIDs), and a resource whose annotated
// devices are not as many as the pod asks: the device plugin's handoff
// gives no such set (pkg/deviceplugin handoff.go), the kubelet gives the
// pod devices of its own choice, and the in-use report names them later.
// A malformed annotation, or one that does not match the pod's requests,
// is returned as an error, the pod's requests still held.
func (c *Cache) AddPod(pod *v1.Pod) error {
	if podutil.IsPodTerminal(pod) {
		c.Forget(pod.UID)
		return nil
	}
	if pod.Spec.NodeName == "" {
		return nil
	}
	raw, annotated := pod.Annotations[protocol.DevicesAnnotation]
	var ids []string
	var err error
	if annotated {
		d, derr := protocol.DecodeDevices(raw)
		if derr != nil {
			err = fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, derr)
		} else {
			ids, err = annotatedIDs(pod, d)
		}
	}
	p := boundPodEntry(pod, ids)
	if (!annotated || err != nil) && p.needs == nil {
		return err
	}
	if len(ids) == 0 {
		c.setPod(pod.UID, p)
		return err
	}
	// A copy of another pod's annotations (kubectl debug --copy-to
	// --same-node keeps them and the node) names devices that pod holds:
	// the kubelet gave the copy others, so it is counted as another
	// scheduler's pod, by its requests, until the in-use report names its
	// devices.
	if holder := c.setPodUnlessHeld(pod.UID, p, func() *podEntry { return boundPodEntry(pod, nil) }); holder != "" {
		return fmt.Errorf("pod %s/%s: its %s names devices that pod UID %s holds (a copy of that pod's annotations?): its GPU requests are counted as held, on devices unknown until the node's in-use report names them",
			pod.Namespace, pod.Name, protocol.DevicesAnnotation, holder)
	}
	return err
}

// annotatedIDs are the devices pod's decoded gpupack.io/devices d names, of
// each resource whose devices (distinct: DecodeDevices refuses one listed
// twice) are as many as the pod asks of it (its peak: freshChunks); the
// other resources' are left out, with an error naming them.
func annotatedIDs(pod *v1.Pod, d *protocol.Devices) ([]string, error) {
	var ids []string
	var mismatched []string
	for _, res := range slices.Sorted(maps.Keys(d.Resources)) {
		named := d.Resources[res]
		if asked := sum(freshChunks(pod, res)); len(named) != asked {
			mismatched = append(mismatched, fmt.Sprintf("%d %s named, %d asked", len(named), res, asked))
			continue
		}
		ids = append(ids, named...)
	}
	if len(mismatched) > 0 {
		return ids, fmt.Errorf("pod %s/%s: its %s does not match its requests (%s): the device plugin gives no such set, so its requests are counted as held on devices unknown until the node's in-use report names them",
			pod.Namespace, pod.Name, protocol.DevicesAnnotation, strings.Join(mismatched, "; "))
	}
	return ids, nil
}

// boundPodEntry is the cache's entry of pod bound with devices ids (its
// gpupack.io/devices, those that match its requests). Its needs are all
// its requests of extended resources: the devices it is known to hold
// (ids the node has, and the in-use report's) stand for them, and stand-ins
// for the rest (foreign.go).
func boundPodEntry(pod *v1.Pod, ids []string) *podEntry {
	p := &podEntry{node: pod.Spec.NodeName, ids: ids, needs: needsOf(pod)}
	if p.needs != nil {
		p.hint, _ = protocol.TopologyHintOf(pod, score.HintPreferred) // malformed: the device plugin's default
		p.policy, p.policySet, _ = protocol.ReplicaPolicyOf(pod)      // malformed: the node's
	}
	return p
}

// setPodUnlessHeld is setPod of p, unless another pod on p's node holds
// one of p's devices: then the pod's entry is unannotated() (or none when
// that holds nothing), and the holder's UID is returned.
func (c *Cache) setPodUnlessHeld(uid types.UID, p *podEntry, unannotated func() *podEntry) types.UID {
	c.mu.Lock()
	defer c.mu.Unlock()
	holder := c.holderLocked(uid, p)
	if holder == "" {
		c.setPodLocked(uid, p)
		return ""
	}
	if u := unannotated(); u.needs != nil {
		c.setPodLocked(uid, u)
	} else {
		c.dropLocked(uid)
	}
	return holder
}

// holderLocked is the UID of a pod other than uid on p's node that holds
// one of p's devices, "" when none does.
func (c *Cache) holderLocked(uid types.UID, p *podEntry) types.UID {
	e := c.nodes[p.node]
	if e == nil {
		return ""
	}
	for other, o := range e.pods {
		if other == uid {
			continue
		}
		for _, id := range o.ids {
			if slices.Contains(p.ids, id) {
				return other
			}
		}
	}
	return ""
}

func (c *Cache) setPod(uid types.UID, p *podEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setPodLocked(uid, p)
}

func (c *Cache) setPodLocked(uid types.UID, p *podEntry) {
	if old := c.pods[uid]; old != nil && (old.sameAs(p) || old.confirmedBy(p) && c.knownLocked(p.node, p.ids)) {
		// The bound pod the informer reports holds what Reserve assumed:
		// the node's usage, and so its State, stay.
		old.assumed = p.assumed
		old.needs, old.hint, old.policy, old.policySet = p.needs, p.hint, p.policy, p.policySet
		return
	}
	c.dropLocked(uid)
	c.pods[uid] = p
	e := c.entryLocked(p.node)
	e.pods[uid] = p
	c.staleLocked(p.node, e)
}

func (c *Cache) dropLocked(uid types.UID) {
	old := c.pods[uid]
	if old == nil {
		return
	}
	delete(c.pods, uid)
	if e := c.nodes[old.node]; e != nil {
		delete(e.pods, uid)
		c.staleLocked(old.node, e)
		c.dropIfUnusedLocked(old.node, e)
	}
}

// PodDevices returns the IDs held for a pod and its node.
func (c *Cache) PodDevices(uid types.UID) (node string, ids []string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p := c.pods[uid]
	if p == nil {
		return "", nil, false
	}
	return p.node, append([]string(nil), p.ids...), true
}

// HeldBy returns the device IDs pod uid holds on node: the scheduler's own
// choice, what the node's in-use report says and the stand-ins of its
// requests neither names yet (foreign.go).
func (c *Cache) HeldBy(node string, uid types.UID) []string {
	c.mu.RLock()
	if e := c.nodes[node]; e == nil || e.topo == nil || e.standInsCurrent() {
		defer c.mu.RUnlock()
		return heldByOf(c.pods[uid], node, e, uid)
	}
	c.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.nodes[node]
	if e != nil {
		c.stateLocked(e)
	}
	return heldByOf(c.pods[uid], node, e, uid)
}

// heldByOf is HeldBy of pod p (uid) on node, entry e (nil: none) with its
// stand-ins current or none.
func heldByOf(p *podEntry, node string, e *nodeEntry, uid types.UID) []string {
	var ids []string
	if p != nil && p.node == node {
		ids = append(ids, p.ids...)
	}
	if e != nil {
		ids = append(ids, e.inUseByPod[uid]...)
		if e.standInsCurrent() {
			ids = append(ids, e.standIns[uid]...)
		}
	}
	return ids
}

// Fragmentation is the sum of every readable GPU node's fragmentation under
// d (pkg/score.Fragmentation), in GPUs. States are immutable once built, so
// they are collected under the lock and measured outside it.
func (c *Cache) Fragmentation(d *score.Distribution) float64 {
	c.mu.Lock()
	states := make([]*score.State, 0, len(c.nodes))
	for _, e := range c.nodes {
		if e.topo != nil && e.inUseErr == nil {
			states = append(states, c.stateLocked(e))
		}
	}
	c.mu.Unlock()
	var f float64
	for _, st := range states {
		f += score.Fragmentation(st, d)
	}
	return f
}

// Pricing returns the prices of the cluster's supply under d
// (score.Supply.Pricing): the nodes changed since the last call are
// counted again first (their usage States rebuilt), then d's new task
// types on every node. The answer is kept while the supply's totals, its
// free capacity and d stay (score.Supply.Version): a node marked dirty
// whose slots did not move (a Node status update, a pod the informer
// confirms) costs its recount only. The plugin asks once per scheduling
// cycle (PreScore).
func (c *Cache) Pricing(d *score.Distribution) *score.Pricing {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.supply == nil {
		c.supply = score.NewSupply[string](d)
		for name := range c.nodes {
			c.dirty[name] = struct{}{}
		}
	}
	for name := range c.dirty {
		c.resupplyLocked(name)
	}
	if len(c.dirty) > dirtyKeep {
		c.dirty = map[string]struct{}{}
	} else {
		clear(c.dirty)
	}
	c.supply.SetDistribution(d)
	if c.pricing == nil || c.supply.Version() != c.pricedAt {
		c.pricing, c.pricedAt = c.supply.Pricing(), c.supply.Version()
	}
	return c.pricing
}

// resupplyLocked counts node name's current usage State in the supply, or
// takes the node out when it has no readable one. A node a cycle viewed
// before the informer delivered it counts too, as in Filter.
func (c *Cache) resupplyLocked(name string) {
	e := c.nodes[name]
	if e == nil || e.topo == nil || e.inUseErr != nil {
		c.supply.Remove(name)
		if e != nil {
			e.supplied = nil
		}
		return
	}
	if st := c.stateLocked(e); st != e.supplied {
		c.supply.Update(name, st)
		e.supplied = st
	}
}

// Objects is the number of entries with a Node object, for tests of the
// cache's footprint.
func (c *Cache) Objects() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.objects
}

// Decoded is the number of nodes whose topology is decoded (for tests and
// benchmarks waiting on the informer).
func (c *Cache) Decoded() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, e := range c.nodes {
		if e.topo != nil {
			n++
		}
	}
	return n
}

// Assumed reports whether the cache holds pod uid's devices (held) and
// whether merely as assumed (not yet reported bound by the informer).
func (c *Cache) Assumed(uid types.UID) (held, assumed bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p := c.pods[uid]
	return p != nil, p != nil && p.assumed
}

// Topology is the decoded topology the cache keeps for node name (nil
// when none).
func (c *Cache) Topology(name string) *topology.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.nodes[name]; e != nil {
		return e.topo
	}
	return nil
}
