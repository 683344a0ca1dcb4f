//go:build realgpu

package nvml_test

import (
	"context"
	"os"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestRealGPU runs discovery and a short health watch against the real
// driver: go test -tags realgpu -run TestRealGPU -v ./pkg/nvml/
// It only reads: it never changes MIG mode, never resets a GPU.
func TestRealGPU(t *testing.T) {
	lib := nvml.New(gonvml.New(), nvml.WithEventTimeout(200*time.Millisecond))
	require.NoError(t, lib.Init(), "NVML Init on a machine with an NVIDIA driver")
	t.Cleanup(func() { require.NoError(t, lib.Shutdown()) })

	inv, err := lib.Discover()
	require.NoError(t, err)
	require.NotEmpty(t, inv.GPUs, "a realgpu run needs at least one GPU")
	t.Logf("driver %s, CUDA %s", inv.DriverVersion, inv.CUDADriverVersion)
	for _, g := range inv.GPUs {
		t.Logf("GPU %d: %+v", g.Index, g)
		require.NotEmpty(t, g.UUID)
		require.NotZero(t, g.MemoryMiB)
		_, err := nvml.NormalizeBusID(g.PCIBusID)
		require.NoError(t, err)
	}
	for _, d := range inv.MIG {
		t.Logf("MIG %+v", d)
	}
	for i := range inv.Links {
		row := ""
		for j := range inv.Links[i] {
			if i == j {
				row += " X    "
				continue
			}
			row += " " + pad(inv.Links[i][j].String())
		}
		t.Logf("GPU%-2d%s", i, row)
	}
	node := inv.Topology()
	require.NoError(t, topology.Render(os.Stdout, node))

	uuids := make([]string, len(inv.GPUs))
	for i, g := range inv.GPUs {
		uuids[i] = g.UUID
		require.NoError(t, lib.CheckGPU(g.UUID))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ch, err := lib.WatchEvents(ctx, uuids)
	require.NoError(t, err)
	for ev := range ch { // closes when ctx is done
		t.Logf("event during the watch: %+v", ev)
	}
}

func pad(s string) string {
	for len(s) < 5 {
		s += " "
	}
	return s
}
