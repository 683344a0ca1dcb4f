package sim

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
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
func (c *Class) Shared() bool { return c.NumGPU == 1 && c.GPUMilli < topology.MilliPerGPU }

// TaskType is the class as a pkg/score task type (CPU and memory exact, not
// bucketed); ok is false for CPU-only classes.
func (c *Class) TaskType() (score.TaskType, bool) {
	switch {
	case c.NumGPU == 0:
		return score.TaskType{}, false
	case c.Shared():
		return score.TaskType{Kind: score.KindShared, Milli: int(c.GPUMilli), Model: c.Spec,
			CPUMilli: c.CPUMilli, MemoryMiB: c.MemoryMiB}, true
	default:
		return score.TaskType{Kind: score.KindWhole, Count: c.NumGPU, Model: c.Spec,
			CPUMilli: c.CPUMilli, MemoryMiB: c.MemoryMiB}, true
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
		cl.req = score.Request{Kind: score.KindShared, Count: int(milli), Policy: score.Packed, Model: cl.Spec, CPUMilli: cpu, MemoryMiB: mem}
		cl.affinity = 1
	default:
		cl.req = score.Request{Kind: score.KindWhole, Count: n, Model: cl.Spec, CPUMilli: cpu, MemoryMiB: mem}
		cl.affinity = 1 << uint(min(n, 30))
	}
	return cl
}

// MaxArrivals bounds the arrivals of one run (a seed's task sequence, which
// every policy replays and which is held in memory, 4 bytes an arrival, for
// each seed until the run ends). The openb traces take 8,500 to 15,000
// arrivals per run at the protocol's target of 1.3 and at most 115,000
// (gpushare80) at MaxTarget, so 2^20 is some 70 times a protocol run and 9
// times the heaviest run at MaxTarget. A pod list whose GPU demand per task
// is tiny beside the cluster would otherwise run for hours or exhaust memory:
// one 1-milli GPU task among 1,000 CPU-only tasks on the openb nodes takes
// 8 billion arrivals to reach 1.3 x 6,212 GPUs.
const MaxArrivals = 1 << 20

// Arrivals is the expected length of Sequence(capacity, target, seed):
// target x capacity over the pod list's mean GPU demand per task
// (CPU-only tasks count as tasks with none).
func (w *Workload) Arrivals(capacity int64, target float64) float64 {
	return expectedArrivals(capacity, target, len(w.Tasks), w.Demand)
}

// expectedArrivals is the expected length of a run over a pod list of
// tasks tasks asking demand milli-GPU in all: target x capacity over the
// mean demand per task.
func expectedArrivals(capacity int64, target float64, tasks int, demand int64) float64 {
	return target * float64(capacity) * float64(tasks) / float64(demand)
}

// CheckArrivals refuses a workload whose runs would take more than
// MaxArrivals arrivals to reach target x capacity, saying why and what to
// change: call it before generating sequences.
func (w *Workload) CheckArrivals(capacity int64, target float64) error {
	if n := w.Arrivals(capacity, target); n > MaxArrivals {
		return w.arrivalsError(capacity, target, fmt.Sprintf("about %.0f", n))
	}
	return nil
}

func (w *Workload) arrivalsError(capacity int64, target float64, n string) error {
	gpuTasks := 0
	for i := range w.Classes {
		if w.Classes[i].NumGPU > 0 {
			gpuTasks += w.Classes[i].Count
		}
	}
	return arrivalsError(capacity, target, n, gpuTasks, len(w.Tasks), w.Demand)
}

// arrivalsError is ErrTooManyArrivals for a pod list of tasks tasks,
// gpuTasks of them asking GPUs, demand milli-GPU in all, whose runs take n
// arrivals (a phrase: "about 9372090").
func arrivalsError(capacity int64, target float64, n string, gpuTasks, tasks int, demand int64) error {
	return fmt.Errorf("%w: reaching %.4g%% of its %.0f GPUs takes %s arrivals (%d of the pod list's %d tasks "+
		"ask GPUs, %.3g milli-GPU per task on average), more than the bound of %d (sim.MaxArrivals; the openb "+
		"traces take 8,500-15,000 per run); use a pod list with more or larger GPU tasks, a node list with fewer "+
		"GPUs, or a lower target (--target)",
		ErrTooManyArrivals, 100*target, float64(capacity)/topology.MilliPerGPU, n, gpuTasks, tasks,
		float64(demand)/float64(tasks), MaxArrivals)
}

// ErrTooManyArrivals is the error of a workload refused for MaxArrivals.
var ErrTooManyArrivals = errors.New("the pod list's GPU demand is too small for the cluster")

// Sequence is the arrival order of one seed, after the FGD artifact: the pod
// list shuffled, then tasks drawn from it uniformly with replacement, until
// the arrived GPU demand reaches target x capacity (milli-GPU). The task that
// crosses the target is the last one. A sequence longer than MaxArrivals is
// refused (CheckArrivals refuses the workloads that expect one).
func (w *Workload) Sequence(capacity int64, target float64, seed uint64) ([]int32, error) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	goal := int64(target * float64(capacity))
	// Room for the expected length and a little more, never past the bound.
	seq := make([]int32, 0, int(min(1.05*w.Arrivals(capacity, target)+64, MaxArrivals)))
	var demand int64
	perm := rng.Perm(len(w.Tasks))
	for k := 0; demand < goal; k++ {
		if len(seq) == MaxArrivals {
			return nil, w.arrivalsError(capacity, target, fmt.Sprintf("more than %d", MaxArrivals))
		}
		var id int32
		if k < len(perm) { // the pod list first, shuffled
			id = w.Tasks[perm[k]]
		} else { // then drawn with replacement
			id = w.Tasks[rng.IntN(len(w.Tasks))]
		}
		seq = append(seq, id)
		demand += w.Classes[id].Demand()
	}
	return seq, nil
}

// FragModel is the workload distribution gpupack's fragmentation is taken
// over in the simulator: a pkg/score Workload pinned to the pod list's GPU
// task types (FGD's artifact also knows its "typical pods" up front), each
// with its CPU and memory bucketed as the scheduler plugin's Workload
// buckets what it observes (score.TaskType.Bucketed). pkg/score counts a
// node's free GPUs as fragment for the types its free CPU or memory cannot
// hold (the node's State knows them, see run.apply), exactly as in the
// plugin.
type FragModel struct {
	dist *score.Distribution
}

// NewFragModel builds the model from the pod list's GPU classes (weighted
// by count), keeping the maxTypes most popular types (0: pkg/score's
// default, score.DefaultMaxTypes).
func NewFragModel(w *Workload, maxTypes int) (*FragModel, error) {
	var prior []score.Weighted
	for i := range w.Classes {
		c := &w.Classes[i]
		if t, ok := c.TaskType(); ok {
			prior = append(prior, score.Weighted{Type: t.Bucketed(), Weight: float64(c.Count)})
		}
	}
	slices.SortStableFunc(prior, func(a, b score.Weighted) int { return cmp.Compare(b.Weight, a.Weight) })
	wl, err := score.NewWorkload(score.WorkloadOptions{Prior: prior, Pin: true, MaxTypes: maxTypes})
	if err != nil {
		return nil, fmt.Errorf("workload distribution: %w", err)
	}
	return &FragModel{dist: wl.Distribution()}, nil
}

// Base is the distribution.
func (m *FragModel) Base() *score.Distribution { return m.dist }

// UnhostableTasks counts the tasks whose gpu_spec names only GPU models that
// no node of c has (they fail wherever they arrive) and returns those
// models, sorted: in a pod list meant for other machines, or a typo.
func UnhostableTasks(tasks []TaskSpec, c *Cluster) (int, []string) {
	var n int
	var missing []string
	for _, t := range tasks {
		if len(t.Models) == 0 || slices.ContainsFunc(t.Models, func(m string) bool { return slices.Contains(c.Models, m) }) {
			continue
		}
		n++
		for _, m := range t.Models {
			if !slices.Contains(missing, m) {
				missing = append(missing, m)
			}
		}
	}
	slices.Sort(missing)
	return n, missing
}

// OversizedTasks counts the tasks that no node of c could host even with
// nothing placed on it: more GPUs, CPU or memory than every node of a
// model they may take has (a CPU-only task may take any node). They fail
// wherever they arrive: in a pod list meant for larger machines. Tasks
// asking only models no node has are UnhostableTasks' and not counted.
func OversizedTasks(tasks []TaskSpec, c *Cluster) int {
	// Nodes of one spec are alike: look at each spec once.
	var specs []NodeSpec
	for _, n := range c.Nodes {
		n.Name = ""
		if !slices.Contains(specs, n) {
			specs = append(specs, n)
		}
	}
	n := 0
	for _, t := range tasks {
		if len(t.Models) > 0 && !slices.ContainsFunc(t.Models, func(m string) bool { return slices.Contains(c.Models, m) }) {
			continue // UnhostableTasks
		}
		if !slices.ContainsFunc(specs, func(s NodeSpec) bool { return hostsEmpty(s, t) }) {
			n++
		}
	}
	return n
}

// hostsEmpty reports whether a node of spec s with nothing placed on it
// could take task t (CPU, memory, GPU model and count).
func hostsEmpty(s NodeSpec, t TaskSpec) bool {
	if t.CPUMilli > s.CPUMilli || t.MemoryMiB > s.MemoryMiB {
		return false
	}
	if t.NumGPU == 0 {
		return true
	}
	return s.GPUs >= t.NumGPU && (len(t.Models) == 0 || slices.Contains(t.Models, s.Model))
}
