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
	for _, ci := range wl.Sequence(cl.TotalMilli, 1.3, 1) {
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
