package score

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gpupack/gpupack/pkg/topology"
)

// The choice memo: Choose's answer for whole-GPU and shared requests
// depends only on the node's layout (link shape, GPU models, usable GPUs,
// replicas per GPU), its usage (free GPUs and replicas used per GPU), which
// its free CPU and memory and the request's, the request and the workload
// snapshot. Nodes of one layout with the same usage
// therefore share one computation: the memo maps that signature to the
// Choice without device IDs (names differ per node), which are filled in
// from the node on every hit. MIG requests and requests with devices that
// must be included are not memoized.

// memoGPUs is the largest node whose choices are memoized (the usage key
// holds one byte of replicas used per GPU).
const memoGPUs = 32

// memoShards and memoShardSize bound the memo: a full shard is cleared and
// refilled (old workload snapshots' entries go that way too).
const (
	memoShards    = 16
	memoShardSize = 1 << 12
)

// maxLayouts bounds the interned layouts; past it states get layout 0 and
// are not memoized.
const maxLayouts = 1 << 12

// choiceKey is the signature of one Choose question.
type choiceKey struct {
	dist   uint64 // Distribution.id
	layout uint64 // State.layout
	free   topology.GPUSet
	used   [memoGPUs]uint8 // replicas used per usable GPU
	kind   Kind
	count  int
	policy ReplicaPolicy
	hint   TopologyHint
	model  string
	// noShared: time-shared GPUs are left out of a whole request.
	noShared bool
	// cpu and mem: the node's free CPU and memory and the request's (all 0
	// when the State does not know them): how many tasks of each type
	// the node holds before and after the request (taskCap) depend on them.
	cpu, mem, reqCPU, reqMem int64
}

// maxMemoTypes is the most task types a memoized distribution may have (the
// fit masks' bits).
const maxMemoTypes = 128

type choiceEntry struct {
	c  Choice
	ok bool
}

type memoShard struct {
	mu sync.RWMutex
	m  map[choiceKey]choiceEntry
}

var choiceMemo [memoShards]memoShard

// layoutKey identifies what, besides usage, a whole or shared choice depends
// on.
type layoutKey struct {
	shape  *topology.Shape
	usable topology.GPUSet
	models string // GPU models, NUL-separated
	reps   string // replicas per GPU, one byte each
}

var layouts = struct {
	sync.RWMutex
	m    map[layoutKey]uint64
	next uint64
}{m: map[layoutKey]uint64{}}

// distIDs numbers Distributions; 0 means "not memoized".
var distIDs atomic.Uint64

// layoutOf interns the layout of a new state; 0 when it cannot be memoized.
func layoutOf(s *State) uint64 {
	n := len(s.node.GPUs)
	if n > memoGPUs || s.shape == nil {
		return 0
	}
	var models strings.Builder
	reps := make([]byte, n)
	for i, g := range s.node.GPUs {
		if s.reps[i] > 255 {
			return 0
		}
		reps[i] = byte(s.reps[i])
		models.WriteString(g.Model)
		models.WriteByte(0)
	}
	k := layoutKey{shape: s.shape, usable: s.usable, models: models.String(), reps: string(reps)}
	layouts.RLock()
	id := layouts.m[k]
	layouts.RUnlock()
	if id != 0 {
		return id
	}
	layouts.Lock()
	defer layouts.Unlock()
	if id = layouts.m[k]; id != 0 {
		return id
	}
	if len(layouts.m) >= maxLayouts {
		return 0
	}
	layouts.next++
	layouts.m[k] = layouts.next
	return layouts.next
}

// keyOf returns the memo key of (s, req, d); false when not memoizable.
func (s *State) keyOf(req Request, d *Distribution) (choiceKey, bool) {
	if s.layout == 0 || d.id == 0 || req.Kind == KindMIG || len(d.Types) > maxMemoTypes {
		return choiceKey{}, false
	}
	k := choiceKey{
		dist: d.id, layout: s.layout, free: s.FreeGPUs(),
		kind: req.Kind, count: req.Count, policy: req.Policy, hint: req.Topology, model: req.Model,
		noShared: req.NoShared && req.Kind == KindWhole,
	}
	for i := range s.usable.All() {
		k.used[i] = uint8(s.repUsed[i])
	}
	if s.res && len(d.needy) > 0 {
		k.cpu, k.mem, k.reqCPU, k.reqMem = s.cpuFree, s.memFree, req.CPUMilli, req.MemoryMiB
	}
	return k, true
}

func (k *choiceKey) shard() *memoShard {
	h := (uint64(k.free) ^ k.layout*0x9e3779b97f4a7c15 ^ k.dist*0xc2b2ae3d27d4eb4f ^ uint64(k.count)<<40) * 0x9e3779b97f4a7c15
	return &choiceMemo[h>>60]
}

// chooseMemo is choose without devices to include, through the memo;
// names: fill in DeviceIDs of whole GPUs on a hit.
func (s *State) chooseMemo(req Request, d *Distribution, names bool) (Choice, bool) {
	k, ok := s.keyOf(req, d)
	if !ok {
		return choose(s, req, d, must{})
	}
	sh := k.shard()
	sh.mu.RLock()
	e, hit := sh.m[k]
	sh.mu.RUnlock()
	if !hit {
		c, ok := choose(s, req, d, must{})
		e = choiceEntry{c: c, ok: ok}
		e.c.DeviceIDs = nil
		e.c.Shares = slices.Clone(c.Shares)
		sh.mu.Lock()
		if sh.m == nil || len(sh.m) >= memoShardSize {
			sh.m = make(map[choiceKey]choiceEntry)
		}
		sh.m[k] = e
		sh.mu.Unlock()
		return c, ok
	}
	if !e.ok {
		return Choice{}, false
	}
	c := e.c
	c.Shares = slices.Clone(e.c.Shares)
	if c.Kind == KindWhole && names {
		c.DeviceIDs = s.gpuIDs(c.GPUs)
	}
	return c, true
}

// gpuIDs are the UUIDs of set, sorted.
func (s *State) gpuIDs(set topology.GPUSet) []string {
	ids := make([]string, 0, set.Len())
	for i := range set.All() {
		ids = append(ids, s.node.GPUs[i].UUID)
	}
	slices.Sort(ids)
	return ids
}

// ResetMemo forgets every memoized choice (for benchmarks of the cold path).
func ResetMemo() {
	for i := range choiceMemo {
		sh := &choiceMemo[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}
