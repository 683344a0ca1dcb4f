package sim

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sweepFixture: two axes, two levels each, three policies with two seeds.
func sweepFixture() []SweepPoint {
	sum := func(p string, a, b float64) Summary {
		m := (a + b) / 2
		return Summary{Policy: p, Seeds: 2, Alloc: []float64{m}, AllocSD: []float64{0.01}, AllocMin: []float64{min(a, b)}, AllocMax: []float64{max(a, b)}}
	}
	pt := func(ax Axis, level float64, g, f, b float64) SweepPoint {
		return SweepPoint{Axis: ax, Level: level, Measured: level, Tasks: 100,
			Sums: []Summary{sum(PolicyGPUPack, g-0.005, g+0.005), sum(PolicyFGD, f-0.005, f+0.005), sum(PolicyBestFit, b-0.01, b+0.01)}}
	}
	return []SweepPoint{
		pt(AxisShare, 0.4, 0.94, 0.93, 0.92), pt(AxisShare, 0.8, 0.87, 0.89, 0.87),
		pt(AxisCPU, 0.5, 0.95, 0.95, 0.93), pt(AxisCPU, 2.5, 0.92, 0.93, 0.91),
	}
}

func TestSweepReports(t *testing.T) {
	points := sweepFixture()
	var b bytes.Buffer
	require.NoError(t, WriteSweepTable(&b, points))
	out := b.String()
	// gpushare40: 94.00 - 93.00 = +1.00 over fgd; gpushare80: 87 - 89 = -2.00, marked.
	require.Contains(t, out, "gpupack-fgd")
	require.Contains(t, out, "+1.00")
	require.Contains(t, out, "-2.00 <")
	require.Contains(t, out, "cpu250")
	b.Reset()
	require.NoError(t, WriteSweepCSV(&b, points))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 1+4*3) // header + 4 points x 3 policies
	require.True(t, strings.HasPrefix(lines[1], "gpushare,gpushare40,0.400000,0.400000,100,gpupack,2,0.940000"))
	b.Reset()
	require.NoError(t, WriteSweepSVG(&b, points, "t"))
	svg := b.String()
	require.Contains(t, svg, "<svg")
	// Legend by mean over the points: gpupack (0.94+0.87+0.95+0.92)/4 = 0.92,
	// fgd (0.93+0.89+0.95+0.93)/4 = 0.925 first.
	require.Less(t, strings.Index(svg, ">fgd (mean) 92.50%<"), strings.Index(svg, ">gpupack (mean) 92.00%<"))
}

// A tiny sweep end to end: the variants are generated, replayed, and the
// points carry the measured level.
func TestSweepTiny(t *testing.T) {
	cl, _ := tinySetup(t, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,1000,1024,1,500,\n")
	tasks := []TaskSpec{
		{Name: "s", CPUMilli: 1000, MemoryMiB: 1024, NumGPU: 1, GPUMilli: 500},
		{Name: "w", CPUMilli: 1000, MemoryMiB: 1024, NumGPU: 1, GPUMilli: 1000},
		{Name: "c", CPUMilli: 1000, MemoryMiB: 1024},
	}
	points, err := Sweep(context.Background(), SweepConfig{
		Base:  Config{Cluster: cl, Policies: []string{PolicyFGD, PolicyBestFit}, Seeds: []uint64{1}, Target: 1.3, Checkpoints: []float64{1.3}},
		Tasks: tasks, Axes: []SweepAxis{{Axis: AxisShare, Levels: []float64{1}}, {Axis: AxisCPU, Levels: []float64{0}}},
	})
	require.NoError(t, err)
	require.Len(t, points, 2)
	require.Equal(t, "gpushare100", points[0].Member())
	require.InDelta(t, 1.0, points[0].Measured, 1e-12) // the whole task became a share
	require.InDelta(t, 0.0, points[1].Measured, 1e-12) // the CPU-only task dropped
	require.Equal(t, 2, points[1].Tasks)
	require.Len(t, points[0].Sums, 2)
	base := Config{Cluster: cl, Policies: []string{PolicyBestFit}, Seeds: []uint64{1}, Target: 1.3, Checkpoints: []float64{1.3}}
	// No multi-GPU task to copy: multigpu50 runs as it is (0%), flagged
	// for the warning, and the sweep goes on.
	points, err = Sweep(context.Background(), SweepConfig{Base: base, Tasks: tasks,
		Axes: []SweepAxis{{Axis: AxisMulti, Levels: []float64{0.5}}}})
	require.NoError(t, err)
	require.Len(t, points, 1)
	require.Equal(t, "multigpu50", points[0].Member())
	require.InDelta(t, 0.0, points[0].Measured, 1e-12)
	require.True(t, points[0].Missed())
	// The base configuration is checked before any variant is generated.
	_, err = Sweep(context.Background(), SweepConfig{Base: Config{Cluster: cl}, Tasks: tasks,
		Axes: []SweepAxis{{Axis: AxisMulti, Levels: []float64{0.5}}}})
	require.ErrorContains(t, err, "target 0")
	// A level that is no number is refused by name, not as "multigpu-9223372036854775808".
	_, err = Sweep(context.Background(), SweepConfig{Base: base, Tasks: tasks,
		Axes: []SweepAxis{{Axis: AxisMulti, Levels: []float64{math.NaN()}}}})
	require.ErrorContains(t, err, "multigpu level NaN")
}

// A variant the pod list cannot reach is flagged as missed: three
// multi-GPU tasks of 2, 4 and 8 GPUs and one 1-GPU task carry 14 of 15
// GPUs of demand (93%); going down to 20% drops them (8: 6/7 = 86%, 4: 2/3
// = 67%, 2: 0%), and the variant has 0%, not multigpu20.
func TestSweepMissedLevel(t *testing.T) {
	cl, _ := tinySetup(t, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,1000,1024,1,500,\n")
	tasks := []TaskSpec{
		{Name: "one", CPUMilli: 1000, MemoryMiB: 1024, NumGPU: 1, GPUMilli: 1000},
		{Name: "two", CPUMilli: 1000, MemoryMiB: 1024, NumGPU: 2, GPUMilli: 1000},
		{Name: "four", CPUMilli: 1000, MemoryMiB: 1024, NumGPU: 4, GPUMilli: 1000},
		{Name: "eight", CPUMilli: 1000, MemoryMiB: 1024, NumGPU: 8, GPUMilli: 1000},
	}
	points, err := Sweep(context.Background(), SweepConfig{
		Base:  Config{Cluster: cl, Policies: []string{PolicyBestFit}, Seeds: []uint64{1}, Target: 1.3, Checkpoints: []float64{1.3}},
		Tasks: tasks, Axes: []SweepAxis{{Axis: AxisMulti, Levels: []float64{0.2}}, {Axis: AxisCPU, Levels: []float64{0}}},
	})
	require.NoError(t, err)
	require.Len(t, points, 2)
	require.InDelta(t, 0.0, points[0].Measured, 1e-12)
	require.True(t, points[0].Missed(), "multigpu20 measured at 0%")
	require.InDelta(t, 0.0, points[1].Measured, 1e-12)
	require.False(t, points[1].Missed(), "cpu000 is the list itself")
}
