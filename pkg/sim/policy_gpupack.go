package sim

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config/validation"
	"github.com/gpupack/gpupack/pkg/score"
)

// GPUPackOptions tune the gpupack policy; zero values take the defaults,
// which are the scheduler plugin's. Other values measure a ranking the
// plugin does not run by default (through the same pkg/score code).
type GPUPackOptions struct {
	// Resolution is score.Rank's Resolution, in GPUs (0 or negative:
	// score.DefaultResolution, the plugin's).
	Resolution float64
	// MaxTypes bounds the task types of the distribution (0: pkg/score's
	// default, score.DefaultMaxTypes).
	MaxTypes int
	// FragWeight and TopoWeight are score.Rank's weights, whole numbers
	// as the plugin's args are (both 0: 1 and 2, the plugin's defaults);
	// a fraction is refused, not rounded.
	FragWeight, TopoWeight float64
}

// validate refuses options the plugin's args would refuse (weights outside
// 0..validation.MaxWeight, or not whole: the args are integers, and a
// weight of 1.5 would have measured the ranking of 2 unnoticed) and numbers
// that are none (NaN, infinities), which would otherwise fall back to the
// defaults unnoticed.
func (o GPUPackOptions) validate() error {
	if math.IsNaN(o.Resolution) || math.IsInf(o.Resolution, 0) {
		return fmt.Errorf("gpupack resolution %v: want a finite number of GPUs (0 or negative: the default)", o.Resolution)
	}
	for _, w := range []struct {
		name string
		v    float64
	}{{"fragmentation", o.FragWeight}, {"topology", o.TopoWeight}} {
		if math.IsNaN(w.v) || w.v < 0 || w.v > validation.MaxWeight {
			return fmt.Errorf("gpupack %s weight %v: want 0..%d, as the plugin's args", w.name, w.v, validation.MaxWeight)
		}
		if w.v != math.Trunc(w.v) {
			return fmt.Errorf("gpupack %s weight %v: want a whole number 0..%d (the plugin's args are integers)", w.name, w.v, validation.MaxWeight)
		}
	}
	if o.MaxTypes < 0 {
		return fmt.Errorf("gpupack max types %d: want 0 (the default) or positive", o.MaxTypes)
	}
	return nil
}

// rank is the pkg/score ranking of the options.
func (o GPUPackOptions) rank() score.Rank {
	r := score.DefaultRank
	if o.Resolution > 0 {
		r.Resolution = o.Resolution
	}
	if o.FragWeight > 0 || o.TopoWeight > 0 {
		r.FragWeight, r.TopoWeight = int64(o.FragWeight), int64(o.TopoWeight) // whole (validate)
	}
	return r
}

// gpupack ranks nodes exactly as the scheduler plugin does: on every node a
// task fits, pkg/score's Choose makes the device choice (its FragDelta
// includes the task's CPU and memory: the node's State knows its free CPU
// and memory), score.Rank.Raw turns it into the node's raw figure (Score)
// and score.Rank.Normalize maps the figures of all candidate nodes to
// 0..100 (NormalizeScore); the highest wins, ties at random (as
// kube-scheduler's selectHost). CPU-only tasks are ranked as the plugin
// scores CPU-only pods (manifests/scheduler/config.yaml sends them to
// gpupack-scheduler): score.CPUOnlyRaw of score.ResourceDelta (the GPU
// capacity of the tasks their CPU and memory take away) and of the node's
// free GPUs, then score.Rank.Normalize.
//
// Evaluations are memoized: per run, a node's answer for a class is kept
// until the node changes; across runs, answers are shared between nodes of
// one spec in the same state (CPU, memory and per-GPU usage).
type gpupack struct {
	frag *FragModel
	rank score.Rank
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
	// frag is the node's fragmentation change (score.Choice.FragDelta, or
	// score.ResourceDelta for a CPU-only task) and raw its score.Rank.Raw
	// (score.CPUOnlyRaw for a CPU-only task).
	frag float64
	raw  int64
	// ring and ideal are the multi-GPU set's ring bandwidth and the best
	// its node's shape offers for that size (0: no multi-GPU set).
	ring, ideal float64
	p           placement
}

func newGPUPack(frag *FragModel, opt GPUPackOptions) *gpupack {
	g := &gpupack{frag: frag, rank: opt.rank(), seed: maphash.MakeSeed()}
	for i := range g.memo {
		g.memo[i].m = map[memoKey]evaluation{}
	}
	return g
}

// gpupackRun is one run's state: answers per (class, node) with the node
// version and workload snapshot they were computed at.
type gpupackRun struct {
	g *gpupack
	// online is the workload learned during the run, as the deployed
	// plugin learns it (nil: pinned to the pod list's, g.frag).
	online *score.Workload
	cache  map[int32][]cached
	// supply is the cluster's slots per task type of the current
	// distribution (score.Supply), each node's refreshed when its version
	// moves (seen); pricing is its prices for the next decision.
	supply  *score.Supply[int]
	seen    []uint32
	pricing *score.Pricing
	nodes   []int
	evals   []*evaluation
	ranked  []score.Ranked
}

type cached struct {
	ver  uint32
	set  bool
	dist *score.Distribution
	e    evaluation
}

func (g *gpupack) newRun() *gpupackRun {
	return &gpupackRun{g: g, cache: map[int32][]cached{}}
}

// newOnlineRun is a run whose workload distribution is learned online
// exactly as the scheduler plugin learns it with its default args: from
// pkg/score's DefaultPrior (no CPU or memory), a decayed histogram of the
// task types placed so far (score.TaskOf at Reserve, CPU and memory
// bucketed), new snapshots only past the plugin's tolerance. It never sees
// the pod list's distribution.
func (g *gpupack) newOnlineRun() (*gpupackRun, error) {
	wl, err := score.NewWorkload(score.PluginWorkloadOptions())
	if err != nil {
		return nil, err
	}
	p := g.newRun()
	p.online = wl
	return p, nil
}

// dist is the distribution the run's next decision is taken over.
func (p *gpupackRun) dist() *score.Distribution {
	if p.online != nil {
		return p.online.Distribution()
	}
	return p.g.frag.Base()
}

// placed is what the plugin's Reserve does after a choice: observe the
// task (online mode).
func (p *gpupackRun) placed(r *run, ci int32, node int, pl placement) {
	c := &r.wl.Classes[ci]
	if p.online == nil || c.NumGPU == 0 {
		return
	}
	p.online.Observe(score.TaskOf(r.state[node], c.req, pl.choice(c)))
}

var (
	_ placer         = (*gpupackRun)(nil)
	_ placedObserver = (*gpupackRun)(nil)
)

// candidates evaluates class ci on every node it fits into p.nodes,
// p.evals and p.ranked (Raw, Ring, Ideal).
func (p *gpupackRun) candidates(r *run, ci int32) {
	c := &r.wl.Classes[ci]
	cache := p.cacheFor(ci, len(r.cl.Nodes))
	p.nodes, p.evals, p.ranked = p.nodes[:0], p.evals[:0], p.ranked[:0]
	d := p.dist()
	p.refreshSupply(r, d)
	for i := range r.cl.Nodes {
		if !r.fits(i, c) {
			continue
		}
		e := &cache[i]
		if !e.set || e.ver != r.ver[i] || e.dist != d {
			if p.online != nil {
				e.e = p.g.compute(r, i, c, d) // snapshots are the run's own
			} else {
				e.e = p.g.evaluate(r, i, ci, c)
			}
			e.ver, e.set, e.dist = r.ver[i], true, d
		}
		if e.e.ok {
			p.nodes = append(p.nodes, i)
			p.evals = append(p.evals, &e.e)
			p.ranked = append(p.ranked, score.Ranked{Raw: p.raw(r, i, c, &e.e), Ring: e.e.ring, Ideal: e.e.ideal, Family: r.cl.Family(i)})
		}
	}
}

// maxCachedEvaluations bounds a run's cache (classes x nodes answers, some
// 100 bytes each: about 100 MiB a run, and runs go in parallel). The
// openb traces use at most 151 classes on 1,213 nodes (183,000); a pod
// list of 20,000 distinct classes grew a run past 1.7 GB before this.
const maxCachedEvaluations = 1 << 20

// cacheFor is class ci's answers on the n nodes, made when missing; when
// the run's cache would pass maxCachedEvaluations it starts over (the
// answers are computed again as needed: pinned runs find most of them in
// the shared memo).
func (p *gpupackRun) cacheFor(ci int32, n int) []cached {
	if cache := p.cache[ci]; cache != nil {
		return cache
	}
	if (len(p.cache)+1)*n > maxCachedEvaluations {
		clear(p.cache)
	}
	cache := make([]cached, n)
	p.cache[ci] = cache
	return cache
}

// refreshSupply brings p.supply to the cluster's state under d (every node
// whose version moved since it was last counted, then d's new types) and
// prices it, as the plugin's cache does before each pod's Score.
func (p *gpupackRun) refreshSupply(r *run, d *score.Distribution) {
	if p.supply == nil {
		p.supply = score.NewSupply[int](d)
		p.seen = make([]uint32, len(r.cl.Nodes))
		for i := range r.cl.Nodes {
			p.supply.Update(i, r.state[i])
			p.seen[i] = r.ver[i]
		}
	}
	for i, v := range r.ver {
		if p.seen[i] != v {
			p.supply.Update(i, r.state[i])
			p.seen[i] = v
		}
	}
	p.supply.SetDistribution(d)
	p.pricing = p.supply.Pricing()
}

// raw is node i's raw figure for e: score.Rank.Raw of its fragmentation
// change plus the supply its devices take (score.Pricing.Cost), as the
// plugin's Score. CPU-only tasks take no slot (Slots count what a node's
// hardware can host).
func (p *gpupackRun) raw(r *run, i int, c *Class, e *evaluation) int64 {
	if !p.pricing.Priced() || c.NumGPU == 0 {
		return e.raw
	}
	var tk score.Taken
	tk.Add(e.p.choice(c))
	return p.g.rank.Raw(e.frag + p.pricing.Cost(r.state[i], tk))
}

func (p *gpupackRun) place(r *run, ci int32) (int, placement) {
	p.candidates(r, ci)
	if len(p.nodes) == 0 {
		return -1, placement{}
	}
	p.g.rank.Normalize(p.ranked)
	best := newArgmax()
	for k, rk := range p.ranked {
		best.offer(r, k, rk.Score)
	}
	return p.nodes[best.node], p.evals[best.node].p
}

func (g *gpupack) evaluate(r *run, i int, ci int32, c *Class) evaluation {
	gs := r.gpus(i)
	if len(gs) > len(memoKey{}.used) {
		return g.compute(r, i, c, g.frag.Base())
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
	e = g.compute(r, i, c, g.frag.Base())
	sh.Lock()
	if len(sh.m) >= maxMemoPerShard {
		clear(sh.m) // bounded memory; the runs' own caches stay
	}
	sh.m[k] = e
	sh.Unlock()
	return e
}

// compute asks pkg/score for the best choice of class c on node i under
// the distribution d and its raw rank figure.
func (g *gpupack) compute(r *run, i int, c *Class, d *score.Distribution) evaluation {
	s, rank := r.state[i], g.rank
	if c.NumGPU == 0 {
		delta := score.ResourceDelta(s, c.CPUMilli, c.MemoryMiB, d)
		return evaluation{ok: true, frag: delta, raw: score.CPUOnlyRaw(delta, score.FedCapacity(s, d))}
	}
	ch, ok := score.Choose(s, c.req, d)
	if !ok {
		return evaluation{}
	}
	e := evaluation{ok: true, frag: ch.FragDelta, raw: rank.Raw(ch.FragDelta)}
	if c.Shared() {
		e.p.shareGPU = ch.GPUs.Lowest()
	} else {
		e.p.whole = ch.GPUs
		if c.NumGPU >= 2 { // the plugin's plan counts quality for 2+ GPUs
			e.ring, e.ideal = ch.Quality.RingGBps, ch.Ideal.RingGBps
		}
	}
	return e
}
