package sim

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
)

// gpupack-online starts from the plugin's default prior and learns the
// task types it places, as the plugin's Reserve does: after the tiny trace
// (every task 600 milli of one GPU, 3 cores, 1 GiB; 3 of 7 placed), the
// distribution holds shared:600m with its CPU and memory bucketed (3000
// milli, 1024 MiB stay) beside the prior's types. The pinned run never
// moves from the pod list's.
func TestOnlineLearnsPlacedTasks(t *testing.T) {
	cl, wl := tinySetup(t, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,3000,1024,1,600,\n")
	frag, err := NewFragModel(wl, 0)
	require.NoError(t, err)
	gp := newGPUPack(frag, GPUPackOptions{})
	on, err := gp.newOnlineRun()
	require.NoError(t, err)
	require.Equal(t, score.DefaultDistribution().Types, on.dist().Types, "the default prior before any pod")
	r := newRun(cl, wl, frag, 1)
	placed := 0
	seq, err := wl.Sequence(cl.TotalMilli, 1.3, 1)
	require.NoError(t, err)
	for _, ci := range seq {
		node, p := on.place(r, ci)
		if node < 0 {
			continue
		}
		on.placed(r, ci, node, p)
		r.apply(node, &wl.Classes[ci], p)
		placed++
	}
	require.Equal(t, 3, placed)
	learned := score.TaskType{Kind: score.KindShared, Milli: 600, CPUMilli: 3000, MemoryMiB: 1024}
	require.Contains(t, on.online.Distribution().Types, learned)
	pinned := gp.newRun()
	require.Same(t, frag.Base(), pinned.dist())
}

// IdleNoCPU counts whole GPUs left idle on nodes whose free CPU or memory
// holds no GPU task class. Every task takes 1 GPU and 6 cores: n0 (2 T4, 8
// cores) takes one and keeps 1 idle GPU with 2 cores; n1 (1 T4, 4 cores)
// never fits one. 2 idle GPUs without CPU, whatever the policy; 1 of the
// 4 arrivals (4 x 1000 >= 3900) is placed.
func TestIdleNoCPU(t *testing.T) {
	cl, wl := tinySetup(t, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,6000,1024,1,1000,\n")
	res, err := Run(t.Context(), Config{Cluster: cl, Workload: wl, Policies: AllPolicies(), Seeds: []uint64{1},
		Target: 1.3, Checkpoints: []float64{1.3}})
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, 3, r.Failed, r.Policy)
		require.Equal(t, 2, r.IdleNoCPU, r.Policy)
	}
}
