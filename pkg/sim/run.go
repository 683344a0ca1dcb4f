package sim

import (
	"math/rand/v2"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"

	bl "github.com/gpupack/gpupack/pkg/score/baseline"
)

// placement is a policy's answer for one task on one node: the whole GPUs,
// or the GPU a share goes on.
type placement struct {
	whole    topology.GPUSet
	shareGPU int
}

// choice is p as pkg/score's Choice for a GPU task of class c: a share of
// one GPU (c.GPUMilli replicas of its 1000) or whole GPUs.
func (p placement) choice(c *Class) score.Choice {
	if c.Shared() {
		return score.Choice{Kind: score.KindShared, GPUs: topology.SetOf(p.shareGPU),
			Shares: []score.Share{{GPU: p.shareGPU, Replicas: int(c.GPUMilli)}}}
	}
	return score.Choice{Kind: score.KindWhole, GPUs: p.whole}
}

// placer is one policy's state for one run.
type placer interface {
	// place returns the node and devices for a task of class c, or node -1.
	place(r *run, c int32) (node int, p placement)
}

// placedObserver is a placer told where each task went (the plugin's
// Reserve).
type placedObserver interface {
	placed(r *run, c int32, node int, p placement)
}

// run is the cluster's usage during one replay.
type run struct {
	cl    *Cluster
	wl    *Workload
	frag  *FragModel
	rng   *rand.Rand
	cpu   []int64 // free CPU per node
	mem   []int64 // free memory per node
	gpu   []int32 // free milli per GPU, node i at off[i]
	off   []int
	ngpu  []int
	free  []int64 // free milli-GPU per node
	full  []int   // entirely free GPUs per node
	aff   []uint32
	ver   []uint32 // bumped on every change of the node
	state []*score.State

	allocated int64
}

func newRun(cl *Cluster, wl *Workload, frag *FragModel, seed uint64) *run {
	n := len(cl.Nodes)
	r := &run{
		cl: cl, wl: wl, frag: frag, rng: rand.New(rand.NewPCG(seed, 0x243f6a8885a308d3)),
		cpu: make([]int64, n), mem: make([]int64, n), off: make([]int, n+1), ngpu: make([]int, n),
		free: make([]int64, n), full: make([]int, n), aff: make([]uint32, n), ver: make([]uint32, n),
		state: make([]*score.State, n),
	}
	for i, ns := range cl.Nodes {
		r.cpu[i], r.mem[i] = ns.CPUMilli, ns.MemoryMiB
		r.ngpu[i] = ns.GPUs
		r.off[i+1] = r.off[i] + ns.GPUs
		r.free[i] = int64(ns.GPUs) * topology.MilliPerGPU
		r.full[i] = ns.GPUs
		r.state[i] = score.NewState(cl.Topo[i])
		r.state[i].SetFree(ns.CPUMilli, ns.MemoryMiB)
		r.state[i].SetAllocatable(ns.CPUMilli, ns.MemoryMiB)
	}
	r.gpu = make([]int32, r.off[n])
	for i := range r.gpu {
		r.gpu[i] = topology.MilliPerGPU
	}
	return r
}

// gpus returns node i's free milli per GPU.
func (r *run) gpus(i int) []int32 { return r.gpu[r.off[i]:r.off[i+1]] }

// fits reports whether class c can go on node i at all (CPU, memory, model,
// GPU capacity).
func (r *run) fits(i int, c *Class) bool {
	if c.CPUMilli > r.cpu[i] || c.MemoryMiB > r.mem[i] {
		return false
	}
	if c.NumGPU == 0 {
		return true
	}
	if c.models&(1<<uint(r.cl.ModelID[i])) == 0 || r.free[i] < c.Demand() {
		return false
	}
	if !c.Shared() {
		return r.full[i] >= c.NumGPU
	}
	for _, g := range r.gpus(i) {
		if int64(g) >= c.GPUMilli {
			return true
		}
	}
	return false
}

// apply places class c on node i with p.
func (r *run) apply(i int, c *Class, p placement) {
	r.cpu[i] -= c.CPUMilli
	r.mem[i] -= c.MemoryMiB
	r.ver[i]++
	r.state[i].SetFree(r.cpu[i], r.mem[i])
	if c.NumGPU == 0 {
		return
	}
	g := r.gpus(i)
	r.aff[i] |= c.affinity
	if c.Shared() {
		if g[p.shareGPU] == topology.MilliPerGPU {
			r.full[i]--
		}
		g[p.shareGPU] -= int32(c.GPUMilli)
	} else {
		for i := range p.whole.All() {
			g[i] = 0
		}
		r.full[i] -= c.NumGPU
	}
	r.state[i].Apply(p.choice(c))
	r.free[i] -= c.Demand()
	r.allocated += c.Demand()
}

// bestFitGPU is the GPU with the least free share that still holds milli
// (lowest index on ties), or -1: the open-gpu-share "best" selection.
func (r *run) bestFitGPU(i int, milli int64) int {
	best := -1
	for j, g := range r.gpus(i) {
		if int64(g) >= milli && (best < 0 || g < r.gpus(i)[best]) {
			best = j
		}
	}
	return best
}

// randomGPU is a uniformly random GPU that holds milli, or -1.
func (r *run) randomGPU(i int, milli int64) int {
	pick, n := -1, 0
	for j, g := range r.gpus(i) {
		if int64(g) >= milli {
			n++
			if r.rng.IntN(n) == 0 {
				pick = j
			}
		}
	}
	return pick
}

// firstFree is the k lowest-indexed entirely free GPUs.
func (r *run) firstFree(i, k int) topology.GPUSet { return bl.IdleOf(r.gpus(i), k) }

// defaultPlacement is the device choice of the open-gpu-share plugin with
// the "best" GPU selection: best-fit GPU for a share, the lowest free GPUs
// for whole GPUs.
func (r *run) defaultPlacement(i int, c *Class) placement {
	if c.NumGPU == 0 {
		return placement{}
	}
	if c.Shared() {
		return placement{shareGPU: r.bestFitGPU(i, c.GPUMilli)}
	}
	return placement{whole: r.firstFree(i, c.NumGPU)}
}

// argmax keeps the best integer score with random tie breaking (reservoir
// sampling), as kube-scheduler's selectHost does.
type argmax struct {
	node  int
	score int64
	ties  int
}

func newArgmax() argmax { return argmax{node: -1} }

func (a *argmax) offer(r *run, node int, s int64) {
	switch {
	case a.node < 0 || s > a.score:
		a.node, a.score, a.ties = node, s, 1
	case s == a.score:
		a.ties++
		if r.rng.IntN(a.ties) == 0 {
			a.node = node
		}
	}
}
