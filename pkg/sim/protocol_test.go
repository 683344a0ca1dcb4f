package sim

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// tinyCluster: n0 has 2 T4 GPUs, 8 cores, 16 GiB; n1 has 1 T4, 4 cores,
// 8 GiB. Capacity 3 GPUs = 3000 milli-GPU.
const tinyNodes = `sn,cpu_milli,memory_mib,gpu,model
n0,8000,16384,2,T4
n1,4000,8192,1,T4
`

func tinySetup(t *testing.T, pods string) (*Cluster, *Workload) {
	t.Helper()
	nodes, err := ReadNodes("nodes.csv", strings.NewReader(tinyNodes))
	require.NoError(t, err)
	tasks, err := ReadTasks("pods.csv", strings.NewReader(pods))
	require.NoError(t, err)
	cl, err := NewCluster(nodes, DefaultShapes())
	require.NoError(t, err)
	wl, err := NewWorkload(tasks, cl)
	require.NoError(t, err)
	return cl, wl
}

// Every task asks 600 milli of one GPU and 3 cores. Whatever the order and
// the policy, exactly 3 fit: n0 takes 2 (one per GPU, since 600+600 > 1000;
// 2 x 3000 <= 8000 milli-CPU) and n1 takes 1 (4000 milli-CPU). Allocated:
// 3 x 600 = 1800 of 3000 = 60%.
//
// Arrivals until the demand reaches 130% of 3000 = 3900: 600 per task, so
// 7 tasks (7 x 600 = 4200 >= 3900; 6 x 600 = 3600 < 3900), 4 of which fail.
// Checkpoint 50% (1500) is crossed by task 3 (1800 arrived): 1800/3000 =
// 60%; 100% (3000) by task 5 (3000 arrived): 60%; 130% by task 7: 60%.
// Unallocated: 3 - 1.8 = 1.2 GPUs.
func TestProtocolTinyTraceEveryPolicy(t *testing.T) {
	pods := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" +
		"a,3000,1024,1,600,\nb,3000,1024,1,600,T4\n"
	cl, wl := tinySetup(t, pods)
	require.Equal(t, int64(3000), cl.TotalMilli)
	res, err := Run(context.Background(), Config{
		Cluster: cl, Workload: wl, Policies: AllPolicies(), Seeds: []uint64{1, 2, 3},
		Target: 1.3, Checkpoints: []float64{0.5, 1.0, 1.3}, Workers: 2,
	})
	require.NoError(t, err)
	require.Len(t, res, len(AllPolicies())*3)
	for _, r := range res {
		require.Equal(t, 7, r.Tasks, r.Policy)
		require.Equal(t, 4, r.Failed, r.Policy)
		require.InDelta(t, 2.4, r.FailedGPU, 1e-9, r.Policy) // 4 x 0.6
		require.InDeltaSlice(t, []float64{0.6, 0.6, 0.6}, r.Alloc, 1e-9, r.Policy)
		require.InDelta(t, 1.2, r.Unallocated, 1e-9, r.Policy)
		require.Len(t, r.Curve, 131) // 0%, 1%, ..., 130%
		require.InDelta(t, 0.6, r.Curve[130], 1e-9)
	}
}

// A fixed sequence under best-fit, computed by hand. Cluster as above but
// n1 has only 2 cores here.
//
//	task      demand  arrived  best-fit placement                   allocated
//	A 1 GPU   1000    1000     n1 (score 99 vs n0's 87, below)      1000
//	B 500m    500     1500     n0 GPU 0 (n1 has no GPU left)        1500
//	C CPU 4c  0       1500     n0 (n1 has 1 core left)              1500
//	D 2 GPUs  2000    3500     fails: n0 has 1 free GPU, n1 none    1500
//	B 500m    500     4000     n0 GPU 0 (500 left: best fit)        2000
//
// best-fit score = trunc(100 (1 - 0.5 (cpuFree-cpu)/128000 - 0.5 (gpuFree-gpu)/8000)):
// A on n0: 1 - 0.5*15000/128000 - 0.5*1000/8000 = 0.8789 -> 87;
// A on n1: 1 - 0.5*1000/128000 - 0 = 0.9961 -> 99.
// Checkpoints (capacity 3000): 50% = 1500 crossed at B (1500/3000 = 0.5);
// 100% = 3000 crossed at D (1500/3000 = 0.5); 130% = 3900 crossed at the
// last B (2000/3000 = 0.6667).
func TestReplayFixedSequenceBestFit(t *testing.T) {
	nodes := "sn,cpu_milli,memory_mib,gpu,model\nn0,16000,65536,2,T4\nn1,2000,65536,1,T4\n"
	pods := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" +
		"A,1000,1,1,1000,\nB,1000,1,1,500,\nC,4000,1,0,0,\nD,1000,1,2,1000,\n"
	ns, err := ReadNodes("nodes.csv", strings.NewReader(nodes))
	require.NoError(t, err)
	tasks, err := ReadTasks("pods.csv", strings.NewReader(pods))
	require.NoError(t, err)
	cl, err := NewCluster(ns, DefaultShapes())
	require.NoError(t, err)
	wl, err := NewWorkload(tasks, cl)
	require.NoError(t, err)
	frag, err := NewFragModel(wl, 0)
	require.NoError(t, err)

	r := newRun(cl, wl, frag, 7)
	require.Equal(t, int64(87), bestFitScore(r, 0, &wl.Classes[0]))
	require.Equal(t, int64(99), bestFitScore(r, 1, &wl.Classes[0]))

	cfg := Config{Target: 1.3, Checkpoints: []float64{0.5, 1.0, 1.3}}
	res := replay(context.Background(), r, baseline(PolicyBestFit), []int32{0, 1, 2, 3, 1}, cfg, func(int64) {})
	require.Equal(t, 1, res.Failed)
	require.InDeltaSlice(t, []float64{0.5, 0.5, 2.0 / 3}, res.Alloc, 1e-9)
	require.InDelta(t, 1.0, res.Unallocated, 1e-9)                     // 3 - 2 GPUs
	require.Equal(t, []int32{0, 1000}, r.gpus(0))                      // B twice on GPU 0: 1000 - 2 x 500
	require.Equal(t, []int32{0}, r.gpus(1))                            // A
	require.Equal(t, []int64{16000 - 1000 - 4000 - 1000, 1000}, r.cpu) // n0: B, C, B; n1: A
}

func TestSequence(t *testing.T) {
	// Demands 1000, 500, 0 (sum 1500) on a 1000-milli cluster with target
	// 1.3: the shuffled list reaches 1500 >= 1300 only with all three tasks,
	// unless the order puts 1000+500 first (1500 >= 1300 before the 0).
	w := &Workload{Classes: []Class{{NumGPU: 1, GPUMilli: 1000}, {NumGPU: 1, GPUMilli: 500}, {}}, Tasks: []int32{0, 1, 2}, Demand: 1500}
	for seed := range uint64(20) {
		seq, err := w.Sequence(1000, 1.3, seed)
		require.NoError(t, err)
		var d int64
		for i, c := range seq {
			require.Less(t, d, int64(1300), "seed %d: task %d arrived after the target", seed, i)
			d += w.Classes[c].Demand()
		}
		require.GreaterOrEqual(t, d, int64(1300))
		again, err := w.Sequence(1000, 1.3, seed)
		require.NoError(t, err)
		require.Equal(t, seq, again, "same seed, same sequence")
	}
	// Resampling: a target of 4 needs 4000 milli, more than one pass.
	seq, err := w.Sequence(1000, 4, 3)
	require.NoError(t, err)
	require.Greater(t, len(seq), 3)
	require.ElementsMatch(t, []int32{0, 1, 2}, seq[:3], "the pod list comes first, shuffled")
}

func TestBuildNodeShapes(t *testing.T) {
	dgx, err := BuildNode("V100M16", 8, ShapeDGX1)
	require.NoError(t, err)
	// NVLink 2 is 25 GB/s a lane.
	require.Equal(t, 50.0, dgx.Bandwidth(0, 3)) // 2 lanes
	require.Equal(t, 25.0, dgx.Bandwidth(2, 6)) // 1 lane
	require.Equal(t, 6.0, dgx.Bandwidth(1, 7))  // no NVLink, across sockets: SYS
	require.Equal(t, 1000, dgx.GPUs[5].Replicas)

	pcie, err := BuildNode("T4", 4, ShapePCIe)
	require.NoError(t, err)
	require.Equal(t, 16.0, pcie.Bandwidth(0, 1)) // PIX
	require.Equal(t, 6.0, pcie.Bandwidth(1, 2))  // SYS: GPUs 0-1 on socket 0, 2-3 on socket 1

	pairs, err := BuildNode("G2", 8, ShapeNVLinkPairs)
	require.NoError(t, err)
	require.Equal(t, 100.0, pairs.Bandwidth(4, 5)) // 4 NVLink 3 lanes
	require.Equal(t, 10.0, pairs.Bandwidth(0, 3))  // NODE
	require.Equal(t, 6.0, pairs.Bandwidth(0, 4))   // SYS

	sw, err := BuildNode("G3", 8, ShapeNVSwitch)
	require.NoError(t, err)
	require.Equal(t, 300.0, sw.Bandwidth(1, 6)) // 12 lanes x 25

	_, err = BuildNode("V100M16", 16, ShapeDGX1)
	require.Error(t, err)
	_, err = ParseShapes("G2=mesh")
	require.ErrorContains(t, err, `unknown kind "mesh"`)
	_, err = ParseShapes("H|100=pcie")
	require.ErrorContains(t, err, `GPU model "H|100": contains one of`)
	other, err := ParseShapes("H100=nvswitch") // a model of other machines
	require.NoError(t, err)
	require.Equal(t, ShapeNVSwitch, other["H100"])
	s, err := ParseShapes("G2=nvswitch")
	require.NoError(t, err)
	require.Equal(t, ShapeNVSwitch, s["G2"])
	require.Equal(t, ShapeDGX1, s["V100M32"])
	// A model given twice: the last one won, silently.
	_, err = ParseShapes("H100=pcie,H100=dgx1")
	require.ErrorContains(t, err, `shape "H100=dgx1": model H100 given twice`)
}

// An override naming no model of the node list changes nothing: the CLI
// warns, with the model it differs from only in case.
func TestUnusedShapes(t *testing.T) {
	nodes := []NodeSpec{{Name: "a", Model: "V100M32", GPUs: 8}, {Name: "b", Model: "G2", GPUs: 8}, {Name: "c", Model: "CPU", GPUs: 0}}
	for _, tc := range []struct {
		spec         string
		unused, near []string
	}{
		{"", nil, nil},
		{"G2=nvswitch", nil, nil},
		{"V100m32=nvswitch", []string{"V100m32"}, []string{"V100M32"}},
		{"H100=nvswitch,G2=pcie", []string{"H100"}, []string{""}},
		{"CPU=pcie", []string{"CPU"}, []string{""}}, // a CPU-only node has no GPU to lay out
	} {
		unused, near := UnusedShapes(tc.spec, nodes)
		require.Equal(t, tc.unused, unused, tc.spec)
		require.Equal(t, tc.near, near, tc.spec)
	}
}

// pkg/score must take whole GPUs on GPUs time-shared in 1000 replicas when
// every replica is free, and never one with a replica used.
func TestScoreWholeGPUOnReplicatedGPUs(t *testing.T) {
	node, err := BuildNode("T4", 2, ShapePCIe)
	require.NoError(t, err)
	s := score.NewState(node)
	c, ok := score.Choose(s, score.Request{Kind: score.KindWhole, Count: 2}, nil)
	require.True(t, ok, "2 whole GPUs on an empty 2-GPU node")
	require.Equal(t, topology.SetOf(0, 1), c.GPUs)
	s.Apply(score.Choice{Kind: score.KindShared, GPUs: topology.SetOf(1), Shares: []score.Share{{GPU: 1, Replicas: 1}}})
	_, ok = score.Choose(s, score.Request{Kind: score.KindWhole, Count: 2}, nil)
	require.False(t, ok, "GPU 1 has a replica in use")
	c, ok = score.Choose(s, score.Request{Kind: score.KindWhole, Count: 1}, nil)
	require.True(t, ok)
	require.Equal(t, topology.SetOf(0), c.GPUs)
	c, ok = score.Choose(s, score.Request{Kind: score.KindShared, Count: 999}, nil)
	require.True(t, ok, "999 replicas fit beside the one in use")
	require.Equal(t, topology.SetOf(1), c.GPUs, "the share packs onto the used GPU")
}

// A node short of CPU for a task type counts all its free GPUs as fragment
// for it (FGD's "lack CPU" case): pkg/score does it, the State knowing the
// node's free CPU.
func TestFragModelCPUAware(t *testing.T) {
	pods := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" +
		"a,2000,1,1,1000,\nb,6000,1,1,1000,\n"
	cl, wl := tinySetup(t, pods)
	m, err := NewFragModel(wl, 0)
	require.NoError(t, err)
	s := score.NewState(cl.Topo[1]) // n1: one free T4
	at := func(cpu int64) float64 {
		s.SetFree(cpu, 1<<20)
		return score.Fragmentation(s, m.Base())
	}
	// 8 cores free: both tasks fit, a free GPU is no fragment.
	require.InDelta(t, 0, at(8000), 1e-9)
	// 4 cores free: b (half the 1-GPU tasks) cannot run: 0.5 x 1 GPU.
	require.InDelta(t, 0.5, at(4000), 1e-9)
	// 1 core free: nothing runs: the whole GPU is fragment.
	require.InDelta(t, 1, at(1000), 1e-9)
	// 5 cores: as 4 (b's 6 cores are a bucket of their own).
	require.InDelta(t, 0.5, at(5000), 1e-9)
}

func TestReports(t *testing.T) {
	res := []RunResult{
		{Policy: "x", Seed: 1, Tasks: 3, Alloc: []float64{0.5, 0.9}, Frag: []float64{0.1, 0.2}, Curve: []float64{0, 0.5, 0.9}, Unallocated: 1},
		{Policy: "x", Seed: 2, Tasks: 3, Alloc: []float64{0.7, 0.9}, Frag: []float64{0.3, 0.2}, Curve: []float64{0, 0.7, 0.9}, Unallocated: 3},
		{Policy: "y", Seed: 1, Tasks: 3, Alloc: []float64{0.1, 0.2}, Frag: []float64{0, 0}, Curve: []float64{0, 0.1, 0.2}},
	}
	sums := Summarize(res)
	require.Len(t, sums, 2)
	require.InDeltaSlice(t, []float64{0.6, 0.9}, sums[0].Alloc, 1e-9) // (0.5+0.7)/2
	require.InDelta(t, 0.141421356, sums[0].AllocSD[0], 1e-6)         // sqrt(2 x 0.1^2 / 1)
	require.InDelta(t, 2, sums[0].Unallocated, 1e-9)
	var b bytes.Buffer
	require.NoError(t, WriteTable(&b, sums, []float64{1, 1.3}, 1.3))
	require.Contains(t, b.String(), "60.00 ± 14.14")
	require.Contains(t, b.String(), "frag %@100%") // the first checkpoint
	require.Contains(t, b.String(), "20.0 ± 14.1") // (10+30)/2 %, sd sqrt(2 x 10^2)
	b.Reset()
	require.NoError(t, WriteCSV(&b, res, []float64{1, 1.3}))
	require.Equal(t, "policy,seed,tasks,failed,failed_gpus,alloc_100,alloc_130,unallocated_gpus,frag_100,frag_130,idle_gpus_no_cpu,multi_gpu_tasks,multi_gpu_quality",
		strings.SplitN(b.String(), "\n", 2)[0])
	b.Reset()
	require.NoError(t, WriteSVG(&b, sums, "t <&>", 0))
	svg := b.String()
	require.Contains(t, svg, "<svg ")
	require.Contains(t, svg, "t &lt;&amp;&gt;")
	// The legend lists policies by final allocation, highest first: x
	// (0.9) before y (0.2), even when y comes first in the run.
	require.Less(t, strings.Index(svg, ">x 90.00%<"), strings.Index(svg, ">y 20.00%<"))
	b.Reset()
	require.NoError(t, WriteSVG(&b, []Summary{sums[1], sums[0]}, "t", 0))
	svg = b.String()
	require.Greater(t, strings.Index(svg, ">y 20.00%<"), strings.Index(svg, ">x 90.00%<"))
	// The y axis is labelled at its start: the lowest band value, 0, floored.
	require.Contains(t, svg, ">0%<")
}

// gpupack counts a free GPU on a node short of CPU as fragment (FGD), so a
// CPU-only task goes where its CPU strands no GPU.
//
// n0: 1 GPU, 4 cores; n1: 1 GPU, 10 cores. The GPU task type X needs 8
// cores. The CPU-only task Y (4 cores) arrives first:
//
//	Y on n0: n0 cannot run X before (4 < 8 cores) nor after: F 1 -> 1, change 0
//	Y on n1: n1 runs X before (10 cores), not after (6 < 8): F 0 -> 1, change +1
//
// so gpupack puts Y on n0 and X then fits on n1: 1000 of 2000 milli-GPU
// allocated, no failure. LeastAllocated puts Y on n1 (more CPU left:
// (10-4)/10 = 60% vs 0%), after which X fits nowhere.
func TestGPUPackCPUAware(t *testing.T) {
	nodes := "sn,cpu_milli,memory_mib,gpu,model\nn0,4000,65536,1,T4\nn1,10000,65536,1,T4\n"
	pods := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\nX,8000,1,1,1000,\nY,4000,1,0,0,\n"
	ns, err := ReadNodes("nodes.csv", strings.NewReader(nodes))
	require.NoError(t, err)
	tasks, err := ReadTasks("pods.csv", strings.NewReader(pods))
	require.NoError(t, err)
	cl, err := NewCluster(ns, DefaultShapes())
	require.NoError(t, err)
	wl, err := NewWorkload(tasks, cl)
	require.NoError(t, err)
	frag, err := NewFragModel(wl, 0)
	require.NoError(t, err)
	cfg := Config{Target: 0.5, Checkpoints: []float64{0.5}}
	seq := []int32{1, 0} // Y, X
	for seed := range uint64(5) {
		r := newRun(cl, wl, frag, seed)
		res := replay(context.Background(), r, newGPUPack(frag, GPUPackOptions{}).newRun(), seq, cfg, func(int64) {})
		require.Equal(t, 0, res.Failed)
		require.InDeltaSlice(t, []float64{0.5}, res.Alloc, 1e-9)
		require.Equal(t, []int64{0, 2000}, r.cpu) // n0: 4 - 4 cores; n1: 10 - 8

		r = newRun(cl, wl, frag, seed)
		res = replay(context.Background(), r, baseline(PolicyLeastAllocated), seq, cfg, func(int64) {})
		require.Equal(t, 1, res.Failed)
		require.InDeltaSlice(t, []float64{0}, res.Alloc, 1e-9)
	}
}

// Node lists of other machines name other GPU models: any well-formed name
// is read; NewCluster needs a shape for each (ErrNoShape, MissingShapes
// names them), and tasks constrained to models no node has are counted by
// UnhostableTasks and fail.
//
// Cluster: h0, h1 have 16 H100 each (nvswitch), b0 has 8 B200 (pcie):
// capacity 40 GPUs = 40000 milli. Tasks, one row each: an 8-GPU task
// constrained to H100, a 16-GPU one (any model), a 1-GPU one constrained
// to A100 (no such node). Each run keeps arriving until 130% of 40000 =
// 52000 milli-GPU; the A100 tasks always fail.
func TestOtherMachineModels(t *testing.T) {
	nodes, err := ReadNodes("nodes.csv", strings.NewReader("sn,cpu_milli,memory_mib,gpu,model\n"+
		"h0,224000,2097152,16,H100\nh1,224000,2097152,16,H100\nb0,112000,1048576,8,B200\n"))
	require.NoError(t, err)
	tasks, err := ReadTasks("pods.csv", strings.NewReader("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"+
		"p8,16000,65536,8,1000,H100\np16,32000,131072,16,1000,\npa,1000,1024,1,1000,A100\n"))
	require.NoError(t, err)

	_, err = NewCluster(nodes, DefaultShapes())
	require.ErrorIs(t, err, ErrNoShape)
	require.ErrorContains(t, err, `GPU model "H100"`)
	require.Equal(t, []string{"B200", "H100"}, MissingShapes(nodes, DefaultShapes()))

	shapes, err := ParseShapes("H100=nvswitch,B200=pcie")
	require.NoError(t, err)
	require.Empty(t, MissingShapes(nodes, shapes))
	cl, err := NewCluster(nodes, shapes)
	require.NoError(t, err)
	require.Equal(t, int64(40000), cl.TotalMilli)
	require.Equal(t, 300.0, cl.Topo[0].Bandwidth(0, 15), "16 GPUs behind one NVSwitch")

	n, models := UnhostableTasks(tasks, cl)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"A100"}, models)

	wl, err := NewWorkload(tasks, cl)
	require.NoError(t, err)
	res, err := Run(context.Background(), Config{
		Cluster: cl, Workload: wl, Policies: []string{"gpupack", "fgd", "best-fit"}, Seeds: []uint64{1, 2},
		Target: 1.3, Checkpoints: []float64{1.3}, Workers: 2,
	})
	require.NoError(t, err)
	require.Len(t, res, 3*2)
	for _, r := range res {
		k := r.Alloc[0] * 40 / 8
		require.InDelta(t, math.Round(k), k, 1e-9, "%s: whole 8-GPU halves", r.Policy)
		require.GreaterOrEqual(t, r.Alloc[0], 0.4-1e-9, r.Policy)
		require.LessOrEqual(t, r.Alloc[0], 0.8+1e-9, r.Policy)
	}
}

// Run refuses what it cannot measure, before any replay, with an error
// naming the value: numbers that are none, bounds, duplicates.
func TestRunRefusesBadConfig(t *testing.T) {
	cl, wl := tinySetup(t, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,1000,1024,1,500,\n")
	good := func() Config {
		return Config{Cluster: cl, Workload: wl, Policies: []string{PolicyGPUPack, PolicyBestFit}, Seeds: []uint64{1},
			Target: 1.3, Checkpoints: []float64{0.9, 1.3}}
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"target 0", func(c *Config) { c.Target = 0 }, "target 0: want"},
		{"negative target", func(c *Config) { c.Target = -1 }, "target -1: want"},
		{"target NaN", func(c *Config) { c.Target = math.NaN() }, "target NaN: want"},
		{"target +Inf", func(c *Config) { c.Target = math.Inf(1) }, "target +Inf: want"},
		{"target above MaxTarget", func(c *Config) { c.Target, c.Checkpoints = 1e12, []float64{1} }, "target 1e+12: want a fraction of the GPU capacity in (0, 10]"},
		{"checkpoint NaN", func(c *Config) { c.Checkpoints = []float64{math.NaN()} }, "must increase within"},
		{"checkpoint past the target", func(c *Config) { c.Checkpoints = []float64{0.9, 2} }, "must increase within (0, target 1.3]"},
		{"checkpoints unsorted", func(c *Config) { c.Checkpoints = []float64{1.3, 0.9} }, "must increase"},
		{"checkpoints duplicated", func(c *Config) { c.Checkpoints = []float64{0.9, 0.9} }, "must increase"},
		// 90% and 90.0000001%: one column name (to 4 decimals of a percent).
		{"checkpoints that share a column", func(c *Config) { c.Checkpoints = []float64{0.9, 0.900000001, 1.3} }, "both 90% to 4 decimals"},
		{"no checkpoint", func(c *Config) { c.Checkpoints = nil }, "need at least one checkpoint"},
		{"no seed", func(c *Config) { c.Seeds = nil }, "need at least one policy and one seed"},
		{"too many seeds", func(c *Config) { c.Seeds = make([]uint64, MaxSeeds+1) }, "1001 seeds: at most 1000"},
		{"policy twice", func(c *Config) { c.Policies = []string{PolicyBestFit, PolicyGPUPack, PolicyBestFit} }, `policy "best-fit" listed twice`},
		{"unknown policy", func(c *Config) { c.Policies = []string{"BEST-FIT"} }, `unknown policy "BEST-FIT"`},
		{"negative workers", func(c *Config) { c.Workers = -3 }, "workers -3"},
		{"resolution NaN", func(c *Config) { c.GPUPack.Resolution = math.NaN() }, "gpupack resolution NaN"},
		{"resolution Inf", func(c *Config) { c.GPUPack.Resolution = math.Inf(1) }, "gpupack resolution +Inf"},
		{"negative weight", func(c *Config) { c.GPUPack.FragWeight = -1 }, "gpupack fragmentation weight -1: want 0..100"},
		{"weight above the plugin's bound", func(c *Config) { c.GPUPack.TopoWeight = 101 }, "gpupack topology weight 101: want 0..100"},
		{"weight NaN", func(c *Config) { c.GPUPack.TopoWeight = math.NaN() }, "gpupack topology weight NaN"},
		// The plugin's args are integers: 1.5 was rounded to 2 unnoticed.
		{"fractional fragmentation weight", func(c *Config) { c.GPUPack.FragWeight = 1.5 }, "gpupack fragmentation weight 1.5: want a whole number 0..100 (the plugin's args are integers)"},
		{"fractional topology weight", func(c *Config) { c.GPUPack.TopoWeight = 0.4 }, "gpupack topology weight 0.4: want a whole number"},
		{"negative max types", func(c *Config) { c.GPUPack.MaxTypes = -4 }, "gpupack max types -4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.edit(&cfg)
			_, err := Run(context.Background(), cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}
	// The bounds themselves run: target 10 (MaxTarget) with a checkpoint
	// there; every task past the capacity fails.
	cfg := good()
	cfg.Target, cfg.Checkpoints = MaxTarget, []float64{1, MaxTarget}
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	for _, r := range res {
		// 500 milli per task on 3 GPUs of 8 cores: n0 holds 4 shares (2 GPUs x
		// 2, 4 x 1000 milli-CPU <= 8000), n1 2: 6 x 500 = 3000 = 100%.
		require.InDelta(t, 1.0, r.Alloc[1], 1e-9, r.Policy)
		// 10 x 3000 / 500 = 60 tasks arrive, 54 fail.
		require.Equal(t, 60, r.Tasks, r.Policy)
		require.Equal(t, 54, r.Failed, r.Policy)
	}
}
