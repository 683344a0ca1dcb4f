package sim

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	bl "github.com/gpupack/gpupack/pkg/score/baseline"
)

// baselineScore is baseline policy name's score of class c on node i as the
// adapter computes it.
func baselineScore(t *testing.T, name string, r *run, i int, c *Class) int64 {
	t.Helper()
	pol, err := bl.New(name)
	require.NoError(t, err)
	var n bl.Node
	r.baselineNode(i, &n)
	task := baselineTask(c)
	return pol.Score(&n, &task)
}

// bestFitScore is best-fit's score of class c on node i.
func bestFitScore(r *run, i int, c *Class) int64 {
	var n bl.Node
	r.baselineNode(i, &n)
	task := baselineTask(c)
	return bl.BestFit{}.Score(&n, &task)
}

// Node 0: 8 T4 GPUs, 64 cores, 256 GiB; the classes below; scores computed
// by hand from the artifact's formulas, through the adapter's view of the
// run (pkg/score/baseline tests the same numbers on hand-built nodes).
func TestBaselineScores(t *testing.T) {
	nodes := "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,8,T4\n"
	pods := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" +
		"share,8000,16384,1,500,\n" + // class 0
		"one,16000,65536,1,1000,\n" + // class 1
		"cpu,32000,1024,0,0,\n" // class 2
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
	r := newRun(cl, wl, frag, 1)
	share, one, cpu := &wl.Classes[0], &wl.Classes[1], &wl.Classes[2]
	for _, c := range wl.Classes {
		task := baselineTask(&c)
		require.Equal(t, bl.Kinds(c.affinity), task.Kind(), "run.aff bits are baseline Kinds")
	}

	// Idle node.
	// dot-product, share: 1 - (64000/128000 x 8000/128000 + 8000/8000 x 500/8000)/2
	//   = 1 - (0.03125 + 0.0625)/2 = 0.953125 -> 95
	require.Equal(t, int64(95), baselineScore(t, PolicyDotProduct, r, 0, share))
	// gpu-packing, idle node: max(100/3 - 8, 8) = 25.
	require.Equal(t, int64(25), baselineScore(t, PolicyGPUPacking, r, 0, share))
	// gpu-clustering, idle node: 25 x (8000 - 8000)/8000 + 25 = 25.
	require.Equal(t, int64(25), baselineScore(t, PolicyGPUClustering, r, 0, share))
	// least-allocated, one: cpu (64000-16000)x100/64000 = 75, memory
	// (262144-65536)x100/262144 = 75, GPU (8000-1000)x100/8000 = 87 -> (75+75+87)/3 = 79.
	require.Equal(t, int64(79), baselineScore(t, PolicyLeastAllocated, r, 0, one))
	// most-allocated, one: 25, 25, 12 -> 62/3 = 20.
	require.Equal(t, int64(20), baselineScore(t, PolicyMostAllocated, r, 0, one))
	require.Equal(t, int64(0), baselineScore(t, PolicyGPUPacking, r, 0, cpu), "CPU-only tasks score 0")

	// Place the share on GPU 0: 500 left there.
	r.apply(0, share, placement{shareGPU: 0})
	// gpu-packing, share: uses GPU 0 (500 left, the least that fits):
	// 100 - (500x100/1000)/10 = 95.
	require.Equal(t, int64(95), baselineScore(t, PolicyGPUPacking, r, 0, share))
	// gpu-packing, one whole GPU: a free GPU of a used node: max(50 - 1, 33) = 49.
	require.Equal(t, int64(49), baselineScore(t, PolicyGPUPacking, r, 0, one))
	// gpu-clustering: 25 x (8000 - 7500)/8000 = 1 (integer), share-only node: 1 + 75 = 76;
	// for a 1-GPU task the node holds another kind only: 1.
	require.Equal(t, int64(76), baselineScore(t, PolicyGPUClustering, r, 0, share))
	require.Equal(t, int64(1), baselineScore(t, PolicyGPUClustering, r, 0, one))
	var idle bl.Node
	r.baselineNode(0, &idle)
	r.apply(0, one, placement{whole: bl.IdleGPUs(&idle, 1)})
	require.Equal(t, []int32{500, 0, 1000, 1000, 1000, 1000, 1000, 1000}, r.gpus(0))
	// Both kinds on the node now: 25 x (8000-6500)/8000 = 4, + 50.
	require.Equal(t, int64(54), baselineScore(t, PolicyGPUClustering, r, 0, share))
	// best-fit, share: 1 - (0.5 (40000-8000)/128000 + 0.5 (6500-500)/8000)
	//   = 1 - (0.125 + 0.375) = 0.5 -> 50.
	require.Equal(t, int64(50), bestFitScore(r, 0, share))
	var n bl.Node
	r.baselineNode(0, &n)
	require.Equal(t, 0, bl.BestFitGPU(&n, 500))
	require.Equal(t, 2, bl.BestFitGPU(&n, 600))
	require.Equal(t, 6, n.IdleGPUs)
	require.Equal(t, int64(6500), n.GPUFree)
}

// Four identical idle nodes and a run of 1-GPU tasks: GPU packing scores
// the first task 33 - 1 = 32 on every node (a tie), then 49 on the node it
// used (a free GPU of a used node: 50 - 1) against 32 elsewhere, so the
// run fills one node before the next. With the artifact's ties (TieFirst)
// the node taken first is the same for every CPU-only task too (all score
// 0), so those pile up there instead of spreading.
func TestBaselineTiesFollowOneOrder(t *testing.T) {
	nodes := "sn,cpu_milli,memory_mib,gpu,model\n" +
		"n0,8000,65536,1,T4\nn1,8000,65536,1,T4\nn2,8000,65536,1,T4\nn3,8000,65536,1,T4\n"
	pods := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\ncpu,2000,1,0,0,\n"
	ns, err := ReadNodes("nodes.csv", strings.NewReader(nodes))
	require.NoError(t, err)
	tasks, err := ReadTasks("pods.csv", strings.NewReader(pods+"g,1000,1,1,1000,\n"))
	require.NoError(t, err)
	cl, err := NewCluster(ns, DefaultShapes())
	require.NoError(t, err)
	wl, err := NewWorkload(tasks, cl)
	require.NoError(t, err)
	frag, err := NewFragModel(wl, 0)
	require.NoError(t, err)
	cfg := Config{Target: 1, Checkpoints: []float64{1}}
	for seed := range uint64(8) {
		// Four CPU-only tasks of 2 cores: TieFirst puts all on one node
		// (8 cores), whichever the order puts first.
		r := newRun(cl, wl, frag, seed)
		res := replay(context.Background(), r, baseline(PolicyGPUPacking), []int32{0, 0, 0, 0}, cfg, func(int64) {})
		require.Equal(t, 0, res.Failed)
		full := 0
		for i := range r.cpu {
			if r.cpu[i] == 0 {
				full++
			} else {
				require.Equal(t, int64(8000), r.cpu[i])
			}
		}
		require.Equal(t, 1, full, "seed %d: %v", seed, r.cpu)
		// First-fit draws the same order from the same seed: the CPU-only
		// tasks go where packing put them, and a 1-GPU task (1 core) then
		// goes to the next node of the order, the first one has no core left.
		r2 := newRun(cl, wl, frag, seed)
		res = replay(context.Background(), r2, baseline(PolicyFirstFit), []int32{0, 0, 0, 0, 1}, cfg, func(int64) {})
		require.Equal(t, 0, res.Failed)
		gpuNode := -1
		for i := range r2.cpu {
			switch {
			case r.cpu[i] == 0:
				require.Equal(t, int64(0), r2.cpu[i])
			case r2.cpu[i] == 7000:
				require.Equal(t, -1, gpuNode)
				gpuNode = i
			default:
				require.Equal(t, int64(8000), r2.cpu[i])
			}
		}
		require.NotEqual(t, -1, gpuNode)
		require.Equal(t, []int32{0}, r2.gpus(gpuNode))
	}
}

func TestBaselineRegistry(t *testing.T) {
	for _, name := range []string{PolicyRandom, PolicyFirstFit, PolicyDotProduct, PolicyGPUClustering,
		PolicyGPUPacking, PolicyBestFit, PolicyLeastAllocated, PolicyMostAllocated} {
		require.NotNil(t, baseline(name), name)
		require.Contains(t, AllPolicies(), name)
	}
	require.Nil(t, baseline("gpupack"))
	require.Nil(t, baseline("nope"))
}
