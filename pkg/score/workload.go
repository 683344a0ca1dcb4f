package score

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gpupack/gpupack/pkg/topology"
)

// TaskType is one class of task in the workload distribution.
type TaskType struct {
	Kind Kind `json:"kind"`
	// Count is the number of GPUs (KindWhole) or MIG devices (KindMIG).
	Count int `json:"count,omitempty"`
	// Milli is the share of one GPU a KindShared task takes, 1..1000.
	Milli int `json:"milli,omitempty"`
	// MIGProfile is the profile of a KindMIG task.
	MIGProfile string `json:"migProfile,omitempty"`
	// Model restricts the GPU model ("" any; "a|b" a or b).
	Model string `json:"model,omitempty"`
	// CPUMilli and MemoryMiB are the task's CPU (milli-cores) and memory
	// (MiB) needs; 0 means not known (not considered). A node whose free
	// CPU or memory is short of them counts all its free GPUs as fragment
	// for this type. Workload.Observe buckets them (Bucketed).
	CPUMilli  int64 `json:"cpuMilli,omitempty"`
	MemoryMiB int64 `json:"memoryMiB,omitempty"`
}

// Validate reports what is wrong with t.
func (t TaskType) Validate() error {
	switch t.Kind {
	case KindWhole:
		if t.Count < 1 || t.Count > topology.MaxGPUs {
			return fmt.Errorf("whole-GPU task type: count %d not in 1..%d", t.Count, topology.MaxGPUs)
		}
	case KindShared:
		if t.Milli < 1 || t.Milli > topology.MilliPerGPU {
			return fmt.Errorf("shared task type: milli %d not in 1..%d", t.Milli, topology.MilliPerGPU)
		}
	case KindMIG:
		if t.MIGProfile == "" || t.Count < 1 {
			return errors.New("MIG task type needs a profile and a positive count")
		}
	default:
		return fmt.Errorf("task type: unknown kind %d", int(t.Kind))
	}
	if t.CPUMilli < 0 || t.MemoryMiB < 0 {
		return fmt.Errorf("task type: cpu %dm and memory %dMi must be >= 0", t.CPUMilli, t.MemoryMiB)
	}
	return nil
}

// String renders t compactly, e.g. "whole:4", "shared:500m", "mig:1g.5gb".
func (t TaskType) String() string {
	s := ""
	switch t.Kind {
	case KindWhole:
		s = fmt.Sprintf("whole:%d", t.Count)
	case KindShared:
		s = fmt.Sprintf("shared:%dm", t.Milli)
	case KindMIG:
		s = fmt.Sprintf("mig:%s", t.MIGProfile)
		if t.Count > 1 {
			s += fmt.Sprintf("x%d", t.Count)
		}
	default:
		s = t.Kind.String()
	}
	if t.Model != "" {
		s += "@" + t.Model
	}
	if t.CPUMilli > 0 || t.MemoryMiB > 0 {
		s += fmt.Sprintf("/cpu=%dm,mem=%dMi", t.CPUMilli, t.MemoryMiB)
	}
	return s
}

// TaskOf returns the task type of a request as placed by choice c on state s
// (the share of a replica depends on the GPU's replica count).
func TaskOf(s *State, req Request, c Choice) TaskType {
	t := TaskType{Kind: req.Kind, Count: req.Count, MIGProfile: req.MIGProfile, Model: req.Model,
		CPUMilli: req.CPUMilli, MemoryMiB: req.MemoryMiB}
	if req.Kind != KindShared {
		return t
	}
	t.Count = 0
	repl := 1
	if len(c.Shares) > 0 {
		sh := c.Shares[0]
		repl = sh.Replicas
		if sh.GPU >= 0 && sh.GPU < len(s.reps) {
			t.Milli = int(math.Round(float64(repl) * 1000 / float64(s.reps[sh.GPU])))
		}
	}
	t.Milli = min(1000, max(1, t.Milli))
	return t
}

// Weighted is a task type with a weight (popularity).
type Weighted struct {
	Type   TaskType `json:"type"`
	Weight float64  `json:"weight"`
}

// Distribution is an immutable snapshot of the workload: task types and
// their popularity, summing to 1.
type Distribution struct {
	Types []TaskType
	P     []float64
	// wholeSizes are the distinct Count of KindWhole types with Count >= 2.
	wholeSizes []int
	// needy are the indexes of the types with a CPU or memory need (the
	// others fit every node).
	needy []int
	// cpuPerGPU and memPerGPU are the mix's CPU (milli) and memory (MiB)
	// per GPU of demand (mixPerGPU).
	cpuPerGPU, memPerGPU float64
	// id numbers the snapshot for the choice memo (0: not memoized, as for
	// a Distribution built without NewDistribution).
	id uint64
	// tasksOnly bounds each type's capacity on a node by its own tasks
	// alone (taskCap without the mix); set on tasks, the copy
	// ResourceDelta measures CPU-only tasks with.
	tasksOnly bool
	tasks     *Distribution
}

// tasksBound is d with tasksOnly set (d itself when it is).
func (d *Distribution) tasksBound() *Distribution {
	switch {
	case d.tasksOnly:
		return d
	case d.tasks != nil:
		return d.tasks
	}
	o := *d // built by hand, not indexed
	o.tasksOnly = true
	return &o
}

// NewDistribution normalizes weights into a Distribution; it fails on an
// invalid type, a negative or non-finite weight, or a zero or overflowing
// total.
func NewDistribution(ws []Weighted) (*Distribution, error) {
	merged := map[TaskType]float64{}
	var order []TaskType
	var total float64
	for i, w := range ws {
		if err := w.Type.Validate(); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if w.Weight < 0 || math.IsNaN(w.Weight) || math.IsInf(w.Weight, 0) {
			return nil, fmt.Errorf("entry %d (%s): weight %v must be a finite number >= 0", i, w.Type, w.Weight)
		}
		if _, ok := merged[w.Type]; !ok {
			order = append(order, w.Type)
		}
		merged[w.Type] += w.Weight
		total += w.Weight
	}
	if total <= 0 {
		return nil, errors.New("workload distribution: total weight must be positive")
	}
	if math.IsInf(total, 0) {
		// Finite weights whose sum overflows: each p would be 0, or NaN
		// for a type whose merged weight overflowed too.
		return nil, errors.New("workload distribution: the weights' total overflows float64")
	}
	d := &Distribution{}
	for _, t := range order {
		if merged[t] > 0 {
			d.Types = append(d.Types, t)
			d.P = append(d.P, merged[t]/total)
		}
	}
	d.index()
	d.id = distIDs.Add(1)
	t := *d
	t.tasksOnly, t.id = true, distIDs.Add(1)
	d.tasks = &t
	return d, nil
}

func (d *Distribution) index() {
	d.cpuPerGPU, d.memPerGPU = d.mixPerGPU()
	d.wholeSizes = d.wholeSizes[:0]
	d.needy = d.needy[:0]
	for m, t := range d.Types {
		if t.CPUMilli > 0 || t.MemoryMiB > 0 {
			d.needy = append(d.needy, m)
		}
		if t.Kind == KindWhole && t.Count >= 2 && !slices.Contains(d.wholeSizes, t.Count) {
			d.wholeSizes = append(d.wholeSizes, t.Count)
		}
	}
}

// DefaultPrior is the workload assumed before any pod is seen: roughly the
// task mix of the Alibaba openb "default" trace (whole single GPUs about
// half, GPU-sharing tasks about a third), with more weight on multi-GPU
// tasks so that well-linked groups are kept.
func DefaultPrior() []Weighted {
	return []Weighted{
		{TaskType{Kind: KindWhole, Count: 1}, 0.50},
		{TaskType{Kind: KindWhole, Count: 2}, 0.04},
		{TaskType{Kind: KindWhole, Count: 4}, 0.03},
		{TaskType{Kind: KindWhole, Count: 8}, 0.03},
		{TaskType{Kind: KindShared, Milli: 800}, 0.15},
		{TaskType{Kind: KindShared, Milli: 500}, 0.13},
		{TaskType{Kind: KindShared, Milli: 250}, 0.07},
		{TaskType{Kind: KindShared, Milli: 100}, 0.05},
	}
}

var defaultDistribution = func() *Distribution {
	d, err := NewDistribution(DefaultPrior())
	if err != nil {
		panic(err) // the built-in prior is valid; tested
	}
	return d
}()

// DefaultDistribution is DefaultPrior as a Distribution.
func DefaultDistribution() *Distribution { return defaultDistribution }

// DefaultMaxTypes is WorkloadOptions.MaxTypes' default (also the most task
// types whose choices are memoized).
const DefaultMaxTypes = maxMemoTypes

// WorkloadOptions' defaults (also the scheduler plugin's workload args').
const (
	// DefaultPriorWeight is how many observations the prior is worth.
	DefaultPriorWeight = 100
	// DefaultHalfLife is the number of observations after which one
	// counts half.
	DefaultHalfLife = 1000
)

// WorkloadOptions tune a Workload; zero values take the defaults.
type WorkloadOptions struct {
	// Prior is the distribution before observations (DefaultPrior if nil).
	Prior []Weighted
	// PriorWeight is how many observations the prior is worth (default 100).
	PriorWeight float64
	// HalfLife is the number of observations after which an observation
	// counts half (default 1000).
	HalfLife float64
	// Pin ignores observations: the distribution stays the prior.
	Pin bool
	// MaxTypes bounds the task types in a snapshot (default 128: task
	// types carry their CPU and memory, bucketed; dropping the rarer ones
	// renormalizes the rest, which cost gpusim 5 points of GPU allocation
	// on the openb default trace at 16 types and 0.5 at 64).
	MaxTypes int
	// Tolerance makes snapshots cheap to keep: after an observation a new
	// snapshot is published only when it differs from the current one by
	// at least Tolerance in total variation distance (half the sum of the
	// probability changes), so consumers that key work on the snapshot
	// (the choice memo of Choose) keep it. 0 (the default) publishes
	// after every observation. Observations are never lost: the histogram
	// keeps them all.
	Tolerance float64
	// SnapshotInterval and MaxLag pace the snapshots while the mix moves:
	// a move of Tolerance or more is published once SnapshotInterval
	// observations have passed since the last snapshot, or at once when
	// it reaches MaxLag. SnapshotInterval 0 (the default) publishes every
	// move of Tolerance at once; MaxLag 0 (the default) waits out the
	// interval whatever the move. Both need Tolerance > 0.
	SnapshotInterval int
	MaxLag           float64
}

// The scheduler plugin's snapshot pacing (WorkloadOptions Tolerance,
// SnapshotInterval and MaxLag): a new snapshot once the learned workload
// has moved by DefaultTolerance (total variation) and
// DefaultSnapshotInterval pods have passed since the last one, or at once
// when it has moved by DefaultMaxLag.
//
// Each snapshot starts a fresh choice memo and voids every node's last
// plans, so the next cycles plan every node again: republishing after
// every pod would make every scheduling cycle recompute each node usage
// pattern. Learning a new mix from the prior is a move of up to 1, which
// at a plain tolerance of 1% published about 90 snapshots in the first
// 2,000 pods of test/throughput's stream, and the scheduler's CPU per pod
// in its first 2,000 pods was 1.4-1.5x that of the next 2,000 (5,000
// nodes; 1.0x with the workload pinned). A plain 5% cut that to 18 but
// left a settled mix's snapshot stale: a new task type at 3% of the pods
// took 2,846 pods to enter it, or did not in 20,000, since the noise of a
// settled mix rarely reaches 5% (TestNewTypeReachesSettledSnapshot: 5-328
// pods now, 184-426 at a plain 1%). With the interval, a fast move is
// followed at every 5%, and every move of 1% within
// DefaultSnapshotInterval pods (the prior's worth): 27 snapshots in those
// first 2,000 pods, 4 in the next 2,000 (TestLearningTransientSnapshots).
const (
	DefaultTolerance        = 0.01
	DefaultSnapshotInterval = 100
	DefaultMaxLag           = 0.05
)

// PluginWorkloadOptions are the options the scheduler plugin's default args
// give its Workload (DefaultPrior, prior weight 100, half-life 1000, not
// pinned, DefaultTolerance, DefaultSnapshotInterval, DefaultMaxLag);
// gpusim's online mode learns with them.
func PluginWorkloadOptions() WorkloadOptions {
	return WorkloadOptions{PriorWeight: 100, HalfLife: 1000, Tolerance: DefaultTolerance,
		SnapshotInterval: DefaultSnapshotInterval, MaxLag: DefaultMaxLag}
}

// Workload is the workload distribution learned online: a decayed
// histogram of the task types seen, blended with a prior. Observe and
// Distribution are safe for concurrent use; Distribution is lock-free.
type Workload struct {
	prior       *Distribution
	priorWeight float64
	growth      float64 // 1/decay per observation
	pin         bool
	maxTypes    int
	tolerance   float64
	interval    int
	maxLag      float64

	mu   sync.Mutex
	hist map[TaskType]float64
	inc  float64 // weight of the next observation (lazy decay)
	sum  float64 // sum of hist
	snap atomic.Pointer[Distribution]
	// since counts the observations since the last snapshot.
	since int

	// What Observe needs to tell whether the snapshot moves without
	// building the candidate Distribution (candidate), all under mu:
	// keys are the prior's and the histogram's task types in blend's
	// order (compareType), rebuilt when a type enters or leaves the
	// histogram; priorW are the prior's weights (worth priorWeight); ws,
	// cand, idx and matched are reused buffers; snapIdx indexes the
	// current snapshot's types.
	keys    []TaskType
	priorW  map[TaskType]float64
	ws      []Weighted
	cand    []Weighted
	idx     []int
	matched []bool
	snapIdx map[TaskType]int
	// slow makes Observe build every candidate snapshot (tests compare
	// the two ways).
	slow bool
}

// NewWorkload returns a Workload; it fails on an invalid prior or option.
func NewWorkload(o WorkloadOptions) (*Workload, error) {
	prior := defaultDistribution
	if o.Prior != nil {
		var err error
		if prior, err = NewDistribution(o.Prior); err != nil {
			return nil, fmt.Errorf("prior: %w", err)
		}
	}
	if o.PriorWeight == 0 {
		o.PriorWeight = DefaultPriorWeight
	}
	if o.HalfLife == 0 {
		o.HalfLife = DefaultHalfLife
	}
	if o.MaxTypes == 0 {
		o.MaxTypes = DefaultMaxTypes
	}
	switch {
	case o.PriorWeight < 0 || math.IsNaN(o.PriorWeight) || math.IsInf(o.PriorWeight, 0):
		return nil, fmt.Errorf("prior weight %v must be a finite number >= 0", o.PriorWeight)
	case o.HalfLife < 1 || math.IsNaN(o.HalfLife) || math.IsInf(o.HalfLife, 0):
		return nil, fmt.Errorf("half-life %v must be a finite number >= 1", o.HalfLife)
	case o.MaxTypes < 1:
		return nil, fmt.Errorf("max types %d must be positive", o.MaxTypes)
	case !(o.Tolerance >= 0 && o.Tolerance < 1):
		return nil, fmt.Errorf("tolerance %v must be in [0, 1)", o.Tolerance)
	case o.SnapshotInterval < 0:
		return nil, fmt.Errorf("snapshot interval %d must be >= 0", o.SnapshotInterval)
	case !(o.MaxLag == 0 || o.MaxLag > o.Tolerance && o.MaxLag <= 1):
		return nil, fmt.Errorf("max lag %v must be 0 or in (tolerance %v, 1]", o.MaxLag, o.Tolerance)
	case (o.SnapshotInterval > 0 || o.MaxLag > 0) && o.Tolerance == 0:
		return nil, fmt.Errorf("snapshot interval and max lag need a tolerance > 0")
	}
	w := &Workload{
		prior:       prior,
		priorWeight: o.PriorWeight,
		growth:      math.Pow(2, 1/o.HalfLife),
		pin:         o.Pin,
		maxTypes:    o.MaxTypes,
		tolerance:   o.Tolerance,
		interval:    o.SnapshotInterval,
		maxLag:      o.MaxLag,
		hist:        map[TaskType]float64{},
		inc:         1,
	}
	w.priorW = make(map[TaskType]float64, len(prior.Types))
	for i, t := range prior.Types {
		w.priorW[t] = prior.P[i] * w.priorWeight
	}
	w.rekey()
	w.publish(w.trim(prior))
	return w, nil
}

// Observe records one task seen by the scheduler, its CPU and memory
// bucketed (TaskType.Bucketed) so that task types stay few.
//
// It runs in the scheduler plugin's Reserve, once per pod: the candidate
// snapshot (the histogram blended with the prior, trimmed to maxTypes) is
// computed as probabilities in reused buffers (candidate), and a
// Distribution is built only when one is published (WorkloadOptions
// Tolerance, SnapshotInterval and MaxLag; rare in a steady mix), with the
// same arithmetic, so the snapshots published are those that building
// every candidate would publish.
func (w *Workload) Observe(t TaskType) {
	if w == nil || w.pin || t.Validate() != nil {
		return
	}
	t = t.Bucketed()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.hist[t]; !ok && len(w.hist)/histTypesPerMaxType >= w.maxTypes {
		w.evictLightest()
	}
	w.hist[t] += w.inc
	w.sum += w.inc
	w.inc *= w.growth
	if w.inc > 1e100 { // rescale: keeps ratios, avoids overflow
		dropped := false
		for k, v := range w.hist {
			if v /= w.inc; v < 1e-12 {
				delete(w.hist, k)
				dropped = true
				continue
			}
			w.hist[k] = v
		}
		w.sum /= w.inc
		w.inc = 1
		if dropped {
			w.rekey()
		}
	}
	w.rekeyIfNew(t)
	w.since++
	if w.tolerance > 0 {
		if d, ok := w.moved(); ok && w.holdBack(d) {
			return
		}
	}
	w.publish(w.trim(w.blend()))
}

// moved is the distance of the candidate snapshot from the current one;
// false when it was not worked out (the candidate is then published).
func (w *Workload) moved() (float64, bool) {
	if w.slow {
		return distance(w.trim(w.blend()), w.snap.Load()), true
	}
	cand, ok := w.candidate()
	if !ok {
		return 0, false
	}
	return w.distanceTo(cand), true
}

// holdBack reports whether a candidate that moved by d waits: below the
// tolerance, or within the snapshot interval and short of the max lag.
func (w *Workload) holdBack(d float64) bool {
	if d < w.tolerance {
		return true
	}
	return w.since < w.interval && (w.maxLag == 0 || d < w.maxLag)
}

// publish makes d the snapshot and indexes its types (distanceTo).
func (w *Workload) publish(d *Distribution) {
	if w.snapIdx == nil {
		w.snapIdx = map[TaskType]int{}
	}
	clear(w.snapIdx)
	for i, t := range d.Types {
		w.snapIdx[t] = i
	}
	w.snap.Store(d)
	w.since = 0
}

// rekeyIfNew inserts t, just observed, into keys when it is not among them
// (keys stay sorted: what rekey would make).
func (w *Workload) rekeyIfNew(t TaskType) {
	if i, ok := slices.BinarySearchFunc(w.keys, t, compareType); !ok {
		w.keys = slices.Insert(w.keys, i, t)
	}
}

// histTypesPerMaxType bounds the histogram: at most this many times
// MaxTypes task types (1024 at the default 128). Without it, a stream of
// distinct types (odd shares, CPU, memory, models) kept every one until
// the weights' rescale (about 332,000 observations at the default
// half-life), and Observe, which sorts them, took milliseconds per pod.
// Only a snapshot's MaxTypes most popular types count; the openb traces
// have at most a few hundred.
const histTypesPerMaxType = 8

// evictLightest drops the histogram's lightest type (the least recently
// and least often seen; the first in compareType order among equals) to
// make room for a new one. Called with mu held.
func (w *Workload) evictLightest() {
	i := -1
	for j, t := range w.keys {
		if v, ok := w.hist[t]; ok && (i < 0 || v < w.hist[w.keys[i]]) {
			i = j
		}
	}
	if i < 0 {
		return
	}
	t := w.keys[i]
	w.sum -= w.hist[t]
	delete(w.hist, t)
	if _, ok := w.priorW[t]; !ok {
		w.keys = slices.Delete(w.keys, i, i+1)
	}
}

// rekey sorts the prior's and the histogram's task types into keys
// (compareType: blend's order).
func (w *Workload) rekey() {
	w.keys = w.keys[:0]
	for t := range w.priorW {
		w.keys = append(w.keys, t)
	}
	for t := range w.hist {
		if _, ok := w.priorW[t]; !ok {
			w.keys = append(w.keys, t)
		}
	}
	slices.SortFunc(w.keys, compareType)
}

// distance is the total variation distance between a and b: half the sum
// over task types of |p_a - p_b|.
func distance(a, b *Distribution) float64 {
	var sum float64
	for i, t := range a.Types {
		pb := 0.0
		if j := slices.Index(b.Types, t); j >= 0 {
			pb = b.P[j]
		}
		sum += math.Abs(a.P[i] - pb)
	}
	for j, t := range b.Types {
		if !slices.Contains(a.Types, t) {
			sum += b.P[j]
		}
	}
	return sum / 2
}

// distanceTo is distance(candidate, snapshot) for the candidate's types
// and probabilities cand (candidate), summed in the same order.
func (w *Workload) distanceTo(cand []Weighted) float64 {
	snap := w.snap.Load()
	w.matched = slices.Grow(w.matched[:0], len(snap.Types))[:len(snap.Types)]
	clear(w.matched)
	var sum float64
	for _, c := range cand {
		pb := 0.0
		if j, ok := w.snapIdx[c.Type]; ok {
			pb = snap.P[j]
			w.matched[j] = true
		}
		sum += math.Abs(c.Weight - pb)
	}
	for j := range snap.Types {
		if !w.matched[j] {
			sum += snap.P[j]
		}
	}
	return sum / 2
}

// weights are blend's weighted types: the prior's (worth priorWeight
// observations) and the decayed histogram's (worth its effective count),
// in compareType order, the prior's before the histogram's of the same
// type (so that sums over them do not depend on map order). In a reused
// buffer. Called with mu held.
func (w *Workload) weights() []Weighted {
	eff := w.sum / w.inc // decayed number of observations
	ws := w.ws[:0]
	for _, t := range w.keys {
		if p, ok := w.priorW[t]; ok {
			ws = append(ws, Weighted{t, p})
		}
		if v, ok := w.hist[t]; ok {
			ws = append(ws, Weighted{t, v / w.sum * eff})
		}
	}
	w.ws = ws
	return ws
}

// blend mixes the prior with the decayed histogram (weights). Called with
// mu held.
func (w *Workload) blend() *Distribution {
	d, err := NewDistribution(w.weights())
	if err != nil {
		return w.prior
	}
	return d
}

// candidate is trim(blend())'s types and probabilities (as Weighted, in
// its order), computed with NewDistribution's and trim's arithmetic but
// without building either Distribution, in a reused buffer; false when
// blend or trim would not build one (they fall back). Called with mu held.
func (w *Workload) candidate() ([]Weighted, bool) {
	ws := w.weights()
	// NewDistribution: merged weights per type (the same type's entries
	// are adjacent), the total in ws order, zero weights dropped.
	var total float64
	cand := w.cand[:0]
	for i, x := range ws {
		total += x.Weight
		if i > 0 && ws[i-1].Type == x.Type {
			cand[len(cand)-1].Weight += x.Weight
			continue
		}
		cand = append(cand, x)
	}
	w.cand = cand
	if !(total > 0) {
		return nil, false
	}
	n := 0
	for _, c := range cand {
		if c.Weight > 0 {
			cand[n] = Weighted{c.Type, c.Weight / total}
			n++
		}
	}
	cand = cand[:n]
	if len(cand) <= w.maxTypes {
		return cand, true
	}
	// trim: the maxTypes most popular (a stable sort), renormalized by
	// NewDistribution over them in that order.
	idx := w.idx[:0]
	for i := range cand {
		idx = append(idx, i)
	}
	w.idx = idx
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case cand[a].Weight > cand[b].Weight:
			return -1
		case cand[a].Weight < cand[b].Weight:
			return 1
		}
		return 0
	})
	top := make([]Weighted, 0, w.maxTypes)
	var sum float64
	for _, i := range idx[:w.maxTypes] {
		top = append(top, cand[i])
		sum += cand[i].Weight
	}
	if !(sum > 0) {
		return nil, false
	}
	for i := range top {
		top[i].Weight /= sum
	}
	return top, true
}

// trim keeps the maxTypes most popular types, renormalized.
func (w *Workload) trim(d *Distribution) *Distribution {
	if len(d.Types) <= w.maxTypes {
		return d
	}
	idx := make([]int, len(d.Types))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case d.P[a] > d.P[b]:
			return -1
		case d.P[a] < d.P[b]:
			return 1
		}
		return 0
	})
	ws := make([]Weighted, 0, w.maxTypes)
	for _, i := range idx[:w.maxTypes] {
		ws = append(ws, Weighted{d.Types[i], d.P[i]})
	}
	out, err := NewDistribution(ws)
	if err != nil {
		return d
	}
	return out
}

// Distribution returns the current snapshot (DefaultDistribution for a nil
// Workload).
func (w *Workload) Distribution() *Distribution {
	if w == nil {
		return defaultDistribution
	}
	return w.snap.Load()
}

func compareType(a, b TaskType) int {
	if c := int(a.Kind) - int(b.Kind); c != 0 {
		return c
	}
	if c := a.Count - b.Count; c != 0 {
		return c
	}
	if c := a.Milli - b.Milli; c != 0 {
		return c
	}
	if a.MIGProfile != b.MIGProfile {
		if a.MIGProfile < b.MIGProfile {
			return -1
		}
		return 1
	}
	if a.Model != b.Model {
		if a.Model < b.Model {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.CPUMilli, b.CPUMilli); c != 0 {
		return c
	}
	return cmp.Compare(a.MemoryMiB, b.MemoryMiB)
}
