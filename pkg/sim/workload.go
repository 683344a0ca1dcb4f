package sim

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/gpupack/gpupack/pkg/score"
)

// Class is one distinct task type of a trace: what a placement policy can
// tell apart (CPU, memory, GPU count, share, model constraint).
type Class struct {
	CPUMilli  int64
	MemoryMiB int64
	NumGPU    int
	// GPUMilli is the share of each GPU (1000: whole GPUs).
	GPUMilli int64
	// Spec is the allowed models joined by "|" ("" any).
	Spec string
	// Count is the number of tasks of the pod list of this class.
	Count int

	// models is the set of allowed cluster model IDs (bit i = Cluster.Models[i]).
	models uint64
	// req is the pkg/score request (GPU classes only).
	req score.Request
	// affinity is the GPU clustering tag bit (0: no GPU).
	affinity uint32
}

// Demand is the class's GPU demand in milli-GPU.
func (c *Class) Demand() int64 { return int64(c.NumGPU) * c.GPUMilli }

// Shared reports whether the class takes a share of one GPU.
func (c *Class) Shared() bool { return c.NumGPU == 1 && c.GPUMilli < MilliPerGPU }

// TaskType is the class as a pkg/score task type; ok is false for CPU-only
// classes.
func (c *Class) TaskType() (score.TaskType, bool) {
	switch {
	case c.NumGPU == 0:
		return score.TaskType{}, false
	case c.Shared():
		return score.TaskType{Kind: score.KindShared, Milli: int(c.GPUMilli), Model: c.Spec}, true
	default:
		return score.TaskType{Kind: score.KindWhole, Count: c.NumGPU, Model: c.Spec}, true
	}
}

// String renders the class for logs.
func (c *Class) String() string {
	s := fmt.Sprintf("cpu=%dm mem=%dMi gpu=%dx%dm", c.CPUMilli, c.MemoryMiB, c.NumGPU, c.GPUMilli)
	if c.Spec != "" {
		s += " spec=" + c.Spec
	}
	return s
}

// Workload is a pod list as classes, ready to be replayed on a cluster.
type Workload struct {
	Classes []Class
	// Tasks[i] is the class of the pod list's task i.
	Tasks []int32
	// Demand is the pod list's GPU demand in milli-GPU.
	Demand int64
}

// NewWorkload groups tasks into classes against the cluster's models. A task
// whose allowed models are absent from the cluster is kept (it will fail).
func NewWorkload(tasks []TaskSpec, c *Cluster) (*Workload, error) {
	if len(tasks) == 0 {
		return nil, fmt.Errorf("no tasks")
	}
	type key struct {
		cpu, mem, milli int64
		n               int
		spec            string
	}
	idx := map[key]int32{}
	w := &Workload{}
	for _, t := range tasks {
		k := key{t.CPUMilli, t.MemoryMiB, t.GPUMilli, t.NumGPU, strings.Join(t.Models, "|")}
		id, ok := idx[k]
		if !ok {
			id = int32(len(w.Classes))
			idx[k] = id
			w.Classes = append(w.Classes, newClass(k.cpu, k.mem, k.n, k.milli, t.Models, c))
		}
		w.Classes[id].Count++
		w.Tasks = append(w.Tasks, id)
		w.Demand += t.GPUDemand()
	}
	if w.Demand == 0 {
		return nil, fmt.Errorf("the pod list asks for no GPU")
	}
	return w, nil
}

func newClass(cpu, mem int64, n int, milli int64, models []string, c *Cluster) Class {
	cl := Class{CPUMilli: cpu, MemoryMiB: mem, NumGPU: n, GPUMilli: milli, Spec: strings.Join(models, "|")}
	for i, m := range c.Models {
		if len(models) == 0 || slices.Contains(models, m) {
			cl.models |= 1 << uint(i)
		}
	}
	switch {
	case n == 0:
	case cl.Shared():
		cl.req = score.Request{Kind: score.KindShared, Count: int(milli), Policy: score.Packed, Model: cl.Spec}
		cl.affinity = 1
	default:
		cl.req = score.Request{Kind: score.KindWhole, Count: n, Model: cl.Spec}
		cl.affinity = 1 << uint(min(n, 30))
	}
	return cl
}

// Sequence is the arrival order of one seed, after the FGD artifact: the pod
// list shuffled, then tasks drawn from it uniformly with replacement, until
// the arrived GPU demand reaches target x capacity (milli-GPU). The task that
// crosses the target is the last one.
func (w *Workload) Sequence(capacity int64, target float64, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	goal := int64(target * float64(capacity))
	seq := make([]int32, 0, len(w.Tasks)*int(target*float64(capacity)/float64(w.Demand)+2))
	var demand int64
	for _, p := range rng.Perm(len(w.Tasks)) {
		if demand >= goal {
			return seq
		}
		id := w.Tasks[p]
		seq = append(seq, id)
		demand += w.Classes[id].Demand()
	}
	for demand < goal {
		id := w.Tasks[rng.IntN(len(w.Tasks))]
		seq = append(seq, id)
		demand += w.Classes[id].Demand()
	}
	return seq
}

// cannotRun is the task type gpusim puts in a node's distribution for the
// tasks whose CPU or memory the node cannot hold: a whole-GPU task larger
// than any node, for which pkg/score counts all free GPU capacity as
// fragment (FGD's "Q4: lack CPU" case).
var cannotRun = score.TaskType{Kind: score.KindWhole, Count: topologyMaxGPUs}

const topologyMaxGPUs = 64

// FragModel gives the workload distribution pkg/score's Fragmentation is
// taken over on a node, made CPU- and memory-aware: the popularity of each
// GPU task type is split into the part whose CPU and memory fit the node's
// free CPU and memory (kept as the type) and the rest (moved to cannotRun).
type FragModel struct {
	base *score.Distribution
	// members[j] are the classes of base type j: CPU, memory, count.
	members [][]member
	total   []int

	mu     sync.RWMutex
	byFree map[[2]int64]*score.Distribution
	byFit  map[string]*score.Distribution
}

// maxFreeKeys bounds the (free CPU, free memory) -> distribution cache.
const maxFreeKeys = 1 << 18

type member struct {
	cpu, mem int64
	count    int
}

// NewFragModel builds the model from a pkg/score Workload pinned to the
// pod list's GPU task types (weighted by count), keeping the maxTypes most
// popular (0: pkg/score's default, 16).
func NewFragModel(w *Workload, maxTypes int) (*FragModel, error) {
	var prior []score.Weighted
	for i := range w.Classes {
		c := &w.Classes[i]
		if t, ok := c.TaskType(); ok {
			prior = append(prior, score.Weighted{Type: t, Weight: float64(c.Count)})
		}
	}
	slices.SortStableFunc(prior, func(a, b score.Weighted) int { return cmp.Compare(b.Weight, a.Weight) })
	wl, err := score.NewWorkload(score.WorkloadOptions{Prior: prior, Pin: true, MaxTypes: maxTypes})
	if err != nil {
		return nil, fmt.Errorf("workload distribution: %w", err)
	}
	m := &FragModel{base: wl.Distribution(), byFree: map[[2]int64]*score.Distribution{}, byFit: map[string]*score.Distribution{}}
	m.members = make([][]member, len(m.base.Types))
	m.total = make([]int, len(m.base.Types))
	for i := range w.Classes {
		c := &w.Classes[i]
		t, ok := c.TaskType()
		if !ok {
			continue
		}
		if j := slices.Index(m.base.Types, t); j >= 0 {
			m.members[j] = append(m.members[j], member{c.CPUMilli, c.MemoryMiB, c.Count})
			m.total[j] += c.Count
		}
	}
	return m, nil
}

// Base is the distribution before CPU and memory are taken into account.
func (m *FragModel) Base() *score.Distribution { return m.base }

// Dist returns the distribution for a node with that much free CPU
// (milli) and memory (MiB).
func (m *FragModel) Dist(cpuFree, memFree int64) *score.Distribution {
	k := [2]int64{cpuFree, memFree}
	m.mu.RLock()
	d := m.byFree[k]
	m.mu.RUnlock()
	if d != nil {
		return d
	}
	fit := make([]byte, 0, 2*len(m.members))
	for j, ms := range m.members {
		n := 0
		for _, x := range ms {
			if x.cpu <= cpuFree && x.mem <= memFree {
				n += x.count
			}
		}
		if n == m.total[j] {
			n = 0xffff
		}
		fit = append(fit, byte(n), byte(n>>8))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.byFree) >= maxFreeKeys {
		clear(m.byFree) // bounded; byFit stays (few distinct fits)
	}
	if d = m.byFit[string(fit)]; d == nil {
		d = m.build(fit)
		m.byFit[string(fit)] = d
	}
	m.byFree[k] = d
	return d
}

func (m *FragModel) build(fit []byte) *score.Distribution {
	ws := make([]score.Weighted, 0, len(m.base.Types)+1)
	var rest float64
	for j, t := range m.base.Types {
		n := int(fit[2*j]) | int(fit[2*j+1])<<8
		frac := 1.0
		if n != 0xffff {
			frac = float64(n) / float64(max(1, m.total[j]))
		}
		ws = append(ws, score.Weighted{Type: t, Weight: m.base.P[j] * frac})
		rest += m.base.P[j] * (1 - frac)
	}
	if rest > 0 {
		ws = append(ws, score.Weighted{Type: cannotRun, Weight: rest})
	}
	d, err := score.NewDistribution(ws)
	if err != nil { // cannot happen: every weight is finite and they sum to 1
		return m.base
	}
	return d
}
