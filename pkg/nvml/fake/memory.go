package fake

import (
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// Calls of the memory-error state a fault can be injected into with Fail.
const (
	CallGetRetiredPagesPendingStatus = "GetRetiredPagesPendingStatus"
	CallGetRemappedRows              = "GetRemappedRows"
	CallGetTotalEccErrors            = "GetTotalEccErrors"
)

// memState is one GPU's memory-error state: what NVML reports of ECC
// errors, page retirement (before Ampere) and row remapping (Ampere and
// later). A new GPU has none.
type memState struct {
	// volatile counts are those since the last reset (or driver load),
	// aggregate ones those of the GPU's life.
	volatileCorr, volatileUnc   uint64
	aggregateCorr, aggregateUnc uint64
	// retirePending: a page waits for a reset to be retired (pre-Ampere).
	retirePending bool
	// remapPending: a row waits for a reset to be remapped (Ampere+);
	// remapped counts the rows a reset remapped; remapFailed: a remapping
	// failed once (kept in the InfoROM: no reset clears it).
	remapPending bool
	remapped     int
	remapFailed  bool
}

// remapsRows reports whether the machine's GPUs remap rows (Ampere and
// later) rather than retire pages (Volta, Turing and older), as real
// hardware does: each answers NOT_SUPPORTED for the other's call.
func (s *spec) remapsRows() bool {
	switch s.gpu.Architecture {
	case gonvml.DEVICE_ARCH_KEPLER, gonvml.DEVICE_ARCH_MAXWELL, gonvml.DEVICE_ARCH_PASCAL,
		gonvml.DEVICE_ARCH_VOLTA, gonvml.DEVICE_ARCH_TURING:
		return false
	default:
		return true
	}
}

// installMemory gives GPU i the calls that say whether it needs a reset:
// GetRetiredPagesPendingStatus (pre-Ampere), GetRemappedRows (Ampere+; not
// supported while MIG is enabled, as NVML documents) and GetTotalEccErrors.
// A lost GPU answers ERROR_GPU_IS_LOST; faults injected with Fail win over
// the state.
func (m *Machine) installMemory(i int, d *server.Device) {
	remaps := m.spec.remapsRows()
	d.GetRetiredPagesPendingStatusFunc = func() (gonvml.EnableState, gonvml.Return) {
		if ret := m.memCall(i, CallGetRetiredPagesPendingStatus); ret != gonvml.SUCCESS {
			return gonvml.FEATURE_DISABLED, ret
		}
		if remaps {
			return gonvml.FEATURE_DISABLED, gonvml.ERROR_NOT_SUPPORTED
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.mem[i].retirePending {
			return gonvml.FEATURE_ENABLED, gonvml.SUCCESS
		}
		return gonvml.FEATURE_DISABLED, gonvml.SUCCESS
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, gonvml.Return) {
		if ret := m.memCall(i, CallGetRemappedRows); ret != gonvml.SUCCESS {
			return 0, 0, false, false, ret
		}
		if !remaps {
			return 0, 0, false, false, gonvml.ERROR_NOT_SUPPORTED
		}
		if mode, _, ret := d.GetMigMode(); ret == gonvml.SUCCESS && mode == gonvml.DEVICE_MIG_ENABLE {
			return 0, 0, false, false, gonvml.ERROR_NOT_SUPPORTED
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		s := m.mem[i]
		return 0, s.remapped, s.remapPending, s.remapFailed, gonvml.SUCCESS
	}
	d.GetTotalEccErrorsFunc = func(kind gonvml.MemoryErrorType, counter gonvml.EccCounterType) (uint64, gonvml.Return) {
		if ret := m.memCall(i, CallGetTotalEccErrors); ret != gonvml.SUCCESS {
			return 0, ret
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		s := m.mem[i]
		switch {
		case kind == gonvml.MEMORY_ERROR_TYPE_CORRECTED && counter == gonvml.VOLATILE_ECC:
			return s.volatileCorr, gonvml.SUCCESS
		case kind == gonvml.MEMORY_ERROR_TYPE_CORRECTED && counter == gonvml.AGGREGATE_ECC:
			return s.aggregateCorr, gonvml.SUCCESS
		case kind == gonvml.MEMORY_ERROR_TYPE_UNCORRECTED && counter == gonvml.VOLATILE_ECC:
			return s.volatileUnc, gonvml.SUCCESS
		case kind == gonvml.MEMORY_ERROR_TYPE_UNCORRECTED && counter == gonvml.AGGREGATE_ECC:
			return s.aggregateUnc, gonvml.SUCCESS
		default:
			return 0, gonvml.ERROR_INVALID_ARGUMENT
		}
	}
}

// installMIGMemory makes a MIG device handle answer the memory-error calls
// NOT_SUPPORTED: they are questions about the whole GPU.
func installMIGMemory(h *mock.Device) {
	h.GetRetiredPagesPendingStatusFunc = func() (gonvml.EnableState, gonvml.Return) {
		return gonvml.FEATURE_DISABLED, gonvml.ERROR_NOT_SUPPORTED
	}
	h.GetRemappedRowsFunc = func() (int, int, bool, bool, gonvml.Return) {
		return 0, 0, false, false, gonvml.ERROR_NOT_SUPPORTED
	}
	h.GetTotalEccErrorsFunc = func(gonvml.MemoryErrorType, gonvml.EccCounterType) (uint64, gonvml.Return) {
		return 0, gonvml.ERROR_NOT_SUPPORTED
	}
}

// memCall is what a memory-error call of GPU i answers before its state is
// read: ERROR_GPU_IS_LOST while lost, an injected fault, else SUCCESS.
func (m *Machine) memCall(i int, call string) gonvml.Return {
	if m.isLost(i) {
		return gonvml.ERROR_GPU_IS_LOST
	}
	return m.faultOf(i, call)
}

// countECC counts one ECC error of GPU gpu. An uncorrectable one also
// leaves what real hardware leaves for a reset to finish: a row remapping
// pending (Ampere+) or a page pending retirement (before Ampere).
func (m *Machine) countECC(gpu int, doubleBit bool) {
	if !m.valid(gpu) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.mem[gpu]
	if !doubleBit {
		s.volatileCorr++
		s.aggregateCorr++
		return
	}
	s.volatileUnc++
	s.aggregateUnc++
	if m.spec.remapsRows() {
		s.remapPending = true
	} else {
		s.retirePending = true
	}
}

// SetRetirementPending sets whether a memory page of GPU gpu waits for a
// reset to be retired (GetRetiredPagesPendingStatus), on a machine whose
// GPUs retire pages (before Ampere); ResetGPU clears it.
func (m *Machine) SetRetirementPending(gpu int, pending bool) error {
	if err := m.memGPU(gpu, false); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mem[gpu].retirePending = pending
	return nil
}

// SetRemapPending sets whether a memory row of GPU gpu waits for a reset to
// be remapped (GetRemappedRows' isPending), on a machine whose GPUs remap
// rows (Ampere and later); ResetGPU clears it.
func (m *Machine) SetRemapPending(gpu int, pending bool) error {
	if err := m.memGPU(gpu, true); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mem[gpu].remapPending = pending
	return nil
}

// SetRemapFailure sets whether a row remapping of GPU gpu failed
// (GetRemappedRows' failureOccurred), on a machine whose GPUs remap rows
// (Ampere and later). ResetGPU does not clear it: the GPU needs service.
func (m *Machine) SetRemapFailure(gpu int, failed bool) error {
	if err := m.memGPU(gpu, true); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mem[gpu].remapFailed = failed
	return nil
}

// memGPU checks that GPU gpu exists and has the memory-repair mechanism
// asked for (rows: row remapping, else page retirement).
func (m *Machine) memGPU(gpu int, rows bool) error {
	if !m.valid(gpu) {
		return fmt.Errorf("fake: no GPU %d", gpu)
	}
	if rows == m.spec.remapsRows() {
		return nil
	}
	if rows {
		return fmt.Errorf("fake: GPU %d (%s) retires pages, it does not remap rows (before Ampere)", gpu, m.spec.gpu.Name)
	}
	return fmt.Errorf("fake: GPU %d (%s) remaps rows, it does not retire pages (Ampere and later)", gpu, m.spec.gpu.Name)
}

// ResetGPU resets GPU gpu as nvidia-smi -r does: the volatile ECC counts
// start again at 0, a pending page retirement or row remapping is done
// (a remapped row is counted in GetRemappedRows). Aggregate counts and a
// failed row remapping stay; a lost GPU stays lost (RestoreGPU).
func (m *Machine) ResetGPU(gpu int) {
	if !m.valid(gpu) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.mem[gpu]
	s.volatileCorr, s.volatileUnc = 0, 0
	s.retirePending = false
	if s.remapPending {
		s.remapPending = false
		s.remapped++
	}
}
