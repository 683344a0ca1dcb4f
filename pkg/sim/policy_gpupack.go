package sim

import (
	"hash/maphash"
	"math"
	"sync"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// GPUPackOptions tune the gpupack policies; zero values take the defaults.
type GPUPackOptions struct {
	// Resolution (GPUs) at which fragmentation changes are compared for
	// tasks that ask for GPUs: nodes whose changes round to the same
	// multiple are tied (default 0.05; FGD's integer sigmoid score resolves
	// about 0.04 GPU near zero). Negative: exact comparison. CPU-only tasks
	// change fragmentation only through CPU and memory, by small amounts,
	// and are always compared exactly.
	Resolution float64
	// MaxTypes bounds the task types of the distribution (0: pkg/score's
	// default, 16).
	MaxTypes int
	// FragWeight and TopoWeight are the blend weights of the
	// gpupack-plugin-blend policy (defaults 1 and 2, the plugin's).
	FragWeight, TopoWeight float64
}

func (o GPUPackOptions) withDefaults() GPUPackOptions {
	if o.Resolution == 0 {
		o.Resolution = 0.05
	}
	if o.FragWeight == 0 && o.TopoWeight == 0 {
		o.FragWeight, o.TopoWeight = 1, 2
	}
	return o
}

// gpupack places a task where pkg/score says the node's fragmentation rises
// least, at the device choice score.ChooseState makes on that node; ties
// (at Resolution) go to the better-linked set, then at random (as
// kube-scheduler breaks ties). The distribution is a pkg/score Workload
// pinned to the pod list's GPU task types (FGD's artifact also knows its
// "typical pods" up front), made CPU- and memory-aware per node by
// FragModel. The node's fragmentation change is
//
//	F(after, d(node after)) - F(before, d(node before))
//
// since the node's free CPU and memory change with the task, and so does
// which task types it can still run.
//
// Evaluations are memoized: per run, a node's answer for a class is kept
// until the node changes; across runs, answers are shared between nodes of
// one spec in the same state (CPU, memory and per-GPU usage).
type gpupack struct {
	frag *FragModel
	opt  GPUPackOptions
	memo [64]memoShard
	seed maphash.Seed
}

type memoKey struct {
	spec, class int32
	cpu, mem    int64
	used        [8]int32
}

// maxMemoPerShard bounds the shared memo (64 shards, ~100 bytes an entry).
const maxMemoPerShard = 1 << 14

type memoShard struct {
	sync.RWMutex
	m map[memoKey]evaluation
}

// evaluation is the best choice on one node for one class.
type evaluation struct {
	ok bool
	// delta is the node's fragmentation change (GPUs).
	delta float64
	// quality is the chosen set's QualityRatio; ring and ideal its ring
	// bandwidth and the best the node's shape offers for that size.
	quality, ring, ideal float64
	p                    placement
}

func newGPUPack(frag *FragModel, opt GPUPackOptions) *gpupack {
	g := &gpupack{frag: frag, opt: opt.withDefaults(), seed: maphash.MakeSeed()}
	for i := range g.memo {
		g.memo[i].m = map[memoKey]evaluation{}
	}
	return g
}

// gpupackRun is one run's state: answers per (class, node) with the node
// version they were computed at.
type gpupackRun struct {
	g     *gpupack
	blend bool
	cache map[int32][]cached
	cands []candidate
}

type cached struct {
	ver uint32
	set bool
	e   evaluation
}

type candidate struct {
	node int
	e    *evaluation
	s    int64
}

func (g *gpupack) newRun(blend bool) *gpupackRun {
	return &gpupackRun{g: g, blend: blend, cache: map[int32][]cached{}}
}

var _ placer = (*gpupackRun)(nil)

// candidates evaluates class ci on every node it fits.
func (p *gpupackRun) candidates(r *run, ci int32) []candidate {
	c := &r.wl.Classes[ci]
	cache := p.cache[ci]
	if cache == nil {
		cache = make([]cached, len(r.cl.Nodes))
		p.cache[ci] = cache
	}
	p.cands = p.cands[:0]
	for i := range r.cl.Nodes {
		if !r.fits(i, c) {
			continue
		}
		e := &cache[i]
		if !e.set || e.ver != r.ver[i] {
			e.e = p.g.evaluate(r, i, ci, c)
			e.ver, e.set = r.ver[i], true
		}
		if e.e.ok {
			p.cands = append(p.cands, candidate{node: i, e: &e.e})
		}
	}
	return p.cands
}

func (p *gpupackRun) place(r *run, ci int32) (int, placement) {
	cands := p.candidates(r, ci)
	if len(cands) == 0 {
		return -1, placement{}
	}
	if p.blend {
		return p.blended(r, cands)
	}
	res := p.g.opt.Resolution
	if r.wl.Classes[ci].NumGPU == 0 {
		res = -1 // a CPU-only task moves fragmentation only through CPU and memory: small, exact changes
	}
	best, ties := 0, 1
	for k := 1; k < len(cands); k++ {
		switch cmpEval(cands[k].e, cands[best].e, res) {
		case 1:
			best, ties = k, 1
		case 0:
			ties++
			if r.rng.IntN(ties) == 0 {
				best = k
			}
		}
	}
	return cands[best].node, cands[best].e.p
}

// cmpEval is 1 when a beats b (smaller fragmentation change at resolution
// res, then better quality), 0 on a tie, -1 otherwise.
func cmpEval(a, b *evaluation, res float64) int {
	da, db := a.delta, b.delta
	if res > 0 {
		da, db = math.Round(da/res), math.Round(db/res)
	}
	if d := da - db; d < -eps {
		return 1
	} else if d > eps {
		return -1
	}
	if d := a.quality - b.quality; d > eps {
		return 1
	} else if d < -eps {
		return -1
	}
	return 0
}

const eps = 1e-9

// blended scores the candidates the way the scheduler plugin's
// Score/NormalizeScore do (pkg/scheduler/gpupack/score.go, v1 defaults):
// the fragmentation gain in milli-GPU, min-max normalized to 0..100 over the
// nodes, blended with 100 x ring / best ideal ring by the weights, rounded;
// the highest wins, ties at random. It exists to measure the plugin's
// scoring; the logic lives in the plugin, not in pkg/score, so it is
// mirrored here (see the report).
func (p *gpupackRun) blended(r *run, cands []candidate) (int, placement) {
	wf, wt := p.g.opt.FragWeight, p.g.opt.TopoWeight
	var lo, hi int64
	var bestIdeal float64
	for k := range cands {
		s := int64(math.Round(-cands[k].e.delta * 1000))
		cands[k].s = s
		if k == 0 {
			lo, hi = s, s
		}
		lo, hi = min(lo, s), max(hi, s)
		bestIdeal = max(bestIdeal, cands[k].e.ideal)
	}
	best := newArgmax()
	for _, cd := range cands {
		frag := 100.0
		if hi > lo {
			frag = 100 * float64(cd.s-lo) / float64(hi-lo)
		}
		topo := 100.0
		if bestIdeal > 0 && cd.e.ideal > 0 {
			topo = 100 * math.Min(1, cd.e.ring/bestIdeal)
		}
		best.offer(r, cd.node, int64(math.Round((wf*frag+wt*topo)/(wf+wt))))
	}
	for _, cd := range cands {
		if cd.node == best.node {
			return cd.node, cd.e.p
		}
	}
	return -1, placement{}
}

func (g *gpupack) evaluate(r *run, i int, ci int32, c *Class) evaluation {
	gs := r.gpus(i)
	if len(gs) > len(memoKey{}.used) {
		return g.compute(r, i, c)
	}
	k := memoKey{spec: int32(r.cl.Spec[i]), class: ci, cpu: r.cpu[i], mem: r.mem[i]}
	copy(k.used[:], gs)
	sh := &g.memo[maphash.Comparable(g.seed, k)%uint64(len(g.memo))]
	sh.RLock()
	e, ok := sh.m[k]
	sh.RUnlock()
	if ok {
		return e
	}
	e = g.compute(r, i, c)
	sh.Lock()
	if len(sh.m) >= maxMemoPerShard {
		clear(sh.m) // bounded memory; the runs' own caches stay
	}
	sh.m[k] = e
	sh.Unlock()
	return e
}

// compute asks pkg/score for the best choice of class c on node i.
func (g *gpupack) compute(r *run, i int, c *Class) evaluation {
	s := r.state[i]
	before := g.frag.Dist(r.cpu[i], r.mem[i])
	after := g.frag.Dist(r.cpu[i]-c.CPUMilli, r.mem[i]-c.MemoryMiB)
	shift := score.Fragmentation(s, after) - score.Fragmentation(s, before)
	if c.NumGPU == 0 {
		return evaluation{ok: true, delta: shift, quality: 1, ring: topology.PerfectGBps, ideal: topology.PerfectGBps}
	}
	ch, ok := score.ChooseState(s, c.req, after)
	if !ok {
		return evaluation{}
	}
	e := evaluation{ok: true, delta: ch.FragDelta + shift, quality: ch.QualityRatio(),
		ring: ch.Quality.RingGBps, ideal: ch.Ideal.RingGBps}
	if c.Shared() {
		e.p.shareGPU = ch.GPUs.Lowest()
	} else {
		e.p.whole = ch.GPUs
	}
	return e
}
