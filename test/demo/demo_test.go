package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/test/cluster"
)

// `make demo` end to end: both pools settle, our profile places the whole
// workload with every device handed off exactly as chosen, and it packs at
// least as much as the default profile.
func TestDemo(t *testing.T) {
	binDir := os.Getenv("GPUPACK_BIN")
	if binDir == "" {
		binDir = "../../.cache/bin"
	}
	if err := cluster.CheckBinaries(binDir); err != nil {
		t.Skipf("skipping: %v (make test builds them)", err)
	}
	dir := t.TempDir()
	sched, err := cluster.BuildGo(dir, "scheduler-plugin", "github.com/gpupack/gpupack/cmd/scheduler-plugin")
	require.NoError(t, err)
	plugin, err := cluster.BuildGo(dir, "device-plugin", "github.com/gpupack/gpupack/cmd/device-plugin")
	require.NoError(t, err)

	var report bytes.Buffer
	out, err := run(context.Background(), options{
		binDir: binDir, schedulerBin: sched, pluginBin: plugin,
		config: filepath.Join("..", "..", "manifests", "scheduler", "config.yaml"), timeout: 3 * time.Minute,
	}, &report)
	require.NoError(t, err)
	t.Logf("report:\n%s", report.String())
	require.Contains(t, report.String(), "==== summary ====")

	w := workload()
	d, err := distribution(requests(w), sharedReplicas)
	require.NoError(t, err)
	require.Len(t, out.sides, 2)
	ours, def := gpuview.AnalyzeSide(&out.sides[0], d), gpuview.AnalyzeSide(&out.sides[1], d)
	require.Equal(t, "gpupack-scheduler", ours.Profile)
	require.Empty(t, ours.Pending, "the pool has room for the whole workload (28 of 30 whole GPUs)")
	require.Empty(t, ours.Problems)
	require.Empty(t, def.Problems)
	require.Equal(t, [2]int{len(w), len(w)}, out.handoffs["gpupack-scheduler"], "every pod gets exactly the scheduler's devices")
	// The default profile spreads the 12 GPUs before the 8-GPU jobs over
	// the nodes (LeastAllocated), so at least one 8-GPU job has no whole
	// node left: gpupack allocates at least 8 GPUs more.
	require.NotEmpty(t, def.Pending, "the default profile leaves an 8-GPU job pending")
	require.GreaterOrEqual(t, ours.GPUEquiv, def.GPUEquiv+8)
}
