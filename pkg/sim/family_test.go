package sim

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// familyTrace: 1000 tasks, 400 shares of 500m (4 cores), 400 1-GPU (8
// cores), 50 4-GPU (16 cores), 150 CPU-only (2 cores). GPU demand:
// 400 x 500 + 400 x 1000 + 50 x 4000 = 800000 milli: sharing 25%, multi-GPU
// 25%; CPU-only 15% of tasks (cpu150); no model constraint.
func familyTrace() []TaskSpec {
	var ts []TaskSpec
	add := func(n int, cpu int64, gpus int, milli int64) {
		for range n {
			ts = append(ts, TaskSpec{Name: fmt.Sprintf("t%d", len(ts)), CPUMilli: cpu, MemoryMiB: 1024, NumGPU: gpus, GPUMilli: milli})
		}
	}
	add(400, 4000, 1, 500)
	add(400, 8000, 1, 1000)
	add(50, 16000, 4, 1000)
	add(150, 2000, 0, 0)
	return ts
}

func familyNodes() []NodeSpec {
	return []NodeSpec{
		{Name: "a", CPUMilli: 64000, MemoryMiB: 262144, GPUs: 2, Model: "T4"},
		{Name: "b", CPUMilli: 96000, MemoryMiB: 393216, GPUs: 8, Model: "G2"},
		{Name: "c", CPUMilli: 64000, MemoryMiB: 262144, GPUs: 4, Model: "V100M32"},
	}
}

func TestAxisLevelOfFamilyTrace(t *testing.T) {
	ts := familyTrace()
	require.InDelta(t, 0.25, AxisLevel(AxisShare, ts), 1e-12) // 200000/800000
	require.InDelta(t, 0.25, AxisLevel(AxisMulti, ts), 1e-12) // 200000/800000
	require.InDelta(t, 1.5, AxisLevel(AxisCPU, ts), 1e-12)    // 10 x 150/1000
	require.Zero(t, AxisLevel(AxisSpec, ts))
	require.Equal(t, "cpu050", MemberName(AxisCPU, 0.5))
	require.Equal(t, "gpushare40", MemberName(AxisShare, 0.4))
}

// Every level of every axis: the variant's level is the target within one
// task's worth, the input is untouched, and what the rule keeps is kept.
func TestGenerateVariantHitsTarget(t *testing.T) {
	src := familyTrace()
	orig := slices.Clone(src)
	nodes := familyNodes()
	gpuRows := func(ts []TaskSpec, keep func(*TaskSpec) bool) []TaskSpec {
		var out []TaskSpec
		for i := range ts {
			if keep(&ts[i]) {
				out = append(out, ts[i])
			}
		}
		return out
	}
	for _, a := range Axes() {
		levels := append(DefaultLevels(a), 0.1) // and one below the source
		if a == AxisCPU {
			levels = append(levels, 1.5) // the source's own level
		}
		for _, level := range levels {
			t.Run(MemberName(a, level), func(t *testing.T) {
				out, err := GenerateVariant(src, nodes, a, level, 7)
				require.NoError(t, err)
				require.Equal(t, orig, src, "the input is not modified")
				got := AxisLevel(a, out)
				switch a {
				case AxisShare:
					// One task moves at most 4000 of ~800000 milli: 0.5%.
					require.InDelta(t, level, got, 0.006)
					require.Len(t, out, len(src), "gpushare keeps the task count")
					require.Equal(t, gpuRows(src, func(t *TaskSpec) bool { return t.NumGPU == 0 }),
						gpuRows(out, func(t *TaskSpec) bool { return t.NumGPU == 0 }), "and the CPU-only tasks")
				case AxisMulti:
					require.InDelta(t, level, got, 0.006)
					notMulti := func(t *TaskSpec) bool { return t.NumGPU <= 1 }
					require.Equal(t, gpuRows(src, notMulti), gpuRows(out, notMulti), "multigpu keeps the other tasks")
				case AxisCPU:
					// 850 GPU tasks: one CPU-only task is ~0.1% of tasks, 0.01 in cpu units.
					require.InDelta(t, level, got, 0.01)
					gpu := func(t *TaskSpec) bool { return t.NumGPU > 0 }
					require.Equal(t, gpuRows(src, gpu), gpuRows(out, gpu), "cpu keeps the GPU tasks")
				case AxisSpec:
					// 850 GPU tasks: exactly round(level x 850) constrained.
					require.InDelta(t, level, got, 0.5/850+1e-12)
					require.Len(t, out, len(src))
					for i := range out {
						o := out[i]
						o.Models = nil
						require.Equal(t, src[i], o, "gpuspec changes constraints only")
						if len(out[i].Models) > 0 && out[i].NumGPU == 4 {
							require.NotEqual(t, []string{"T4"}, out[i].Models, "no node hosts 4 T4 GPUs")
						}
						if out[i].NumGPU == 0 {
							require.Empty(t, out[i].Models)
						}
					}
				}
			})
		}
	}
}

func TestGenerateVariantSeeded(t *testing.T) {
	src, nodes := familyTrace(), familyNodes()
	for _, a := range Axes() {
		level := DefaultLevels(a)[1]
		x, err := GenerateVariant(src, nodes, a, level, 1)
		require.NoError(t, err)
		y, err := GenerateVariant(src, nodes, a, level, 1)
		require.NoError(t, err)
		require.Equal(t, x, y, "%s: same seed, same variant", a)
		z, err := GenerateVariant(src, nodes, a, level, 2)
		require.NoError(t, err)
		require.NotEqual(t, x, z, "%s: another seed, another variant", a)
	}
}

func TestGenerateVariantErrors(t *testing.T) {
	src, nodes := familyTrace(), familyNodes()
	_, err := GenerateVariant(src, nodes, "gpufoo", 0.5, 1)
	require.ErrorContains(t, err, "unknown axis")
	_, err = GenerateVariant(src, nodes, AxisShare, 1.5, 1)
	require.ErrorContains(t, err, "gpushare level 150: want 0..100") // in the family's units
	_, err = GenerateVariant(src, nodes, AxisCPU, 10, 1)
	require.ErrorContains(t, err, "cpu level 1000: want 0..999") // cpu1000 would be 100% CPU-only
	_, err = GenerateVariant(src, nodes, AxisMulti, math.NaN(), 1)
	require.ErrorContains(t, err, "multigpu level NaN")
	_, err = GenerateVariant(src, nodes, AxisCPU, -1, 1)
	require.Error(t, err)
	_, err = GenerateVariant([]TaskSpec{{Name: "c", CPUMilli: 1}}, nodes, AxisCPU, 1, 1)
	require.ErrorContains(t, err, "no GPU task")
	// 16-GPU tasks: no node hosts them, no constraint admits them.
	big := []TaskSpec{{Name: "b", CPUMilli: 1, NumGPU: 16, GPUMilli: 1000}}
	_, err = GenerateVariant(big, nodes, AxisSpec, 1, 1)
	require.ErrorContains(t, err, "can be constrained")
	// cpu000 drops every CPU-only task.
	out, err := GenerateVariant(src, nodes, AxisCPU, 0, 1)
	require.NoError(t, err)
	require.Len(t, out, 850)
}

// A pod list without the tasks a family's rule copies (a training-only or
// inference-only trace) gives that family's variants unchanged: the sweep
// runs them at their measured level and warns (SweepPoint.Missed), as for
// any level a list cannot reach, instead of failing the whole sweep.
func TestGenerateVariantWithNothingToCopy(t *testing.T) {
	nodes := familyNodes()
	onlyWhole := []TaskSpec{{Name: "a", CPUMilli: 1, NumGPU: 1, GPUMilli: 1000}, {Name: "b", CPUMilli: 1, NumGPU: 1, GPUMilli: 1000}}
	onlyShares := []TaskSpec{{Name: "s", CPUMilli: 1, NumGPU: 1, GPUMilli: 500}}
	// Training-only lists: every GPU task multi-GPU, so dropping them keeps
	// 100% until none is left (the variant had no GPU demand, and the
	// sweep failed as a whole).
	onlyMulti := []TaskSpec{{Name: "m", CPUMilli: 1, NumGPU: 4, GPUMilli: 1000}}
	multiAndCPU := []TaskSpec{{Name: "m", CPUMilli: 1, NumGPU: 2, GPUMilli: 1000}, {Name: "m8", CPUMilli: 1, NumGPU: 8, GPUMilli: 1000}, {Name: "c", CPUMilli: 1}}
	for _, tc := range []struct {
		name  string
		tasks []TaskSpec
		axis  Axis
		level float64
		want  float64 // the variant's AxisLevel
	}{
		{"no sharing task to copy", onlyWhole, AxisShare, 0.5, 0},
		{"no multi-GPU task to copy", onlyWhole, AxisMulti, 0.5, 0},
		{"no CPU-only task to copy", onlyWhole, AxisCPU, 5, 0}, // half the tasks CPU-only
		{"no whole-GPU task to copy", onlyShares, AxisShare, 0.2, 1},
		{"only multi-GPU tasks, multigpu20", onlyMulti, AxisMulti, 0.2, 1},
		{"only multi-GPU tasks, multigpu99", onlyMulti, AxisMulti, 0.99, 1},
		{"multi-GPU and CPU-only tasks, multigpu50", multiAndCPU, AxisMulti, 0.5, 1},
		{"multi-GPU and CPU-only tasks, multigpu0", multiAndCPU, AxisMulti, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := GenerateVariant(tc.tasks, nodes, tc.axis, tc.level, 1)
			require.NoError(t, err)
			require.Equal(t, tc.tasks, out, "unchanged")
			require.InDelta(t, tc.want, AxisLevel(tc.axis, out), 1e-9)
			p := SweepPoint{Axis: tc.axis, Level: tc.level, Measured: AxisLevel(tc.axis, out)}
			require.True(t, p.Missed(), "the sweep warns: %s is %s", p.Member(), MemberName(tc.axis, p.Measured))
		})
	}
}

// The published members, regenerated from the default trace by the rule:
// the task count and the GPU demand of each member come out within 1.5%
// (the published files are one draw, ours another).
func TestGenerateVariantMatchesPublishedMembers(t *testing.T) {
	nodesPath := filepath.Join(openbDir, "openb_node_list_gpu_node.csv")
	if _, err := os.Stat(nodesPath); err != nil {
		t.Skipf("openb traces not found at %s", openbDir)
	}
	nodes, err := ReadNodesFile(nodesPath)
	require.NoError(t, err)
	def, err := ReadTasksFile(filepath.Join(openbDir, "openb_pod_list_default.csv"))
	require.NoError(t, err)
	demand := func(ts []TaskSpec) (d int64) {
		for _, t := range ts {
			d += t.GPUDemand()
		}
		return d
	}
	for _, m := range []struct {
		a     Axis
		level float64
	}{{AxisCPU, 0.5}, {AxisCPU, 1.0}, {AxisCPU, 2.5}, {AxisShare, 0.4}, {AxisShare, 0.6}, {AxisShare, 0.8},
		{AxisSpec, 0.1}, {AxisSpec, 0.2}, {AxisMulti, 0.2}, {AxisMulti, 0.3}} {
		name := MemberName(m.a, m.level)
		t.Run(name, func(t *testing.T) {
			pub, err := ReadTasksFile(filepath.Join(openbDir, "openb_pod_list_"+name+".csv"))
			require.NoError(t, err)
			gen, err := GenerateVariant(def, nodes, m.a, m.level, 42)
			require.NoError(t, err)
			require.InEpsilon(t, len(pub), len(gen), 0.015, "tasks")
			require.InEpsilon(t, demand(pub), demand(gen), 0.015, "GPU demand")
			require.InDelta(t, AxisLevel(m.a, pub), AxisLevel(m.a, gen), 0.01*max(1, m.level), "level")
		})
	}
}

// A cpu variant whose runs would pass MaxArrivals is refused before it is
// generated, with the error the generated variant's workload would give;
// the estimate counts the tasks GenerateVariant makes. familyTrace: 850
// GPU tasks, 800,000 milli-GPU of demand, 150 CPU-only tasks; capacity
// 100,000 GPUs, target 1.3: arrivals = 1.3 x 1e8 x n / 8e5 = 162.5 n.
func TestCheckVariantArrivals(t *testing.T) {
	const capacity, target = 100_000 * 1000, 1.3
	for _, tc := range []struct {
		level   float64
		tasks   int // 850 + round(f x 850 / (1 - f)), f = level/10
		refused bool
	}{
		{0, 850, false},      // 162.5 x 850 = 138,125
		{5, 1700, false},     // 162.5 x 1,700 = 276,250
		{8, 4250, false},     // 162.5 x 4,250 = 690,625
		{9, 8500, true},      // 162.5 x 8,500 = 1,381,250 > 1,048,576
		{9.99, 850000, true}, // 850 + 849,150: 138 million
	} {
		t.Run(MemberName(AxisCPU, tc.level), func(t *testing.T) {
			err := CheckVariantArrivals(familyTrace(), AxisCPU, tc.level, capacity, target)
			if !tc.refused {
				require.NoError(t, err)
				gen, err := GenerateVariant(familyTrace(), nil, AxisCPU, tc.level, 1)
				require.NoError(t, err)
				require.Len(t, gen, tc.tasks)
				return
			}
			require.ErrorIs(t, err, ErrTooManyArrivals)
			require.Contains(t, err.Error(), fmt.Sprintf("about %.0f arrivals", 162.5*float64(tc.tasks)))
			require.Contains(t, err.Error(), fmt.Sprintf("850 of the pod list's %d tasks", tc.tasks))
		})
	}
	// Other axes keep the task count about the same: never refused here.
	for _, a := range []Axis{AxisShare, AxisSpec, AxisMulti} {
		require.NoError(t, CheckVariantArrivals(familyTrace(), a, 1, capacity, target))
	}
}
