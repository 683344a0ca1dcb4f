package nvml_test

import (
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestSetExclusiveProcess: MPS's compute mode on and off through NVML; a
// lost GPU, an unknown UUID and an uninitialised library are errors.
func TestSetExclusiveProcess(t *testing.T) {
	m, err := fake.New(fake.PCIe4GPU2Socket)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	cm, ok := lib.(nvml.ComputeModeSetter)
	require.True(t, ok)
	require.ErrorContains(t, cm.SetExclusiveProcess("GPU-x", true), "not initialised")
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	inv, err := lib.Discover()
	require.NoError(t, err)

	u := inv.GPUs[2].UUID
	require.NoError(t, cm.SetExclusiveProcess(u, true))
	require.Equal(t, gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS, m.ComputeMode(2))
	require.Equal(t, gonvml.COMPUTEMODE_DEFAULT, m.ComputeMode(1), "only that GPU")
	require.NoError(t, cm.SetExclusiveProcess(u, false))
	require.Equal(t, gonvml.COMPUTEMODE_DEFAULT, m.ComputeMode(2))

	require.Error(t, cm.SetExclusiveProcess("GPU-nope", true))
	m.LoseGPU(3)
	require.ErrorIs(t, cm.SetExclusiveProcess(inv.GPUs[3].UUID, true), nvml.ErrGPULost)
}
