package score

import (
	"math"
	"slices"

	"github.com/gpupack/gpupack/pkg/topology"
)

// Supply: protecting the hosts a task type cannot do without.
//
// FGD's fragmentation measures the free GPU capacity a node strands; a node
// used up entirely strands nothing, so taking a whole node costs nothing
// whichever node it is. When one task type fits only a few hosts (the
// openb traces' 120-core 8-GPU tasks fit only the 39 NVSwitch G3 hosts;
// the same holds for any type whose CPU or memory few hosts hold), a ranking that
// prefers those hosts for other work (the topology term pulls every 8-GPU
// task onto NVSwitch) uses them up, and from then on every task of that
// type fails (gpusim multigpu30, seeds 42-44: 17-19 of them under gpupack
// without this, 6-12 under fgd).
//
// So a node's score also counts what its choice takes from the cluster's
// supply of each type: a type's slots on a node are the tasks of that type
// the node's free GPUs, CPU and memory still hold (Slots); the cluster's
// supply S_m is their sum over the nodes. The future demand for type m is
// taken as D_m ~ Poisson(lambda_m), lambda_m = p'_m x N, p'_m the
// popularity of m and of the types of m's GPU shape that need at least its
// CPU and memory (their tasks take m's slots too), N = the cluster's
// free GPU capacity / the mix's mean GPUs per task (as many tasks as would
// fill what is free). The j-th slot from the top is used by a task of m iff
// D_m >= S_m - j, so a choice that takes L slots of m costs, in expected
// GPUs of m's tasks that then find no host,
//
//	cost_m = g_m x sum_{j=0}^{L-1} P(D_m >= S_m - j)
//
// (g_m: m's GPUs per task). That is near 0 for a type with many hosts and
// approaches g_m per slot for a type whose every host will be needed, in
// the same unit as FragDelta (GPUs), and is added to it where a node is
// ranked (Rank.Raw of FragDelta + cost). Supply is the cluster-wide
// figure; Pricing turns it into prices and a node's cost.

// minTail is the smallest tail probability P(D >= S) priced: a type whose
// next slot is needed less likely than this is not counted (its cost would
// be below a thousandth of its GPUs, a fiftieth of a Resolution step).
const minTail = 1e-3

// Supply is the cluster's slots per task type and its free GPU capacity:
// the sum over its nodes (keyed by K, e.g. the node's name) of their Slots
// and FreeCapacity. It counts the types of every Distribution it was set to
// (SetDistribution) and each one's base, the same devices and model with
// no CPU or memory constraint (baseOf); a type is counted on every node
// once, when it first appears, so that a new snapshot of the same types
// costs nothing.
// Not safe for concurrent use.
type Supply[K comparable] struct {
	index map[TaskType]int
	types []TaskType
	total []int64
	free  float64
	nodes map[K]*contribution
	// The distribution set last: dist[m] and base[m] are the indexes of
	// d.Types[m] and of its base; pooled[m] the popularity of the types
	// whose tasks take one of d.Types[m]'s slots each, poolBase[m] of its
	// base's (pooledP).
	d                *Distribution
	dist, base       []int
	pooled, poolBase []float64
	// version counts the changes of what Pricing reads (the totals, the
	// free capacity, the distribution): equal versions price alike.
	version uint64
}

type contribution struct {
	state *State
	slots []int64
	free  float64
}

// maxTracked bounds the types a Supply counts: past it, the next
// SetDistribution counts the new distribution's types afresh.
const maxTracked = 4 * maxMemoTypes

// NewSupply returns the empty supply of d's task types (DefaultDistribution
// when d is nil).
func NewSupply[K comparable](d *Distribution) *Supply[K] {
	sp := &Supply[K]{index: map[TaskType]int{}, nodes: map[K]*contribution{}}
	sp.SetDistribution(d)
	return sp
}

// sameDevices reports whether t and u ask the same devices (kind, count,
// share, MIG profile), whatever their model, CPU and memory.
func sameDevices(t, u TaskType) bool {
	return t.Kind == u.Kind && t.Count == u.Count && t.Milli == u.Milli && t.MIGProfile == u.MIGProfile
}

// Distribution is the distribution set last.
func (sp *Supply[K]) Distribution() *Distribution { return sp.d }

// SetDistribution makes d (DefaultDistribution when nil) the distribution
// priced, counting its new types on every node.
func (sp *Supply[K]) SetDistribution(d *Distribution) {
	if d == nil {
		d = defaultDistribution
	}
	if d == sp.d {
		return
	}
	sp.version++
	if len(sp.types)+2*len(d.Types) > maxTracked {
		sp.index, sp.types, sp.total = map[TaskType]int{}, nil, nil
		for _, c := range sp.nodes {
			c.slots = c.slots[:0]
		}
	}
	sp.d = d
	sp.dist, sp.base = sp.dist[:0], sp.base[:0]
	for _, t := range d.Types {
		sp.dist = append(sp.dist, sp.track(t))
		sp.base = append(sp.base, sp.track(baseOf(t)))
	}
	sp.pooled, sp.poolBase = pooledP(d, d.Types), pooledP(d, sp.baseTypes())
}

func (sp *Supply[K]) baseTypes() []TaskType {
	out := make([]TaskType, len(sp.base))
	for m, b := range sp.base {
		out[m] = sp.types[b]
	}
	return out
}

// track returns t's index, counting it on every node when new.
func (sp *Supply[K]) track(t TaskType) int {
	if i, ok := sp.index[t]; ok {
		return i
	}
	i := len(sp.types)
	sp.index[t] = i
	sp.types = append(sp.types, t)
	var sum int64
	for _, c := range sp.nodes {
		n := c.state.Slots(t)
		c.slots = append(c.slots, n)
		sum += n
	}
	sp.total = append(sp.total, sum)
	return i
}

// baseOf is t's devices and model with no CPU or memory constraint.
//
// The base keeps the model: a type constrained by its model alone is its
// own base and not priced. Pricing model constraints too cost the gpusim
// gpuspec sweep 0.16-0.32 points of allocation at 20-40% constrained tasks
// (3 seeds) and gained nowhere: those types are common (10-40% of tasks),
// and FGD's measure already weighs them by their popularity (the other
// models' free GPUs are stranded for them), while a rare type whose CPU or
// memory only a few hosts' allocatable holds weighs nothing in it.
func baseOf(t TaskType) TaskType {
	return TaskType{Kind: t.Kind, Count: t.Count, Milli: t.Milli, MIGProfile: t.MIGProfile, Model: t.Model}
}

// pooledP is, for each of types, the popularity under d of the types whose
// tasks fit only nodes that hold a task of it and take one of those
// slots: its devices, a model constraint no wider, and at least its CPU
// and memory. Their demand is demand for its slots too (without it, the
// openb traces' 120-core and 120.2-core 8-GPU tasks, which fit the same 39
// hosts, were priced as two rarer types).
func pooledP(d *Distribution, types []TaskType) []float64 {
	out := make([]float64, len(types))
	for m, t := range types {
		for o, u := range d.Types {
			if sameDevices(t, u) && (t.Model == "" || t.Model == u.Model) &&
				u.CPUMilli >= t.CPUMilli && u.MemoryMiB >= t.MemoryMiB {
				out[m] += d.P[o]
			}
		}
	}
	return out
}

// Update sets node k's contribution to node state s's slots and free
// capacity, replacing what k contributed before. s is read again when a
// new type is counted (SetDistribution): pass a State that is not mutated
// afterwards, or call Update again after mutating it.
func (sp *Supply[K]) Update(k K, s *State) {
	c := sp.nodes[k]
	if c == nil {
		c = &contribution{slots: make([]int64, len(sp.types))}
		sp.nodes[k] = c
	}
	c.state = s
	changed := false
	for i, t := range sp.types {
		n := s.Slots(t)
		if n != c.slots[i] {
			sp.total[i] += n - c.slots[i]
			c.slots[i] = n
			changed = true
		}
	}
	if f := s.FreeCapacity(); f != c.free {
		sp.free += f - c.free
		c.free = f
		changed = true
	}
	if changed {
		sp.version++
	}
}

// Remove takes node k's contribution out (the node went).
func (sp *Supply[K]) Remove(k K) {
	c := sp.nodes[k]
	if c == nil {
		return
	}
	for i := range sp.total {
		sp.total[i] -= c.slots[i]
	}
	sp.free -= c.free
	delete(sp.nodes, k)
	sp.version++
}

// Version changes whenever what Pricing reads changes (a node's slots or
// free capacity, a node gone, another distribution): a Pricing made at one
// version is the Pricing of every later call at the same version.
func (sp *Supply[K]) Version() uint64 { return sp.version }

// Slots returns the cluster's slots of each of the distribution's types, in
// its order.
func (sp *Supply[K]) Slots() []int64 {
	out := make([]int64, len(sp.dist))
	for m, i := range sp.dist {
		out[m] = sp.total[i]
	}
	return out
}

// Free is the cluster's free GPU capacity, in GPUs.
func (sp *Supply[K]) Free() float64 { return sp.free }

// Pricing returns the prices of the current supply (see the package comment
// above): the constrained types (not their own base) whose next slot is
// needed more likely, by minTail or more, than their base's next slot.
func (sp *Supply[K]) Pricing() *Pricing {
	n := sp.free / meanGPUs(sp.d)
	if !(n > 0) || math.IsInf(n, 0) {
		return noPricing
	}
	var pr *Pricing
	for m, t := range sp.d.Types {
		g := typeGPUs(t)
		if sp.base[m] == sp.dist[m] || g <= 0 || sp.total[sp.dist[m]] <= 0 {
			continue // its own base, no GPUs, or no slot left to protect
		}
		p := pricedType{t: t, gpus: g,
			lambda: sp.pooled[m] * n, supply: sp.total[sp.dist[m]],
			baseLambda: sp.poolBase[m] * n, baseSupply: sp.total[sp.base[m]]}
		if p.excess(0) < minTail {
			continue
		}
		if pr == nil {
			pr = &Pricing{}
		}
		pr.types = append(pr.types, p)
	}
	if pr == nil {
		return noPricing
	}
	return pr
}

// noPricing prices nothing (shared: a Pricing is never mutated).
var noPricing = &Pricing{}

// Pricing prices the slots of the task types a Supply found scarce. The
// zero Pricing (and nil) prices nothing. Safe for concurrent use.
type Pricing struct {
	types []pricedType
}

type pricedType struct {
	t                  TaskType
	gpus               float64 // g_m
	lambda, baseLambda float64
	supply, baseSupply int64 // S_m, S_b
}

// excess is how much likelier the j-th slot from the top of the type is
// needed than the j-th of its base: P(D_m >= S_m - j) - P(D_b >= S_b - j),
// at least 0.
func (p *pricedType) excess(j int64) float64 {
	return max(0, poissonTail(p.lambda, p.supply-j)-poissonTail(p.baseLambda, p.baseSupply-j))
}

// Priced reports whether any type is priced (otherwise Cost is 0).
func (pr *Pricing) Priced() bool { return pr != nil && len(pr.types) > 0 }

// Taken is what a pod's choices take from a node's GPUs, for Pricing.Cost:
// whole GPUs and replicas.
type Taken struct {
	Whole  topology.GPUSet
	Shares []Share
}

// Add adds choice c's devices (MIG devices take no priced slot).
func (tk *Taken) Add(c Choice) {
	switch c.Kind {
	case KindWhole:
		tk.Whole |= c.GPUs
	case KindShared:
		if tk.Shares == nil {
			tk.Shares = c.Shares // not copied: Choices are not mutated
		} else {
			tk.Shares = append(slices.Clip(tk.Shares), c.Shares...)
		}
	}
}

// Cost is the expected GPUs of future tasks left without a host when what
// tk takes is taken from node state s: the sum over the priced types of
// cost_m for the slots it takes. 0 when nothing is priced.
func (pr *Pricing) Cost(s *State, tk Taken) float64 {
	if !pr.Priced() || (tk.Whole == 0 && len(tk.Shares) == 0) {
		return 0
	}
	var cost float64
	for i := range pr.types {
		p := &pr.types[i]
		lost := s.Slots(p.t) - s.slotsAfter(p.t, tk)
		for j := range lost {
			cost += p.gpus * p.excess(j)
		}
	}
	return cost
}

// Slots is how many tasks of type t node state s can still take by its
// free GPUs of t's model (whole: entirely free GPUs / count; shared: the
// time-shared GPUs' free shares, each divided by t's share, rounded down),
// and 0 when the node's allocatable CPU or memory (SetAllocatable) is short
// of one task's: what the node's hardware can host, not what its CPU left
// free now holds (FGD's fragmentation counts that: taskCap). Counting free
// CPU here priced every type on CPU-bound traces (openb cpu250: -0.8 points
// of allocation, gpusim 3 seeds) and made CPU exhaustion count twice. MIG
// types have none counted (0).
func (s *State) Slots(t TaskType) int64 { return s.slotsAfter(t, Taken{}) }

// slotsAfter is Slots(t) with what tk takes taken: its whole GPUs, and its
// replicas (a GPU with a replica taken is no longer entirely free).
func (s *State) slotsAfter(t TaskType, tk Taken) int64 {
	if s.alloc && ((t.CPUMilli > 0 && t.CPUMilli > s.cpuAlloc) || (t.MemoryMiB > 0 && t.MemoryMiB > s.memAlloc)) {
		return 0
	}
	busy := tk.Whole
	for _, sh := range tk.Shares {
		busy |= topology.SetOf(sh.GPU)
	}
	switch t.Kind {
	case KindWhole:
		if t.Count <= 0 {
			return 0
		}
		return int64((s.FreeGPUs() &^ busy & s.modelMask(t.Model)).Len() / t.Count)
	case KindShared:
		if t.Milli <= 0 {
			return 0
		}
		var n int64
		for i := range (s.modelMask(t.Model) &^ tk.Whole).All() {
			free := s.freeReplicas(i)
			for _, sh := range tk.Shares {
				if sh.GPU == i {
					free -= sh.Replicas
				}
			}
			n += int64(max(0, free) * topology.MilliPerGPU / (s.reps[i] * t.Milli))
		}
		return n
	}
	return 0
}

// SetAllocatable records the node's allocatable CPU (milli-cores) and
// memory (MiB), which bound the task types it can host at all (Slots).
func (s *State) SetAllocatable(cpuMilli, memMiB int64) {
	s.alloc, s.cpuAlloc, s.memAlloc = true, cpuMilli, memMiB
}

// typeGPUs is a task of t's GPUs (count, or share of one GPU; 0 for MIG).
func typeGPUs(t TaskType) float64 {
	switch t.Kind {
	case KindWhole:
		return float64(t.Count)
	case KindShared:
		return float64(t.Milli) / topology.MilliPerGPU
	}
	return 0
}

// meanGPUs is the mix's GPUs per task, sum p_m g_m (+Inf when no type takes
// GPUs, so that no demand follows).
func meanGPUs(d *Distribution) float64 {
	var g float64
	for m, t := range d.Types {
		g += d.P[m] * typeGPUs(t)
	}
	if g <= 0 {
		return math.Inf(1)
	}
	return g
}

// poissonTail is P(D >= s) for D ~ Poisson(lambda): 1 for s <= 0, 0 for
// lambda <= 0. Exact below lambda 30 (the sum of the first s terms), the
// normal approximation with continuity correction above it.
func poissonTail(lambda float64, s int64) float64 {
	switch {
	case s <= 0:
		return 1
	case !(lambda > 0):
		return 0
	case float64(s) > lambda+12*math.Sqrt(lambda)+20:
		return 0
	case lambda >= 30:
		return 0.5 * math.Erfc((float64(s)-0.5-lambda)/math.Sqrt(2*lambda))
	}
	term := math.Exp(-lambda) // P(D = 0)
	cdf := term
	for i := int64(1); i < s; i++ {
		term *= lambda / float64(i)
		cdf += term
	}
	return max(0, 1-cdf)
}
