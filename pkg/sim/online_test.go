package sim

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
)

// gpupack-online starts from the plugin's default prior and learns the
// task types it places, as the plugin's Reserve does. Every task of the
// tiny trace asks 100 milli of one GPU, 1 core and 1 GiB; the cluster's 12
// cores (n0 8, n1 4) hold 12 of them (the GPUs would hold 30), out of 39
// arrivals (39 x 100 >= 1.3 x 3000). The learned type enters the snapshot
// when it moves the blend by score.DefaultMaxLag (0.05) in total variation,
// before DefaultSnapshotInterval (100) pods have passed: after k of them
// against the prior's weight 100 the distance is k/(100+k) (decay over 12
// observations at half-life 1000 is under 1%), 5/105 = 0.048 < 0.05 and
// 6/106 = 0.057, so the snapshot holds it from the 6th placed task on, and
// with its CPU and memory bucketed (1000 milli and 1024 MiB stay). The
// pinned run never moves from the pod list's.
func TestOnlineLearnsPlacedTasks(t *testing.T) {
	cl, wl := tinySetup(t, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,1000,1024,1,100,\n")
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
	require.Len(t, seq, 39)
	learned := score.TaskType{Kind: score.KindShared, Milli: 100, CPUMilli: 1000, MemoryMiB: 1024}
	for _, ci := range seq {
		node, p := on.place(r, ci)
		if node < 0 {
			continue
		}
		on.placed(r, ci, node, p)
		r.apply(node, &wl.Classes[ci], p)
		placed++
		require.Equal(t, placed >= 6, slices.Contains(on.online.Distribution().Types, learned), "after %d placed", placed)
	}
	require.Equal(t, 12, placed)
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
