package baseline

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// TypicalPod is one task type of the FGD artifact's target workload (its
// TargetPod): CPU, per-GPU share, GPU count and allowed models, no memory
// (the artifact's PodResource has none), with its popularity Freq.
type TypicalPod struct {
	CPUMilli int64
	// GPUMilli is the per-GPU share (0 for a CPU-only pod).
	GPUMilli int64
	NumGPU   int
	// Spec is the allowed GPU models joined by "|" ("" any).
	Spec string
	// Freq is the popularity, the typical pods' Freq sum to 1.
	Freq float64
}

// PodCount is how many pods of the pod list have one TypicalPod's
// resources.
type PodCount struct {
	Pod   TypicalPod // Freq ignored
	Count int
}

// TypicalConfig is the artifact's TypicalPodsConfig. The FGD experiments
// of the artifact (scripts/generate_config_and_run.py defaults) run with
// DefaultTypicalConfig.
type TypicalConfig struct {
	// CPUPods counts CPU-only pods in the workload (isInvolvedCpuPods).
	CPUPods bool
	// Popularity is the percentage of the pods the most popular types must
	// cover (podPopularityThreshold).
	Popularity int
	// Step is how many types are added at a time (podIncreaseStep).
	Step int
}

// DefaultTypicalConfig is the configuration of the artifact's FGD runs:
// CPU-only pods included, the most popular types covering 95% of the pods,
// added one at a time.
var DefaultTypicalConfig = TypicalConfig{CPUPods: true, Popularity: 95, Step: 1}

// TypicalPods is the artifact's GetTypicalPods over a pod list given as
// counts per type: the types sorted by decreasing count (ties: by
// decreasing CPU, share, GPU count, spec), the most popular kept until they
// cover cfg.Popularity percent of the pods, their Freq renormalized to sum
// to 1. The pod list is the trace's (not the resampled arrivals): the
// artifact takes it before it tunes the workload to the target demand.
func TypicalPods(counts []PodCount, cfg TypicalConfig) ([]TypicalPod, error) {
	if cfg.Popularity <= 0 || cfg.Popularity > 100 {
		return nil, fmt.Errorf("popularity threshold %d: want 1..100", cfg.Popularity)
	}
	step := max(cfg.Step, 1)
	merged := map[TypicalPod]int{}
	var total float64
	for _, c := range counts {
		if c.Count < 0 {
			return nil, fmt.Errorf("pod type %+v: negative count %d", c.Pod, c.Count)
		}
		if !cfg.CPUPods && c.Pod.NumGPU == 0 {
			continue
		}
		p := c.Pod
		p.Freq = 0
		merged[p] += c.Count
		total += float64(c.Count)
	}
	if total == 0 {
		return nil, fmt.Errorf("no pods to learn the typical pods from")
	}
	list := make([]TypicalPod, 0, len(merged))
	for p, n := range merged {
		p.Freq = float64(n)
		list = append(list, p)
	}
	// The artifact's order: sort.Reverse of (count, then resources) ascending.
	slices.SortFunc(list, func(a, b TypicalPod) int {
		return -cmp.Or(cmp.Compare(a.Freq, b.Freq), cmp.Compare(a.CPUMilli, b.CPUMilli),
			cmp.Compare(a.GPUMilli, b.GPUMilli), cmp.Compare(a.NumGPU, b.NumGPU), strings.Compare(a.Spec, b.Spec))
	})
	expected := float64(cfg.Popularity) * total / 100.0
	var cum float64
	i, upto := 0, 0
	for cum < expected && i < len(list) {
		upto += step
		for ; i < upto && i < len(list); i++ {
			cum += list[i].Freq
			list[i].Freq /= total
		}
	}
	if i >= len(list) {
		return list, nil
	}
	out := list[:i]
	for j := range out {
		out[j].Freq /= cum / total
	}
	return out, nil
}

// Fragment classes of the artifact (utils.FragRatioDataMap), in its order:
// the node's free GPU share is split between them per typical pod.
const (
	fragLackBoth  = iota // q1: neither GPUs nor CPU suffice
	fragLackGPU          // q2: the GPUs do not suffice (or the part of them a pod cannot use)
	fragSatisfied        // q3: the pod fits; the only class not counted as fragment
	fragLackCPU          // q4: the GPUs would do, the CPU does not
	fragCPUFits          // xl: a CPU-only pod, its CPU fits
	fragCPULacks         // xr: a CPU-only pod, its CPU does not fit
	fragNoAccess         // the node's model is not allowed to the pod
	fragClasses
)

// Accessible reports whether a pod with allowed models spec may run on a
// node of model (the artifact's IsNodeAccessibleToPodByType): an empty spec
// allows any model, a node without model no GPU pod.
func Accessible(model, spec string) bool {
	if spec == "" {
		return true
	}
	if model == "" {
		return false
	}
	named := false
	for m := range strings.SplitSeq(spec, "|") {
		if m == "" {
			continue
		}
		named = true
		if m == model {
			return true
		}
	}
	return !named
}

// hosts reports whether gpus hold num GPUs with milli free each (the
// artifact's CanNodeHostPodOnGpuMemory).
func hosts(gpus []int32, milli int64, num int) bool {
	for _, g := range gpus {
		if int64(g) >= milli {
			num--
			if num <= 0 {
				return true
			}
		}
	}
	return false
}

// FragAmount is the FGD paper's fragmentation of a node in milli-GPU: the
// node's free GPU share that the typical pods, weighted by popularity,
// cannot use (the artifact's NodeGpuShareFragAmountScore). For each typical
// pod m of popularity p:
//
//   - m fits (model allowed, enough GPUs with m's share free, CPU left):
//     p x (free share of the GPUs with less than m's share free);
//   - otherwise (a CPU-only pod included): p x (all free GPU share).
//
// cpuFree is the node's free milli-CPU, gpus its free share per GPU,
// access[k] whether typical pod k may use the node's model. The sum is
// taken class by class in the artifact's order, so rounding agrees with it.
func FragAmount(pods []TypicalPod, access []bool, cpuFree int64, gpus []int32) float64 {
	var free int64
	for _, g := range gpus {
		free += int64(g)
	}
	var data [fragClasses]float64
	for k := range pods {
		p := &pods[k]
		cls := fragSatisfied
		cpuOK := cpuFree >= p.CPUMilli
		switch {
		case p.GPUMilli == 0 && cpuOK:
			cls = fragCPUFits
		case p.GPUMilli == 0:
			cls = fragCPULacks
		case !access[k]:
			cls = fragNoAccess
		default:
			switch h := hosts(gpus, p.GPUMilli, p.NumGPU); {
			case h && !cpuOK:
				cls = fragLackCPU
			case !h && cpuOK:
				cls = fragLackGPU
			case !h:
				cls = fragLackBoth
			}
		}
		if cls != fragSatisfied {
			data[cls] += p.Freq * float64(free)
			continue
		}
		var unusable int64
		for _, g := range gpus {
			if int64(g) < p.GPUMilli {
				unusable += int64(g)
			}
		}
		data[fragLackGPU] += p.Freq * float64(unusable)
		data[fragSatisfied] += p.Freq * float64(free-unusable)
	}
	var sum float64
	for c, v := range data {
		if c != fragSatisfied {
			sum += v
		}
	}
	return sum
}
