package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/test/cluster"
)

// `make demo` end to end: both pools settle, our profile places the whole
// workload with every device handed off exactly as chosen, and the default
// profile leaves exactly the two 8-GPU jobs pending.
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
	// The default profile leaves both 8-GPU jobs pending in every run: it
	// scores nodes by CPU and memory only (LeastAllocated, BalancedAllocation;
	// every node has the same 96 cores and 1Ti), so each of the first four
	// 1-GPU pods goes to one of the four nodes serving whole GPUs that holds
	// no pod yet (such a node scores strictly higher than one that does):
	// every 8-GPU node is broken before the 8-GPU jobs arrive, whichever
	// ties it breaks, and no pod ever leaves. Everything else fits any
	// spread. Its random ties only move pods between nodes.
	require.ElementsMatch(t, []string{"default-train-8-0", "default-train-8-1"}, def.Pending,
		"the default profile leaves both 8-GPU jobs pending, and only them")
	require.InDelta(t, def.GPUEquiv+16, ours.GPUEquiv, 1e-9, "the two 8-GPU jobs are the whole difference")

	// The report says what it compares and what its fragmentation assumes.
	flat := strings.Join(strings.Fields(report.String()), " ")
	require.Contains(t, flat, "Both pools run gpupack's device plugin")
	require.Contains(t, flat, "fragmentation workload: "+workloadSource+".")
}
