package sim

import (
	bl "github.com/gpupack/gpupack/pkg/score/baseline"
)

// PolicyFirstFit is pkg/score/baseline's first-fit (not a default policy).
const PolicyFirstFit = bl.FirstFitName

// baselinePlacer runs one pkg/score/baseline policy over a run: it offers
// every feasible node's score to the policy's Picker (ties as the policy's
// scheduler breaks them, the node order drawn from the run's randomness at
// the first task) and takes the devices by the policy's GPU selection.
type baselinePlacer struct {
	pol  bl.Policy
	pick *bl.Picker
}

// baseline is the placer of the baseline policy called name, or nil.
func baseline(name string) placer {
	pol, err := bl.New(name)
	if err != nil {
		return nil
	}
	return &baselinePlacer{pol: pol}
}

func (p *baselinePlacer) place(r *run, ci int32) (int, placement) {
	if p.pick == nil {
		p.pick = bl.NewPicker(p.pol.TieBreak(), len(r.cl.Nodes), r.rng)
	}
	c := &r.wl.Classes[ci]
	t := baselineTask(c)
	var n bl.Node
	p.pick.Reset()
	for i := range r.cl.Nodes {
		if r.fits(i, c) {
			r.baselineNode(i, &n)
			p.pick.Offer(i, p.pol.Score(&n, &t))
		}
	}
	i, _ := p.pick.Best()
	if i < 0 {
		return -1, placement{}
	}
	r.baselineNode(i, &n)
	d, ok := bl.Devices(&n, &t, p.pol.GPUSelection(), r.rng)
	if !ok { // cannot happen: r.fits checked the GPUs
		return -1, placement{}
	}
	return i, placement{whole: d.Whole, shareGPU: d.Share}
}

// baselineTask is class c as pkg/score/baseline sees a task.
func baselineTask(c *Class) bl.Task {
	return bl.Task{CPUMilli: c.CPUMilli, MemoryMiB: c.MemoryMiB, NumGPU: c.NumGPU, GPUMilli: c.GPUMilli}
}

// baselineNode fills n with node i's capacity and usage; n.GPUs aliases the
// run's GPU state. r.aff holds Class.affinity bits, which are bl.Task.Kind.
func (r *run) baselineNode(i int, n *bl.Node) {
	ns := &r.cl.Nodes[i]
	*n = bl.Node{
		CPUCapacity: ns.CPUMilli, CPUFree: r.cpu[i],
		MemCapacity: ns.MemoryMiB, MemFree: r.mem[i],
		GPUs: r.gpus(i), GPUFree: r.free[i], IdleGPUs: r.full[i],
		Kinds: bl.Kinds(r.aff[i]), Model: r.cl.Models[r.cl.ModelID[i]],
	}
}
