//go:build realgpu

package mps_test

// Real MPS check, opt-in (GPUPACK_REAL_MPS=1 go test -tags realgpu -run
// RealGPUMPS ./pkg/mps/): one control daemon on GPU 0 with the real
// nvidia-cuda-mps-control, NVIDIA's settings for 2 replicas, the health
// check, and quit. It does not change the compute mode; the daemon's
// directories are under a temporary root.

import (
	"context"
	"os"
	"os/exec"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/mps"
	"github.com/gpupack/gpupack/pkg/nvml"
)

func TestRealGPUMPS(t *testing.T) {
	if os.Getenv("GPUPACK_REAL_MPS") != "1" {
		t.Skip("set GPUPACK_REAL_MPS=1: this starts an MPS control daemon on GPU 0")
	}
	if _, err := exec.LookPath(mps.DefaultBinary); err != nil {
		t.Skipf("no %s: %v", mps.DefaultBinary, err)
	}
	lib := nvml.New(gonvml.New())
	if err := lib.Init(); err != nil {
		t.Skipf("no NVIDIA driver: %v", err)
	}
	t.Cleanup(func() { _ = lib.Shutdown() })
	inv, err := lib.Discover()
	require.NoError(t, err)
	require.NotEmpty(t, inv.GPUs)
	g := inv.GPUs[0]
	var health []error
	r, err := mps.New([]mps.GPU{{Index: g.Index, UUID: g.UUID, MemoryMiB: g.MemoryMiB, Replicas: 2}}, mps.Options{
		Root: mps.Root(t.TempDir()), OnHealth: func(_ context.Context, _ mps.GPU, err error) { health = append(health, err) }})
	require.NoError(t, err)
	ctx := context.Background()
	r.Start(ctx)
	t.Cleanup(func() { r.Stop(ctx) })
	require.Len(t, health, 1)
	require.NoError(t, health[0], "the real daemon started, took NVIDIA's settings and answers 50")
}
