package nvml_test

import (
	"context"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// This machine has no NVIDIA driver: the real go-nvml cannot dlopen
// libnvidia-ml.so.1 and Init must say so, without a panic.
func TestInitWithoutDriver(t *testing.T) {
	lib := nvml.New(gonvml.New())
	var err error
	require.NotPanics(t, func() { err = lib.Init() })
	if err == nil {
		require.NoError(t, lib.Shutdown())
		t.Skip("an NVIDIA driver is present on this machine")
	}
	require.ErrorIs(t, err, nvml.ErrLibraryNotFound)
	require.ErrorIs(t, err, gonvml.ERROR_LIBRARY_NOT_FOUND)
	// Nothing else calls into the unloaded library.
	_, err = lib.Discover()
	require.ErrorContains(t, err, "not initialised")
	_, err = lib.WatchEvents(context.Background(), nil)
	require.ErrorContains(t, err, "not initialised")
	require.ErrorContains(t, lib.CheckGPU("GPU-x"), "not initialised")
	require.NoError(t, lib.Shutdown())
}

func TestInitErrors(t *testing.T) {
	require.Error(t, nvml.New(nil).Init())

	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	m.Server().InitFunc = func() gonvml.Return { return gonvml.ERROR_DRIVER_NOT_LOADED }
	err = nvml.New(m.Interface()).Init()
	require.ErrorIs(t, err, gonvml.ERROR_DRIVER_NOT_LOADED)
	require.NotErrorIs(t, err, nvml.ErrLibraryNotFound)

	m.Server().InitFunc = func() gonvml.Return { return gonvml.ERROR_LIBRARY_NOT_FOUND }
	require.ErrorIs(t, nvml.New(m.Interface()).Init(), nvml.ErrLibraryNotFound)
}

func TestInitShutdown(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Shutdown(), "Shutdown before Init is a no-op")
	require.NoError(t, lib.Init())
	require.NoError(t, lib.Init(), "a second Init is a no-op")
	require.NoError(t, lib.Shutdown())
	_, err = lib.Discover()
	require.ErrorContains(t, err, "not initialised")
	m.Server().ShutdownFunc = func() gonvml.Return { return gonvml.ERROR_UNKNOWN }
	require.NoError(t, lib.Init())
	require.ErrorContains(t, lib.Shutdown(), "ERROR_UNKNOWN")
}
