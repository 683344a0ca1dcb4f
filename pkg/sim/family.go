package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/gpupack/gpupack/pkg/topology"
)

// Axis is one trace family of the openb traces: what its members vary.
//
// The published members (openb_pod_list_cpuNNN, gpushareNN, gpuspecNN,
// multigpuNN) differ from openb_pod_list_default as follows (compared as
// multisets of rows; names are reassigned in some files):
//
//   - cpuNNN: the GPU tasks are the default's, untouched; CPU-only tasks are
//     dropped (a subset of the default's) or added (copies of the
//     default's) until they are NNN/10 % of all tasks: cpu050 has 375 of
//     7439 (5.0%), cpu100 789 of 7853 (10.0%), cpu250 2356 of 9420 (25.0%);
//     the default has 1088 of 8152 (13.3%).
//   - gpushareNN: CPU-only tasks and the task count are the default's;
//     whole-GPU tasks (1- and multi-GPU alike) are replaced by copies of
//     the default's sharing tasks until sharing tasks carry NN% of the GPU
//     demand: 40.1%, 60.0%, 80.0% (default 28.5%; by count 57-89%).
//   - gpuspecNN: only gpu_spec changes: NN% of the GPU tasks (10.4%, 20.4%)
//     get a model constraint, drawn anew per member (the tasks constrained
//     in gpuspec10 and gpuspec20 barely overlap), the constraints a mix of
//     single models and model lists that some node can host (8-GPU tasks get
//     G2 or G3, never T4).
//   - multigpuNN: the default's rows plus copies of its multi-GPU tasks
//     until those carry NN% of the GPU demand: 20.4%, 30.2% (default 7.3%).
//
// GenerateVariant applies the same rule, seeded, at any level, in both
// directions (below the source's level it removes or converts the other
// way).
type Axis string

// The axes, named as the trace families.
const (
	AxisCPU   Axis = "cpu"
	AxisShare Axis = "gpushare"
	AxisSpec  Axis = "gpuspec"
	AxisMulti Axis = "multigpu"
)

// Axes lists the axes.
func Axes() []Axis { return []Axis{AxisShare, AxisSpec, AxisCPU, AxisMulti} }

// DefaultLevels are the levels a sweep visits per axis, in the family's
// units (AxisLevel): sharing 20..100% of GPU demand, model-constrained
// 5..40% of GPU tasks, CPU-only cpu000..cpu300 (0..30% of tasks), multi-GPU
// 20..50% of GPU demand.
func DefaultLevels(a Axis) []float64 {
	switch a {
	case AxisShare:
		return []float64{0.2, 0.4, 0.6, 0.8, 1.0}
	case AxisSpec:
		return []float64{0.05, 0.1, 0.2, 0.3, 0.4}
	case AxisCPU:
		return []float64{0, 0.5, 1.0, 2.0, 3.0}
	case AxisMulti:
		return []float64{0.2, 0.3, 0.4, 0.5}
	}
	return nil
}

// ParseAxis checks an axis name.
func ParseAxis(s string) (Axis, error) {
	a := Axis(strings.TrimSpace(s))
	if !slices.Contains(Axes(), a) {
		return "", fmt.Errorf("unknown axis %q (known: %v)", s, Axes())
	}
	return a, nil
}

// levelRange is the valid range of an axis's level.
func levelRange(a Axis) (lo, hi float64) {
	if a == AxisCPU {
		return 0, 9.99 // cpu999: 99.9% of tasks CPU-only
	}
	return 0, 1
}

// CheckLevel checks a level of axis a (AxisLevel's units); its error
// speaks the family's units (gpushare40, cpu250), as --sweep takes them.
func CheckLevel(a Axis, level float64) error {
	lo, hi := levelRange(a)
	if math.IsNaN(level) || level < lo || level > hi {
		return fmt.Errorf("%s level %v: want %v..%v", a, level*100, lo*100, hi*100)
	}
	return nil
}

// MemberName is the family member's file-style name: gpushare40, cpu250.
func MemberName(a Axis, level float64) string {
	if a == AxisCPU {
		return fmt.Sprintf("cpu%03d", int(math.Round(level*100)))
	}
	return fmt.Sprintf("%s%d", a, int(math.Round(level*100)))
}

// AxisLevel measures tasks along a: the fraction of GPU demand in sharing
// tasks (gpushare), of GPU tasks with a model constraint (gpuspec), of GPU
// demand in multi-GPU tasks (multigpu), or ten times the fraction of tasks
// that are CPU-only (cpu: cpu250 = 2.5 = 25% of tasks).
func AxisLevel(a Axis, tasks []TaskSpec) float64 {
	var n, gpuTasks, cpuOnly, spec int
	var demand, share, multi int64
	for _, t := range tasks {
		n++
		d := t.GPUDemand()
		switch {
		case t.NumGPU == 0:
			cpuOnly++
			continue
		case t.NumGPU == 1 && t.GPUMilli < topology.MilliPerGPU:
			share += d
		case t.NumGPU > 1:
			multi += d
		}
		gpuTasks++
		demand += d
		if len(t.Models) > 0 {
			spec++
		}
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	switch a {
	case AxisCPU:
		return 10 * ratio(float64(cpuOnly), float64(n))
	case AxisShare:
		return ratio(float64(share), float64(demand))
	case AxisSpec:
		return ratio(float64(spec), float64(gpuTasks))
	case AxisMulti:
		return ratio(float64(multi), float64(demand))
	}
	return 0
}

// GenerateVariant is tasks moved along axis a to level (AxisLevel's units)
// by the family's rule (see Axis), drawing from seed; nodes tell which
// model constraints some node can host. The input is not modified.
func GenerateVariant(tasks []TaskSpec, nodes []NodeSpec, a Axis, level float64, seed uint64) ([]TaskSpec, error) {
	if _, err := ParseAxis(string(a)); err != nil {
		return nil, err
	}
	if err := CheckLevel(a, level); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc909))
	out := slices.Clone(tasks)
	for i := range out {
		out[i].Models = slices.Clone(out[i].Models)
	}
	switch a {
	case AxisCPU:
		return varyCPU(out, level/10, rng)
	case AxisShare:
		return varyShare(out, level, rng)
	case AxisSpec:
		return varySpec(out, nodes, level, rng)
	default:
		return varyMulti(out, level, rng)
	}
}

func isShare(t *TaskSpec) bool { return t.NumGPU == 1 && t.GPUMilli < topology.MilliPerGPU }

// indexes is the positions of the tasks of tasks that keep says, in a
// random order.
func indexes(tasks []TaskSpec, keep func(*TaskSpec) bool, rng *rand.Rand) []int {
	var idx []int
	for i := range tasks {
		if keep(&tasks[i]) {
			idx = append(idx, i)
		}
	}
	rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	return idx
}

// copyOf is a copy of a task drawn from pool, named after the k-th copy.
func copyOf(tasks []TaskSpec, pool []int, k int, rng *rand.Rand) TaskSpec {
	t := tasks[pool[rng.IntN(len(pool))]]
	t.Models = slices.Clone(t.Models)
	t.Name = fmt.Sprintf("%s-v%d", t.Name, k)
	return t
}

// varyCPU keeps the GPU tasks and drops or copies CPU-only tasks until they
// are frac of all tasks.
func varyCPU(tasks []TaskSpec, frac float64, rng *rand.Rand) ([]TaskSpec, error) {
	cpuIdx := indexes(tasks, func(t *TaskSpec) bool { return t.NumGPU == 0 }, rng)
	gpu := len(tasks) - len(cpuIdx)
	if gpu == 0 {
		return nil, fmt.Errorf("cpu: the pod list has no GPU task")
	}
	want := cpuOnlyWanted(gpu, frac)
	switch {
	case want < len(cpuIdx):
		drop := map[int]bool{}
		for _, i := range cpuIdx[want:] {
			drop[i] = true
		}
		out := tasks[:0]
		for i, t := range tasks {
			if !drop[i] {
				out = append(out, t)
			}
		}
		return out, nil
	case want > len(cpuIdx) && len(cpuIdx) == 0:
		return tasks, nil // nothing to copy: the variant stays at 0 (Missed)
	}
	pool := slices.Clone(cpuIdx)
	slices.Sort(pool)
	for k := range want - len(cpuIdx) {
		tasks = append(tasks, copyOf(tasks, pool, k, rng))
	}
	return tasks, nil
}

// cpuOnlyWanted is how many CPU-only tasks varyCPU keeps or makes beside
// gpu GPU tasks so that they are frac of all tasks.
func cpuOnlyWanted(gpu int, frac float64) int {
	return int(math.Round(frac * float64(gpu) / (1 - frac)))
}

// CheckVariantArrivals refuses, before it is generated, a variant whose
// runs would take more than MaxArrivals arrivals to reach target x
// capacity: only the cpu axis makes a pod list much longer for the same
// GPU demand (cpu999 of an openb list is 7 million tasks). The variant's
// own workload is checked again once generated (Workload.CheckArrivals).
func CheckVariantArrivals(tasks []TaskSpec, a Axis, level float64, capacity int64, target float64) error {
	if a != AxisCPU {
		return nil
	}
	gpu, cpuOnly := 0, 0
	var demand int64
	for _, t := range tasks {
		if t.NumGPU == 0 {
			cpuOnly++
			continue
		}
		gpu++
		demand += t.GPUDemand()
	}
	if gpu == 0 || demand == 0 || cpuOnly == 0 {
		return nil // GenerateVariant refuses it, or copies nothing
	}
	n := gpu + cpuOnlyWanted(gpu, level/10)
	if est := expectedArrivals(capacity, target, n, demand); est > MaxArrivals {
		return arrivalsError(capacity, target, fmt.Sprintf("about %.0f", est), gpu, n, demand)
	}
	return nil
}

// varyShare keeps the task count and the CPU-only tasks and replaces
// whole-GPU tasks by copies of sharing tasks (or the reverse, to go down)
// until sharing tasks carry frac of the GPU demand.
func varyShare(tasks []TaskSpec, frac float64, rng *rand.Rand) ([]TaskSpec, error) {
	var share, demand int64
	for i := range tasks {
		if isShare(&tasks[i]) {
			share += tasks[i].GPUDemand()
		}
		demand += tasks[i].GPUDemand()
	}
	shareIdx := indexes(tasks, isShare, rng)
	wholeIdx := indexes(tasks, func(t *TaskSpec) bool { return t.NumGPU > 0 && !isShare(t) }, rng)
	src := slices.Clone(tasks)
	up := float64(share) < frac*float64(demand)
	from, pool := wholeIdx, slices.Sorted(slices.Values(shareIdx))
	if !up {
		from, pool = shareIdx, slices.Sorted(slices.Values(wholeIdx))
	}
	done := func() bool {
		if up {
			return float64(share) >= frac*float64(demand)
		}
		return float64(share) <= frac*float64(demand)
	}
	for k, i := range from {
		if done() {
			break
		}
		if len(pool) == 0 {
			break // nothing to copy: the variant stays where it is (Missed)
		}
		old := tasks[i]
		t := copyOf(src, pool, k, rng)
		t.Name = old.Name
		demand += t.GPUDemand() - old.GPUDemand()
		if up {
			share += t.GPUDemand()
		} else {
			share -= old.GPUDemand()
		}
		tasks[i] = t
	}
	return tasks, nil
}

// varyMulti copies multi-GPU tasks (or drops them, to go down) until they
// carry frac of the GPU demand; other tasks are untouched.
func varyMulti(tasks []TaskSpec, frac float64, rng *rand.Rand) ([]TaskSpec, error) {
	var multi, demand int64
	for i := range tasks {
		if tasks[i].NumGPU > 1 {
			multi += tasks[i].GPUDemand()
		}
		demand += tasks[i].GPUDemand()
	}
	multiIdx := indexes(tasks, func(t *TaskSpec) bool { return t.NumGPU > 1 }, rng)
	if multi == demand && frac < 1 {
		// Every GPU task is multi-GPU: dropping them keeps the share at
		// 100% until none is left (a list with no GPU demand). The variant
		// stays at 100% (Missed).
		return tasks, nil
	}
	if float64(multi) >= frac*float64(demand) {
		drop := map[int]bool{}
		for _, i := range multiIdx {
			if float64(multi) <= frac*float64(demand) {
				break
			}
			drop[i] = true
			multi -= tasks[i].GPUDemand()
			demand -= tasks[i].GPUDemand()
		}
		out := tasks[:0]
		for i, t := range tasks {
			if !drop[i] {
				out = append(out, t)
			}
		}
		return out, nil
	}
	if len(multiIdx) == 0 {
		return tasks, nil // nothing to copy: the variant stays at 0 (Missed)
	}
	if frac >= 1 && multi < demand {
		return nil, fmt.Errorf("multigpu: %v%% of the GPU demand in multi-GPU tasks cannot be reached by adding them: the pod list has other GPU tasks", frac*100)
	}
	pool := slices.Sorted(slices.Values(multiIdx))
	for k := 0; float64(multi) < frac*float64(demand); k++ {
		t := copyOf(tasks, pool, k, rng)
		multi += t.GPUDemand()
		demand += t.GPUDemand()
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// publishedSpecs is the mix of model constraints of the published gpuspec
// members (gpuspec10 and gpuspec20 together, by count; duplicate models in
// a list merged). varySpec draws from the pod list's own constraints when
// it has some, from this mix otherwise.
var publishedSpecs = []struct {
	spec  string
	count int
}{
	{"T4", 1073}, {"G2", 333}, {"P100", 312}, {"V100M16|V100M32", 172},
	{"P100|V100M16|V100M32", 80}, {"G3", 68}, {"G2|P100|T4|V100M16|V100M32", 40},
	{"A10|G2|T4|V100M16|V100M32", 20}, {"V100M32", 19}, {"P100|T4|V100M16|V100M32", 19},
	{"P100|V100M16", 14}, {"V100M16", 10}, {"A10|T4", 10},
	{"A10|G2|P100|T4|V100M16|V100M32", 4}, {"T4|V100M16|V100M32", 1}, {"P100|T4", 1},
}

// varySpec constrains (or frees) GPU tasks at random until frac of them
// have a model constraint; a task gets a constraint drawn from the mix,
// among those that admit a node with as many GPUs as it asks.
func varySpec(tasks []TaskSpec, nodes []NodeSpec, frac float64, rng *rand.Rand) ([]TaskSpec, error) {
	type weighted struct {
		models []string
		count  int
	}
	var mix []weighted
	own := map[string]int{}
	for _, t := range tasks {
		if t.NumGPU > 0 && len(t.Models) > 0 {
			own[strings.Join(t.Models, "|")]++
		}
	}
	if len(own) > 0 {
		for s, n := range own {
			mix = append(mix, weighted{strings.Split(s, "|"), n})
		}
		slices.SortFunc(mix, func(a, b weighted) int {
			return cmp.Or(cmp.Compare(b.count, a.count), slices.Compare(a.models, b.models))
		})
	} else {
		for _, s := range publishedSpecs {
			mix = append(mix, weighted{strings.Split(s.spec, "|"), s.count})
		}
	}
	largest := map[string]int{} // model -> most GPUs on one node
	for _, n := range nodes {
		largest[n.Model] = max(largest[n.Model], n.GPUs)
	}
	draw := func(gpus int) []string {
		total := 0
		var fit []weighted
		for _, w := range mix {
			if slices.ContainsFunc(w.models, func(m string) bool { return largest[m] >= gpus }) {
				fit = append(fit, w)
				total += w.count
			}
		}
		if total == 0 {
			return nil
		}
		x := rng.IntN(total)
		for _, w := range fit {
			if x -= w.count; x < 0 {
				return slices.Clone(w.models)
			}
		}
		return nil
	}
	gpuTasks, constrained := 0, 0
	for _, t := range tasks {
		if t.NumGPU > 0 {
			gpuTasks++
			if len(t.Models) > 0 {
				constrained++
			}
		}
	}
	want := int(math.Round(frac * float64(gpuTasks)))
	if want <= constrained {
		for _, i := range indexes(tasks, func(t *TaskSpec) bool { return t.NumGPU > 0 && len(t.Models) > 0 }, rng) {
			if constrained == want {
				break
			}
			tasks[i].Models = nil
			constrained--
		}
		return tasks, nil
	}
	for _, i := range indexes(tasks, func(t *TaskSpec) bool { return t.NumGPU > 0 && len(t.Models) == 0 }, rng) {
		if constrained == want {
			break
		}
		if m := draw(tasks[i].NumGPU); m != nil {
			tasks[i].Models = m
			constrained++
		}
	}
	if constrained < want {
		return nil, fmt.Errorf("gpuspec: only %d of %d GPU tasks can be constrained to a model some node hosts", constrained, want)
	}
	return tasks, nil
}
