package sim

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Node 0: 8 T4 GPUs, 64 cores, 256 GiB; the classes below; scores computed
// by hand from the artifact's formulas.
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

	// Idle node.
	// dot-product, share: 1 - (64000/128000 x 8000/128000 + 8000/8000 x 500/8000)/2
	//   = 1 - (0.03125 + 0.0625)/2 = 0.953125 -> 95
	require.Equal(t, int64(95), dotProductScore(r, 0, share))
	// gpu-packing, idle node: max(100/3 - 8, 8) = 25.
	require.Equal(t, int64(25), gpuPackingScore(r, 0, share))
	// gpu-clustering, idle node: 25 x (8000 - 8000)/8000 + 25 = 25.
	require.Equal(t, int64(25), gpuClusteringScore(r, 0, share))
	// least-allocated, one: cpu (64000-16000)x100/64000 = 75, memory
	// (262144-65536)x100/262144 = 75, GPU (8000-1000)x100/8000 = 87 -> (75+75+87)/3 = 79.
	require.Equal(t, int64(79), leastAllocatedScore(r, 0, one))
	// most-allocated, one: 25, 25, 12 -> 62/3 = 20.
	require.Equal(t, int64(20), mostAllocatedScore(r, 0, one))
	require.Equal(t, int64(0), gpuPackingScore(r, 0, cpu), "CPU-only tasks score 0")

	// Place the share on GPU 0: 500 left there.
	r.apply(0, share, placement{shareGPU: 0})
	// gpu-packing, share: uses GPU 0 (500 left, the least that fits):
	// 100 - (500x100/1000)/10 = 95.
	require.Equal(t, int64(95), gpuPackingScore(r, 0, share))
	// gpu-packing, one whole GPU: a free GPU of a used node: max(50 - 1, 33) = 49.
	require.Equal(t, int64(49), gpuPackingScore(r, 0, one))
	// gpu-clustering: 25 x (8000 - 7500)/8000 = 1 (integer), share-only node: 1 + 75 = 76;
	// for a 1-GPU task the node holds another kind only: 1.
	require.Equal(t, int64(76), gpuClusteringScore(r, 0, share))
	require.Equal(t, int64(1), gpuClusteringScore(r, 0, one))
	r.apply(0, one, placement{whole: r.firstFree(0, 1)})
	require.Equal(t, []int32{500, 0, 1000, 1000, 1000, 1000, 1000, 1000}, r.gpus(0))
	// Both kinds on the node now: 25 x (8000-6500)/8000 = 4, + 50.
	require.Equal(t, int64(54), gpuClusteringScore(r, 0, share))
	// best-fit, share: 1 - (0.5 (40000-8000)/128000 + 0.5 (6500-500)/8000)
	//   = 1 - (0.125 + 0.375) = 0.5 -> 50.
	require.Equal(t, int64(50), bestFitScore(r, 0, share))
	require.Equal(t, 0, r.bestFitGPU(0, 500))
	require.Equal(t, 2, r.bestFitGPU(0, 600))
}
