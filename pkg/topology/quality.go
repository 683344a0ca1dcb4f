package topology

import "math"

// PerfectGBps is the RingGBps of a set of one GPU: there is no link to limit
// it. It is math.MaxFloat64 (not +Inf) so that ratios such as
// q.RingGBps/ideal.RingGBps stay 1 and JSON encoding of a Quality works.
const PerfectGBps = math.MaxFloat64

// Quality is how well a GPU set can run a ring all-reduce.
type Quality struct {
	// RingGBps is the bottleneck link bandwidth of the best Hamiltonian ring
	// over the set (max over rings of the min edge); for two GPUs, their
	// link; for one GPU, PerfectGBps; for none, 0.
	RingGBps float64 `json:"ringGBps"`
	// SumGBps is the sum of the bandwidth of every pair in the set; it breaks
	// ties between equal rings.
	SumGBps float64 `json:"sumGBps"`
}

// Better reports whether q is strictly better than o: a faster ring, or an
// equal ring and a larger pairwise sum.
func (q Quality) Better(o Quality) bool {
	return q.RingGBps > o.RingGBps || (q.RingGBps == o.RingGBps && q.SumGBps > o.SumGBps)
}

// Equal reports whether q and o are equally good.
func (q Quality) Equal(o Quality) bool {
	return q.RingGBps == o.RingGBps && q.SumGBps == o.SumGBps
}

// Perfect reports whether q is the quality of a single GPU.
func (q Quality) Perfect() bool { return q.RingGBps == PerfectGBps }
