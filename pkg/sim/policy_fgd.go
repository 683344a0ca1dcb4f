package sim

import (
	"fmt"

	bl "github.com/gpupack/gpupack/pkg/score/baseline"
)

// PolicyFGD is the FGD artifact's policy (pkg/score/baseline's FGD).
const PolicyFGD = bl.FGDName

// fgdPolicy is FGD over one pod list, shared by the runs of one Run: the
// typical pods, and each class's FGD type (classes that differ by memory
// only are one type to FGD, whose pods have no memory).
type fgdPolicy struct {
	f *bl.FGD
	// key[c] is class c's FGD type; keys of them.
	key  []int32
	keys int
}

// fgdType is what FGD tells apart of a task.
type fgdType struct {
	cpu, milli int64
	num        int
	spec       string
}

func newFGDPolicy(w *Workload, cl *Cluster) (*fgdPolicy, error) {
	pods, err := FGDTypicalPods(w)
	if err != nil {
		return nil, err
	}
	f, err := bl.NewFGD(pods, cl.Models)
	if err != nil {
		return nil, err
	}
	p := &fgdPolicy{f: f, key: make([]int32, len(w.Classes))}
	ids := map[fgdType]int32{}
	for i := range w.Classes {
		c := &w.Classes[i]
		k := fgdType{c.CPUMilli, c.GPUMilli, c.NumGPU, c.Spec}
		id, ok := ids[k]
		if !ok {
			id = int32(len(ids))
			ids[k] = id
		}
		p.key[i] = id
	}
	p.keys = len(ids)
	return p, nil
}

// FGDTypicalPods is the FGD artifact's target workload of the pod list
// (bl.TypicalPods with the artifact's FGD settings over the list's tasks).
func FGDTypicalPods(w *Workload) ([]bl.TypicalPod, error) {
	counts := make([]bl.PodCount, 0, len(w.Classes))
	for i := range w.Classes {
		c := &w.Classes[i]
		counts = append(counts, bl.PodCount{Count: c.Count,
			Pod: bl.TypicalPod{CPUMilli: c.CPUMilli, GPUMilli: c.GPUMilli, NumGPU: c.NumGPU, Spec: c.Spec}})
	}
	pods, err := bl.TypicalPods(counts, bl.DefaultTypicalConfig)
	if err != nil {
		return nil, fmt.Errorf("fgd: %w", err)
	}
	return pods, nil
}

// fgdRun is one run of FGD: a node's fragmentation and its answer per FGD
// type are kept until the node changes (run.ver).
type fgdRun struct {
	pol    *fgdPolicy
	pick   *bl.Picker
	before []fgdFrag
	cache  [][]fgdAnswer
}

type fgdFrag struct {
	ver uint32
	set bool
	v   float64
}

type fgdAnswer struct {
	ver   uint32
	set   bool
	ok    bool
	score int64
	p     bl.Placement
}

var _ placer = (*fgdRun)(nil)

func (p *fgdPolicy) newRun() *fgdRun {
	return &fgdRun{pol: p, cache: make([][]fgdAnswer, p.keys)}
}

func (p *fgdRun) place(r *run, ci int32) (int, placement) {
	nodes := len(r.cl.Nodes)
	if p.pick == nil {
		p.pick = bl.NewPicker(bl.TieFirst, nodes, r.rng)
		p.before = make([]fgdFrag, nodes)
	}
	k := p.pol.key[ci]
	if p.cache[k] == nil {
		p.cache[k] = make([]fgdAnswer, nodes)
	}
	answers := p.cache[k]
	c := &r.wl.Classes[ci]
	t := baselineTask(c)
	var n bl.Node
	p.pick.Reset()
	for i := range nodes {
		if !r.fits(i, c) {
			continue
		}
		a := &answers[i]
		if !a.set || a.ver != r.ver[i] {
			r.baselineNode(i, &n)
			b := &p.before[i]
			if !b.set || b.ver != r.ver[i] {
				*b = fgdFrag{ver: r.ver[i], set: true, v: p.pol.f.Frag(&n)}
			}
			score, pl, ok := p.pol.f.Place(&n, &t, b.v)
			*a = fgdAnswer{ver: r.ver[i], set: true, ok: ok, score: score, p: pl}
		}
		if a.ok {
			p.pick.Offer(i, a.score)
		}
	}
	i, _ := p.pick.Best()
	if i < 0 {
		return -1, placement{}
	}
	a := &answers[i]
	return i, placement{whole: a.p.Whole, shareGPU: a.p.Share}
}
