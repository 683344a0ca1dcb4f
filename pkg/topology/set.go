package topology

import (
	"iter"
	"math/bits"
	"strconv"
	"strings"
)

// MaxGPUs is the largest number of GPUs a Node may have: a GPUSet is a 64-bit
// mask.
const MaxGPUs = 64

// MilliPerGPU is one GPU's capacity in share units (milli-GPUs): the unit
// of a time-shared task's share (score.TaskType.Milli, the traces'
// gpu_milli).
const MilliPerGPU = 1000

// GPUSet is a set of GPUs of one node: bit i is the GPU at index i.
type GPUSet uint64

// SetOf returns the set of the given GPU indexes; indexes outside [0, 64) are
// ignored.
func SetOf(idx ...int) GPUSet {
	var s GPUSet
	for _, i := range idx {
		if i >= 0 && i < MaxGPUs {
			s |= 1 << uint(i)
		}
	}
	return s
}

// FirstN returns the set {0, 1, ..., n-1} (capped to 64 GPUs).
func FirstN(n int) GPUSet {
	switch {
	case n <= 0:
		return 0
	case n >= MaxGPUs:
		return ^GPUSet(0)
	default:
		return GPUSet(1)<<uint(n) - 1
	}
}

// Len returns the number of GPUs in the set.
func (s GPUSet) Len() int { return bits.OnesCount64(uint64(s)) }

// Has reports whether GPU i is in the set.
func (s GPUSet) Has(i int) bool {
	return i >= 0 && i < MaxGPUs && s&(1<<uint(i)) != 0
}

// Add returns s with GPU i added (i outside [0, 64) is ignored).
func (s GPUSet) Add(i int) GPUSet { return s | SetOf(i) }

// Remove returns s without GPU i.
func (s GPUSet) Remove(i int) GPUSet { return s &^ SetOf(i) }

// Union returns s | o.
func (s GPUSet) Union(o GPUSet) GPUSet { return s | o }

// Intersect returns s & o.
func (s GPUSet) Intersect(o GPUSet) GPUSet { return s & o }

// Minus returns the GPUs of s not in o.
func (s GPUSet) Minus(o GPUSet) GPUSet { return s &^ o }

// SubsetOf reports whether every GPU of s is in o.
func (s GPUSet) SubsetOf(o GPUSet) bool { return s&^o == 0 }

// Lowest returns the smallest index in s, or -1 when s is empty.
func (s GPUSet) Lowest() int {
	if s == 0 {
		return -1
	}
	return LowBit(uint64(s))
}

// Indexes returns the GPU indexes of s in increasing order.
func (s GPUSet) Indexes() []int {
	out := make([]int, 0, s.Len())
	for i := range s.All() {
		out = append(out, i)
	}
	return out
}

// All iterates over the GPU indexes of s in increasing order:
// for i := range set.All() { ... }.
func (s GPUSet) All() iter.Seq[int] {
	return func(yield func(int) bool) {
		for t := uint64(s); t != 0; t &= t - 1 {
			if !yield(LowBit(t)) {
				return
			}
		}
	}
}

// LowBit is the index of the lowest set bit of mask (64 for 0): the one
// low-bit helper, for the search's raw masks; a GPUSet has All and Lowest.
func LowBit(mask uint64) int { return bits.TrailingZeros64(mask) }

// String returns the set as "{0,1,5}".
func (s GPUSet) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, idx := range s.Indexes() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(idx))
	}
	b.WriteByte('}')
	return b.String()
}

// Usable returns the GPUs that may be handed out as whole GPUs: present in
// n.GPUs (bit = position, which Decode checks equals GPU.Index), healthy and
// not MIG-enabled. Only the first 64 GPUs are considered.
func (n *Node) Usable() GPUSet {
	var s GPUSet
	for i, g := range n.GPUs {
		if i >= MaxGPUs {
			break
		}
		if g.Healthy && !g.MIGEnabled {
			s |= 1 << uint(i)
		}
	}
	return s
}

// All returns the set of every GPU of the node (first 64).
func (n *Node) All() GPUSet { return FirstN(len(n.GPUs)) }
