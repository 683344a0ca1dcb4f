package score

import "github.com/gpupack/gpupack/pkg/topology"

// Fragmentation is the node's expected stranded GPU capacity under the
// workload d, after FGD (Weng et al., ATC'23) with a topology extension:
//
//	F = sum over task types m of p_m * (free capacity on the node that m cannot use)
//
// in GPUs. What task m cannot use:
//   - whole-GPU task of k GPUs: all free capacity when fewer than k usable
//     GPUs of its model are entirely free; otherwise the partly used GPUs'
//     free share and free GPUs of another model, plus, for k >= 2 (the
//     topology extension), the entirely free GPUs times (1 - r), where r is
//     the quality of the best k-set among them over the best the node's
//     shape offers for k (1 when a best-class set is still free);
//   - shared task of share s: the free share of every GPU that is not
//     time-shared or has less than s free;
//   - MIG task: all free (non-MIG) capacity;
//   - CPU and memory (when the State knows them, see SetFree): the free
//     capacity beyond what the node's free CPU and memory can feed, by m's
//     own tasks or by the workload's mix, is stranded for m too (all of it
//     when not one task of m fits: FGD's "lack CPU" case). See
//     resources.go.
func Fragmentation(s *State, d *Distribution) float64 {
	return s.fragmentation(d, 0)
}

// fragmentation is Fragmentation as if the entirely free GPUs in taken
// were in use too.
func (s *State) fragmentation(d *Distribution, taken topology.GPUSet) float64 {
	full := s.FreeGPUs()
	taken &= full
	full &^= taken
	total := s.FreeCapacity() - float64(taken.Len())
	if total <= 0 {
		return 0
	}
	var f float64
	for m, t := range d.Types {
		f += d.P[m] * max(s.fragFor(t, full, taken, total), total-s.taskCap(t, d))
	}
	return f
}

func (s *State) fragFor(t TaskType, full, taken topology.GPUSet, total float64) float64 {
	switch t.Kind {
	case KindWhole:
		return s.wholeFrag(t, full&s.modelMask(t.Model), total)
	case KindShared:
		return s.sharedStranded(t, s.modelMask(t.Model), taken)
	}
	return total
}

// wholeFrag is what a whole-GPU task of type t (t.Count GPUs) cannot use,
// given e, the entirely free GPUs of its model.
func (s *State) wholeFrag(t TaskType, e topology.GPUSet, total float64) float64 {
	k := t.Count
	n := e.Len()
	if n < k {
		return total
	}
	if k == 1 {
		return total - float64(n)
	}
	return total - float64(n)*s.bestRatio(e, k, t.Model)
}

// sharedStranded is the free share a shared task of type t cannot use: on
// every usable GPU not in taken that is not time-shared, not of model mask
// e or has less than t's share free.
func (s *State) sharedStranded(t TaskType, e, taken topology.GPUSet) float64 {
	var stranded float64
	for i := range (s.usable &^ taken).All() {
		free := s.reps[i] - s.repUsed[i]
		if free == 0 {
			continue
		}
		if !e.Has(i) || s.reps[i] <= 1 || free*topology.MilliPerGPU < t.Milli*s.reps[i] {
			stranded += float64(free) / float64(s.reps[i])
		}
	}
	return stranded
}

// bestRatio is the quality of the best size-k set within free over the
// best the shape offers for k GPUs of model (State.ideal), in [0, 1].
func (s *State) bestRatio(free topology.GPUSet, k int, model string) float64 {
	_, q, ok := s.shape.BestSet(free, k)
	if !ok {
		return 0
	}
	return ratio(q.RingGBps, s.ideal(model, k).RingGBps)
}

// ideal is the best quality a set of k GPUs of model ("" any; "a|b" a or
// b) can have on the node's shape with every GPU free: what a request's or
// a task type's set is measured against. GPUs of another model never
// serve it, so they do not set the bar (on a node of H100s on an NVSwitch
// and PCIe L40S cards, an L40S pair is held against the best L40S pair,
// not an H100 pair); health, MIG mode and usage do not count, as they do
// not for Shape.Ideal. The zero Quality when the node has fewer than k
// GPUs of model.
func (s *State) ideal(model string, k int) topology.Quality {
	if model == "" {
		return s.shape.Ideal(k)
	}
	_, q, _ := s.shape.BestSet(s.modelMaskAll(model), k)
	return q
}

// fragEval evaluates s.fragmentation(d, taken) for many taken sets of
// entirely free GPUs, with what does not depend on taken computed once.
type fragEval struct {
	s     *State
	full  topology.GPUSet
	cap   float64
	types []fragType
	buf   [16]fragType
}

type fragType struct {
	p    float64
	t    TaskType
	mask topology.GPUSet // usable GPUs of t's model
	// base is the shared task's stranded share with nothing taken;
	// strandedFree are the entirely free GPUs whose whole share counts
	// there (each 1).
	base         float64
	strandedFree topology.GPUSet
	// ideal is the shape's best ring for a whole task's count (k >= 2)
	// among the GPUs of its model.
	ideal float64
	// cap is the GPU capacity the tasks of t that the node's free CPU
	// and memory hold can take (taskCap).
	cap float64
}

func (s *State) newFragEval(d *Distribution) *fragEval {
	fe := &fragEval{s: s, full: s.FreeGPUs(), cap: s.FreeCapacity()}
	fe.types = fe.buf[:0]
	for m, t := range d.Types {
		ft := fragType{p: d.P[m], t: t, mask: s.modelMask(t.Model), cap: s.taskCap(t, d)}
		if t.Kind == KindWhole && t.Count >= 2 {
			ft.ideal = s.ideal(t.Model, t.Count).RingGBps
		}
		if t.Kind == KindShared {
			ft.base = s.sharedStranded(t, ft.mask, 0)
			for i := range fe.full.All() {
				// An entirely free GPU has its whole share free: it is
				// stranded unless time-shared and of the model.
				if !ft.mask.Has(i) || s.reps[i] <= 1 || s.reps[i]*topology.MilliPerGPU < t.Milli*s.reps[i] {
					ft.strandedFree |= topology.SetOf(i)
				}
			}
		}
		fe.types = append(fe.types, ft)
	}
	return fe
}

// at is s.fragmentation(d, taken).
func (fe *fragEval) at(taken topology.GPUSet) float64 {
	taken &= fe.full
	full := fe.full &^ taken
	total := fe.cap - float64(taken.Len())
	if total <= 0 {
		return 0
	}
	var f float64
	for _, ft := range fe.types {
		var v float64
		switch {
		case ft.cap <= 0:
			v = total
		case ft.t.Kind == KindWhole:
			v = fe.wholeFrag(&ft, full&ft.mask, total)
		case ft.t.Kind == KindShared:
			v = ft.base - float64((taken & ft.strandedFree).Len())
		default:
			v = total
		}
		f += ft.p * max(v, total-ft.cap)
	}
	return f
}

// wholeFrag is State.wholeFrag with the ideal ring looked up once.
func (fe *fragEval) wholeFrag(ft *fragType, e topology.GPUSet, total float64) float64 {
	k := ft.t.Count
	n := e.Len()
	if n < k {
		return total
	}
	if k == 1 {
		return total - float64(n)
	}
	r := 0.0
	// e is fe.full's GPUs of the model without taken: one free mask asked
	// without each candidate's GPUs, which BestSetWithout answers from one
	// traced search of the mask (the same answers as BestSet(e, k)).
	if _, q, ok := fe.s.shape.BestSetWithout(fe.full&ft.mask, fe.full&ft.mask&^e, k); ok {
		r = ratio(q.RingGBps, ft.ideal)
	}
	return total - float64(n)*r
}
