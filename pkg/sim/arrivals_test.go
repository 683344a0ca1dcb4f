package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// podList is a pod list of a GPU task of milli of one GPU and cpuOnly
// CPU-only tasks.
func podList(milli, cpuOnly int) string {
	var b strings.Builder
	b.WriteString("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n")
	fmt.Fprintf(&b, "g,1000,1024,1,%d,\n", milli)
	for i := range cpuOnly {
		fmt.Fprintf(&b, "c%d,1000,1024,0,0,\n", i)
	}
	return b.String()
}

// A pod list whose GPU demand per task is tiny beside the cluster takes
// millions or billions of arrivals to reach the target: the run is refused
// before any sequence is made, saying why and what to change, instead of
// allocating the sequences (one 1-milli task among 1,000 CPU-only tasks on
// the openb nodes asked for 32 GB and died) or replaying for minutes.
func TestRunRefusesTooManyArrivals(t *testing.T) {
	openbNodes, err := os.ReadFile(filepath.Join(openbDir, "openb_node_list_gpu_node.csv"))
	require.NoError(t, err)
	tests := []struct {
		name  string
		nodes string
		pods  string
		want  string
	}{
		// 1.3 x 6,212,000 milli x 1,001 tasks / 1 milli of demand.
		{"openb nodes, a 1-milli task and 1000 CPU-only tasks", string(openbNodes), podList(1, 1000), "about 8083675600 arrivals"},
		{"openb nodes, a 1-milli task", string(openbNodes), podList(1, 0), "about 8075600 arrivals"},
		// 1.3 x 3,000 milli x 300 tasks = 1,170,000 > 2^20.
		{"tiny cluster, a 1-milli task and 299 CPU-only tasks", tinyNodes, podList(1, 299), "about 1170000 arrivals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, err := ReadNodes("nodes.csv", strings.NewReader(tt.nodes))
			require.NoError(t, err)
			tasks, err := ReadTasks("pods.csv", strings.NewReader(tt.pods))
			require.NoError(t, err)
			cl, err := NewCluster(nodes, DefaultShapes())
			require.NoError(t, err)
			wl, err := NewWorkload(tasks, cl)
			require.NoError(t, err)
			_, err = Run(context.Background(), Config{Cluster: cl, Workload: wl, Policies: []string{PolicyBestFit},
				Seeds: []uint64{1}, Target: 1.3, Checkpoints: []float64{1.3}})
			require.ErrorContains(t, err, "the pod list's GPU demand is too small for the cluster")
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "more than the bound of 1048576")
			require.ErrorContains(t, err, "use a pod list with more or larger GPU tasks, a node list with fewer GPUs, or a lower target")
		})
	}
}

// Just below the bound the run goes ahead: 1.3 x 3,000 milli x 268 tasks =
// 1,045,200 <= 2^20 (a sequence that happens to run past the bound is
// refused by Sequence, below).
func TestRunAcceptsArrivalsUpToTheBound(t *testing.T) {
	cl, wl := tinySetup(t, podList(1, 267))
	require.NoError(t, wl.CheckArrivals(cl.TotalMilli, 1.3))
	require.Error(t, wl.CheckArrivals(cl.TotalMilli, 1.4)) // 1,125,600
}

// Sequence never builds a sequence past MaxArrivals, whatever its caller
// checked: the workload here claims a demand its tasks do not have, so
// CheckArrivals' estimate is far off.
func TestSequenceStopsAtMaxArrivals(t *testing.T) {
	w := &Workload{Classes: []Class{{NumGPU: 1, GPUMilli: 1}}, Tasks: []int32{0}, Demand: 1000}
	require.NoError(t, w.CheckArrivals(2*MaxArrivals, 1))
	seq, err := w.Sequence(2*MaxArrivals, 1, 1)
	require.ErrorContains(t, err, "takes more than 1048576 arrivals")
	require.Nil(t, seq)
}

// Every openb trace is far below the bound, even at MaxTarget: the bound
// refuses only pod lists that do not fit the cluster.
func TestOpenbTracesFarBelowMaxArrivals(t *testing.T) {
	nodes, err := ReadNodesFile(filepath.Join(openbDir, "openb_node_list_gpu_node.csv"))
	require.NoError(t, err)
	cl, err := NewCluster(nodes, DefaultShapes())
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(openbDir, "openb_pod_list_*.csv"))
	require.NoError(t, err)
	require.Len(t, files, 11)
	for _, f := range files {
		tasks, err := ReadTasksFile(f)
		require.NoError(t, err)
		wl, err := NewWorkload(tasks, cl)
		require.NoError(t, err)
		require.Less(t, wl.Arrivals(cl.TotalMilli, 1.3), 15000.0, f)
		require.Less(t, wl.Arrivals(cl.TotalMilli, MaxTarget), MaxArrivals/8.0, f)
	}
}

// A sweep checks each variant before replaying any: cpu999 of a list with
// one 1-milli task needs 999 CPU-only tasks per GPU task (1.3 x 3,000 x
// 1,000 = 3,900,000 arrivals).
func TestSweepRefusesVariantWithTooManyArrivals(t *testing.T) {
	pods := podList(1, 1)
	cl, wl := tinySetup(t, pods)
	tasks, err := ReadTasks("pods.csv", strings.NewReader(pods))
	require.NoError(t, err)
	nodes, err := ReadNodes("nodes.csv", strings.NewReader(tinyNodes))
	require.NoError(t, err)
	replayed := false
	_, err = Sweep(context.Background(), SweepConfig{
		Base: Config{Cluster: cl, Workload: wl, Policies: []string{PolicyBestFit}, Seeds: []uint64{1},
			Target: 1.3, Checkpoints: []float64{1.3}, Progress: func(int64, int64) { replayed = true }},
		Tasks: tasks, Nodes: nodes,
		Axes: []SweepAxis{{Axis: AxisCPU, Levels: []float64{0, 9.99}}},
	})
	require.ErrorContains(t, err, "cpu999: the pod list's GPU demand is too small for the cluster")
	require.False(t, replayed, "no variant replayed")
}
