package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	_ "gonum.org/v1/plot/vg/vgimg" // registers "png"
)

// TestChartPNG renders the allocation chart of the default trace (3 seeds,
// every default policy) as PNG to look at it: set GPUSIM_CHART_PNG to the
// output file.
func TestChartPNG(t *testing.T) {
	out := os.Getenv("GPUSIM_CHART_PNG")
	if out == "" {
		t.Skip("set GPUSIM_CHART_PNG to render a chart")
	}
	nodes, err := ReadNodesFile(filepath.Join(openbDir, "openb_node_list_gpu_node.csv"))
	require.NoError(t, err)
	tasks, err := ReadTasksFile(filepath.Join(openbDir, "openb_pod_list_default.csv"))
	require.NoError(t, err)
	cl, err := NewCluster(nodes, DefaultShapes())
	require.NoError(t, err)
	wl, err := NewWorkload(tasks, cl)
	require.NoError(t, err)
	res, err := Run(context.Background(), Config{Cluster: cl, Workload: wl, Policies: Policies(),
		Seeds: []uint64{42, 43, 44}, Target: 1.3, Checkpoints: []float64{1.3}})
	require.NoError(t, err)
	chartFormat = "png"
	defer func() { chartFormat = "svg" }()
	f, err := os.Create(out)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, WriteSVG(f, Summarize(res), "default, 3 seeds", 0.5))
}

// TestSweepChartPNG renders a sweep chart of made-up points as PNG: set
// GPUSIM_SWEEP_PNG to the output file.
func TestSweepChartPNG(t *testing.T) {
	out := os.Getenv("GPUSIM_SWEEP_PNG")
	if out == "" {
		t.Skip("set GPUSIM_SWEEP_PNG to render a chart")
	}
	points := sweepFixture()
	chartFormat = "png"
	defer func() { chartFormat = "svg" }()
	f, err := os.Create(out)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, WriteSweepSVG(f, points, "made up"))
}
