package gpucache

import (
	"math/bits"
	"sync/atomic"
	"unsafe"

	v1 "k8s.io/api/core/v1"
)

// nodeIndex finds a node's entry by the Node object it last read
// (nodeEntry.obj): the per-node hot path of Filter and Score
// (entryForNodeInfo) looks every node of every cycle up in it, without a
// lock.
//
// Why not a map: kube-scheduler runs Filter and Score on 16 workers at
// once, and a read lock is an atomic write to one shared word per node
// and call, a cache line every worker takes in turn; a sync.Map walks a
// trie of pointers (a cache miss per level), and a map keyed by name
// compares the name's bytes (another miss). At 5,000 nodes the lookup was
// 8% of the scheduler's CPU in `make bench-throughput` (2026-12, sync.Map).
// Here a lookup hashes the Node pointer and reads one 16-byte slot,
// usually on one cache line, then the entry.
//
// It is an open-addressing table with linear probing: one writer (under
// Cache.mu) and any number of lock-free readers. A slot's Node goes from
// nil to a Node object to deletedNode and is never reused, so a reader
// that sees its Node sees the entry stored before it (or nil once the
// Node is deleted, stored after it). When the filled slots (live and
// deleted) would pass 3/4 of the table, the writer builds a new table of
// the live ones and publishes it; readers still on the old one may find
// an entry that no longer reads that Node object, which the hot path's
// own checks (hotView.obj, its usage State, setObjLocked clearing the
// hotView of an entry that reads no Node) turn away to the locked path.
// The Node pointer's address is only hashed: Go's collector does not
// move heap objects, and the slot holds the pointer itself.
type nodeIndex struct {
	slots []indexSlot
	// shift is 64 - log2(len(slots)): home takes the hash's top bits.
	shift uint
	// filled are the slots with a Node or deletedNode, live those with a
	// Node (written under Cache.mu only).
	filled, live int
}

type indexSlot struct {
	node  atomic.Pointer[v1.Node]
	entry atomic.Pointer[nodeEntry]
}

// deletedNode marks a slot whose Node object was deleted.
var deletedNode = new(v1.Node)

// minIndexSlots is the smallest table.
const minIndexSlots = 64

// newNodeIndex returns an empty table for about n Node objects: at least
// twice as many slots, a power of two.
func newNodeIndex(n int) *nodeIndex {
	size := max(minIndexSlots, 1<<bits.Len(uint(2*n)))
	return &nodeIndex{slots: make([]indexSlot, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

// home is node's first slot: Fibonacci hashing of its address.
func (t *nodeIndex) home(node *v1.Node) int {
	return int(uint64(uintptr(unsafe.Pointer(node))) * 0x9E3779B97F4A7C15 >> t.shift)
}

// probe walks from node's home slot to the slot holding node or, when
// none does, the first empty one; it returns that slot and the Node it
// read there (node or nil). Safe without the lock: a slot filled after it
// was read empty is not looked at.
func (t *nodeIndex) probe(node *v1.Node) (*indexSlot, *v1.Node) {
	mask := len(t.slots) - 1
	for i := t.home(node); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if n := s.node.Load(); n == node || n == nil {
			return s, n
		}
	}
}

// find returns the entry indexed under node, nil if none. Safe without
// the lock.
func (t *nodeIndex) find(node *v1.Node) *nodeEntry {
	if s, n := t.probe(node); n == node {
		return s.entry.Load()
	}
	return nil
}

// put indexes e under node (replacing what node had); the table must have
// a free slot. Under Cache.mu.
func (t *nodeIndex) put(node *v1.Node, e *nodeEntry) {
	s, n := t.probe(node)
	s.entry.Store(e) // before the Node: a reader that sees it sees e
	if n == nil {
		s.node.Store(node)
		t.filled++
		t.live++
	}
}

// remove forgets node. Under Cache.mu.
func (t *nodeIndex) remove(node *v1.Node) {
	if s, n := t.probe(node); n == node {
		s.node.Store(deletedNode)
		s.entry.Store(nil)
		t.live--
	}
}

// lookupNode is the entry indexed under node, nil if none (lock-free).
func (c *Cache) lookupNode(node *v1.Node) *nodeEntry {
	if node == nil {
		return nil // find(nil) could meet a slot being filled
	}
	if t := c.index.Load(); t != nil {
		return t.find(node)
	}
	return nil
}

// indexLocked indexes e under node, building a new table first when the
// current one would be more than 3/4 filled (its live Node objects only).
// Under c.mu.
func (c *Cache) indexLocked(node *v1.Node, e *nodeEntry) {
	t := c.index.Load()
	if t == nil || 4*(t.filled+1) > 3*len(t.slots) {
		live := 0
		if t != nil {
			live = t.live
		}
		nt := newNodeIndex(live + 1)
		if t != nil {
			for i := range t.slots {
				s := &t.slots[i]
				if n := s.node.Load(); n != nil && n != deletedNode {
					nt.put(n, s.entry.Load())
				}
			}
		}
		c.index.Store(nt)
		t = nt
	}
	t.put(node, e)
}

// unindexLocked forgets node. Under c.mu.
func (c *Cache) unindexLocked(node *v1.Node) {
	if t := c.index.Load(); t != nil {
		t.remove(node)
	}
}
