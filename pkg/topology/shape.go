package topology

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Shape is the bandwidth matrix of a node, with the memo of the best-set
// search. Nodes whose matrices are equal share one Shape (Node.Shape interns
// them), and so share the memo. A Shape is immutable apart from its memo and
// safe for concurrent use.
type Shape struct {
	n int
	// bw is n x n, row-major; the diagonal is 0.
	bw []float64
	// levels are the distinct off-diagonal bandwidths, best first.
	levels []float64
	// lvl[i*n+j] is the index in levels of bw(i, j) (the diagonal holds
	// len(levels)).
	lvl []uint16
	// adj[l][i] is the set of GPUs j != i with bw(i, j) >= levels[l].
	adj [][]GPUSet
	// key is the canonical encoding of the matrix (see shapeKey).
	key string

	memo    sync.Map // memoKey -> memoEntry
	memoLen atomic.Int64
	qmemo   sync.Map // GPUSet -> Quality
	qLen    atomic.Int64
	// traces are BestSetWithout's traced searches (without.go).
	traces   sync.Map // memoKey -> *trace
	traceLen atomic.Int64
}

type memoKey struct {
	free GPUSet
	size int
}

type memoEntry struct {
	set GPUSet
	q   Quality
	ok  bool
}

// maxMemo bounds each of a Shape's memos; a full memo is cleared and refilled.
// 1<<17 covers every (free mask, size) of an 8-GPU shape many times over and a
// good part of a 16-GPU one (65536 masks x 16 sizes).
const maxMemo = 1 << 17

// maxInterned bounds the number of interned shapes (a cluster has a handful);
// past it Node.Shape returns a fresh, un-interned Shape, still correct.
const maxInterned = 4096

var interned = struct {
	sync.RWMutex
	m map[string]*Shape
}{m: make(map[string]*Shape)}

// Shape returns the interned Shape of n's bandwidth matrix (Bandwidth for
// every pair of the first 64 GPUs). All nodes with the same matrix get the same
// *Shape, and so share its best-set memo. It is safe for concurrent use and
// costs one pass over the matrix and one map lookup.
func (n *Node) Shape() *Shape {
	var buf [8 + 16*15/2*8]byte
	key := n.appendShapeKey(buf[:0])
	interned.RLock()
	s := interned.m[string(key)]
	interned.RUnlock()
	if s != nil {
		return s
	}
	s = shapeFromKey(string(key))
	interned.Lock()
	defer interned.Unlock()
	if old := interned.m[s.key]; old != nil {
		return old
	}
	if len(interned.m) < maxInterned {
		interned.m[s.key] = s
	}
	return s
}

// appendShapeKey appends the canonical encoding of n's bandwidth matrix: the
// GPU count (uint64), then the float64 bits of Bandwidth(i, j) for i < j, row
// by row, little endian.
func (n *Node) appendShapeKey(b []byte) []byte {
	size := min(len(n.GPUs), MaxGPUs)
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	for i := range size {
		for j := i + 1; j < size; j++ {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(n.Bandwidth(i, j)))
		}
	}
	return b
}

// shapeFromKey builds a fresh (not interned) Shape from its key.
func shapeFromKey(key string) *Shape {
	size := int(binary.LittleEndian.Uint64([]byte(key[:8])))
	bw := make([]float64, size*size)
	off := 8
	for i := range size {
		for j := i + 1; j < size; j++ {
			v := math.Float64frombits(binary.LittleEndian.Uint64([]byte(key[off : off+8])))
			off += 8
			bw[i*size+j], bw[j*size+i] = v, v
		}
	}
	return newShape(size, bw, key)
}

// newShape builds a Shape from an n x n symmetric matrix (row-major).
func newShape(n int, bw []float64, key string) *Shape {
	s := &Shape{n: n, bw: bw, key: key}
	for i := range n {
		for j := i + 1; j < n; j++ {
			s.levels = append(s.levels, bw[i*n+j])
		}
	}
	slices.Sort(s.levels)
	s.levels = slices.Compact(s.levels)
	slices.Reverse(s.levels)
	s.lvl = make([]uint16, n*n)
	s.adj = make([][]GPUSet, len(s.levels))
	for l := range s.adj {
		s.adj[l] = make([]GPUSet, n)
	}
	for i := range n {
		s.lvl[i*n+i] = uint16(len(s.levels))
		for j := range n {
			if i == j {
				continue
			}
			l, _ := slices.BinarySearchFunc(s.levels, bw[i*n+j], func(a, b float64) int {
				switch {
				case a > b:
					return -1
				case a < b:
					return 1
				}
				return 0
			})
			s.lvl[i*n+j] = uint16(l)
			for m := l; m < len(s.levels); m++ {
				s.adj[m][i] |= 1 << uint(j)
			}
		}
	}
	return s
}

// Len returns the number of GPUs of the shape.
func (s *Shape) Len() int { return s.n }

// Bandwidth returns the bandwidth figure between GPUs i and j (0 for i == j or
// out of range).
func (s *Shape) Bandwidth(i, j int) float64 {
	if i < 0 || j < 0 || i >= s.n || j >= s.n {
		return 0
	}
	return s.bw[i*s.n+j]
}

// All returns the set of every GPU of the shape.
func (s *Shape) All() GPUSet { return FirstN(s.n) }

// Reset forgets the memoized results (for benchmarks and tests).
func (s *Shape) Reset() {
	s.memo.Clear()
	s.memoLen.Store(0)
	s.qmemo.Clear()
	s.qLen.Store(0)
	s.traces.Clear()
	s.traceLen.Store(0)
}

// Quality returns the quality of a set of the shape's GPUs (GPUs outside the
// shape are ignored): the best ring's bottleneck, then the pairwise sum. It is
// exact for sets of up to 20 GPUs; for bigger sets the ring is a lower bound
// (a Hamiltonian-cycle search with a step budget).
func (s *Shape) Quality(set GPUSet) Quality {
	set &= s.All()
	switch set.Len() {
	case 0:
		return Quality{}
	case 1:
		return Quality{RingGBps: PerfectGBps}
	case 2:
		i := set.Lowest()
		j := (set &^ (1 << uint(i))).Lowest()
		b := s.bw[i*s.n+j]
		return Quality{RingGBps: b, SumGBps: b}
	}
	if v, ok := s.qmemo.Load(set); ok {
		return v.(Quality)
	}
	q := Quality{RingGBps: s.ring(set), SumGBps: s.sum(set)}
	if s.qLen.Add(1) > maxMemo {
		s.qmemo.Clear()
		s.qLen.Store(0)
	}
	s.qmemo.Store(set, q)
	return q
}

// sum is the sum of the bandwidth of every pair of set.
func (s *Shape) sum(set GPUSet) float64 {
	var total float64
	for t := uint64(set); t != 0; t &= t - 1 {
		i := LowBit(t)
		row := s.bw[i*s.n:]
		for u := t & (t - 1); u != 0; u &= u - 1 {
			total += row[LowBit(u)]
		}
	}
	return total
}

// ring is the best Hamiltonian ring's bottleneck over set (3 GPUs or more).
func (s *Shape) ring(set GPUSet) float64 {
	// No ring is better than the worst vertex's second-best link.
	top := 0
	for t := uint64(set); t != 0; t &= t - 1 {
		i := LowBit(t)
		best, second := len(s.levels), len(s.levels)
		for u := uint64(set) &^ (1 << uint(i)); u != 0; u &= u - 1 {
			l := int(s.lvl[i*s.n+LowBit(u)])
			if l < best {
				best, second = l, best
			} else if l < second {
				second = l
			}
		}
		top = max(top, second)
	}
	for l := top; l < len(s.levels); l++ {
		if hamiltonian(set, s.adj[l]) {
			return s.levels[l]
		}
	}
	return 0 // unreachable: the last level is a complete graph
}
