package fake

import (
	"testing"

	"github.com/gpupack/gpupack/pkg/nvml"
)

// Lib returns pkg/nvml's Lib over the machine, initialised, and shut down
// when the test ends; a failed Init fails the test.
func (m *Machine) Lib(tb testing.TB) nvml.Lib {
	tb.Helper()
	lib := nvml.New(m.Interface())
	if err := lib.Init(); err != nil {
		tb.Fatalf("nvml Init on fake machine: %v", err)
	}
	tb.Cleanup(func() { _ = lib.Shutdown() })
	return lib
}
