package score

import (
	"cmp"
	"slices"

	"github.com/gpupack/gpupack/pkg/topology"
)

// MIG devices: the request takes Count free healthy devices of one profile.

// chooseMIG takes free healthy MIG devices of the profile, packing them onto
// the GPUs whose MIG slices are most used (so whole GPUs stay free for a
// different layout), then lower GPU index, then lower placement start.
func (s *State) chooseMIG(req Request, mustMIG []int) (Choice, bool) {
	elig := s.modelMaskAll(req.Model)
	usedSlices := make([]int, len(s.node.GPUs))
	for j, m := range s.node.MIG {
		if s.migUsed[j] && m.Parent >= 0 && m.Parent < len(usedSlices) {
			usedSlices[m.Parent] += max(1, m.Size)
		}
	}
	ok := func(j int) bool {
		m := s.node.MIG[j]
		return m.Profile == req.MIGProfile && s.healthyMIG[j] && !s.migUsed[j] && elig.Has(m.Parent)
	}
	var picked []int
	for _, j := range mustMIG {
		if j < 0 || j >= len(s.node.MIG) || !ok(j) || slices.Contains(picked, j) {
			return Choice{}, false
		}
		picked = append(picked, j)
	}
	var cands []int
	for j := range s.node.MIG {
		if ok(j) && !slices.Contains(picked, j) {
			cands = append(cands, j)
		}
	}
	slices.SortStableFunc(cands, func(a, b int) int {
		ma, mb := s.node.MIG[a], s.node.MIG[b]
		if c := cmp.Compare(usedSlices[mb.Parent], usedSlices[ma.Parent]); c != 0 {
			return c
		}
		if c := cmp.Compare(ma.Parent, mb.Parent); c != 0 {
			return c
		}
		return cmp.Compare(ma.Start, mb.Start)
	})
	need := req.Count - len(picked)
	if need < 0 || len(cands) < need {
		return Choice{}, false
	}
	picked = append(picked, cands[:need]...)
	slices.Sort(picked)
	c := Choice{Kind: KindMIG, MIG: picked}
	for _, j := range picked {
		c.GPUs |= topology.SetOf(s.node.MIG[j].Parent)
		c.DeviceIDs = append(c.DeviceIDs, s.node.MIG[j].UUID)
	}
	slices.Sort(c.DeviceIDs)
	c.Quality = s.shape.Quality(c.GPUs)
	c.Ideal = s.shape.Ideal(c.GPUs.Len())
	return c, true
}

// modelMaskAll is modelMask over every GPU index (MIG parents are not
// "usable" as whole GPUs).
func (s *State) modelMaskAll(model string) topology.GPUSet {
	var m topology.GPUSet
	for i, g := range s.node.GPUs {
		if model == "" || modelIn(g.Model, model) {
			m |= topology.SetOf(i)
		}
	}
	return m
}
