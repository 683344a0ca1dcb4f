package fake

import (
	"sync"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// installComputeMode gives GPU i a compute mode (DEFAULT at first) that
// SetComputeMode changes and GetComputeMode reads.
func (m *Machine) installComputeMode(i int, d *server.Device) {
	var mu sync.Mutex
	mode := gonvml.COMPUTEMODE_DEFAULT
	d.SetComputeModeFunc = func(c gonvml.ComputeMode) gonvml.Return {
		if m.isLost(i) {
			return gonvml.ERROR_GPU_IS_LOST
		}
		switch c {
		case gonvml.COMPUTEMODE_DEFAULT, gonvml.COMPUTEMODE_EXCLUSIVE_THREAD, gonvml.COMPUTEMODE_PROHIBITED, gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS:
		default:
			return gonvml.ERROR_INVALID_ARGUMENT
		}
		mu.Lock()
		defer mu.Unlock()
		mode = c
		return gonvml.SUCCESS
	}
	d.GetComputeModeFunc = func() (gonvml.ComputeMode, gonvml.Return) {
		mu.Lock()
		defer mu.Unlock()
		return mode, gonvml.SUCCESS
	}
}

// ComputeMode is GPU i's compute mode.
func (m *Machine) ComputeMode(i int) gonvml.ComputeMode {
	mode, _ := m.devs[i].GetComputeMode()
	return mode
}
