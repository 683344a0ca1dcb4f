package nvml

import (
	"errors"
	"fmt"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrResetRequired is wrapped by CheckGPU and RecheckGPUs for a GPU that
// answers but must be reset before it is served again: memory pages pending
// retirement (before Ampere), a row remapping pending (Ampere and later),
// uncorrectable ECC errors counted since the last reset, or the driver
// answering ERROR_RESET_REQUIRED. Only a reset (nvidia-smi -r once no
// process uses the GPU, or a node reboot) clears it.
var ErrResetRequired = errors.New("GPU reset required (nvidia-smi -r, or a node reboot)")

// ErrNeedsService is wrapped by CheckGPU and RecheckGPUs for a GPU whose
// memory row remapping failed (GetRemappedRows' failureOccurred): a spare
// row was needed and none was left. NVML keeps it across resets: the GPU
// needs service (repair or replacement).
var ErrNeedsService = errors.New("GPU needs service (a memory row remapping failed; a reset does not clear it)")

// checkMemory asks the GPU whether it needs a reset or service before its
// memory can be trusted again (NVIDIA's "GPU memory error management"):
//
//   - GetRetiredPagesPendingStatus FEATURE_ENABLED: pages wait for a reset to
//     be retired (Kepler to Turing; Ampere and later answer NOT_SUPPORTED);
//   - GetRemappedRows isPending: a row waits for a reset to be remapped
//     (Ampere and later; earlier GPUs, and GPUs with MIG enabled, answer
//     NOT_SUPPORTED); failureOccurred: a remapping failed, ErrNeedsService;
//   - GetTotalEccErrors(UNCORRECTED, VOLATILE) > 0: uncorrectable errors
//     since the last reset (NOT_SUPPORTED when ECC is off or absent).
//
// Each call's answer is one of three:
//
//   - SUCCESS: its value counts;
//   - not applicable (notApplicable): the GPU, its mode or the driver lacks
//     the feature, or NVML does not let this process read it; the check says
//     nothing, as before it existed: a GPU is never failed for lacking a
//     feature;
//   - anything else (GPU_IS_LOST, which also wraps ErrGPULost, UNKNOWN,
//     CORRUPTED_INFOROM, TIMEOUT, ...): the check fails with that error, as
//     a failing GetMemoryInfo does: a GPU that already failed is not served
//     while its memory state cannot be read; the next probe asks again.
//     ERROR_RESET_REQUIRED also wraps ErrResetRequired (callError).
//
// All three are asked, so the error lists every reason; a failed
// remapping wins over the reasons a reset would clear.
func checkMemory(name string, dev gonvml.Device) error {
	var reset []string
	service := false
	pending, ret := dev.GetRetiredPagesPendingStatus()
	switch {
	case ret == gonvml.SUCCESS:
		if pending == gonvml.FEATURE_ENABLED {
			reset = append(reset, "memory pages pending retirement")
		}
	case !notApplicable(ret):
		return callError(name, "GetRetiredPagesPendingStatus", ret)
	}
	_, _, remapPending, remapFailed, ret := dev.GetRemappedRows()
	switch {
	case ret == gonvml.SUCCESS:
		if remapPending {
			reset = append(reset, "a memory row remapping pending")
		}
		service = remapFailed
	case !notApplicable(ret):
		return callError(name, "GetRemappedRows", ret)
	}
	unc, ret := dev.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC)
	switch {
	case ret == gonvml.SUCCESS:
		if unc > 0 {
			reset = append(reset, fmt.Sprintf("uncorrectable ECC errors since the last reset: %d", unc))
		}
	case !notApplicable(ret):
		return callError(name, "GetTotalEccErrors", ret)
	}
	switch {
	case service && len(reset) > 0:
		return fmt.Errorf("GPU %s: %w; also %s", name, ErrNeedsService, strings.Join(reset, ", "))
	case service:
		return fmt.Errorf("GPU %s: %w", name, ErrNeedsService)
	case len(reset) > 0:
		return fmt.Errorf("GPU %s: %w: %s", name, ErrResetRequired, strings.Join(reset, ", "))
	}
	return nil
}

// notApplicable reports the answers that mean a memory-state question does
// not apply to this GPU: NOT_SUPPORTED (the GPU's generation lacks it, ECC
// is off or absent, MIG is enabled), FUNCTION_NOT_FOUND (a driver older
// than the call) and NO_PERMISSION (NVML does not let this process read it:
// refusing every GPU for it would keep them all out for good).
func notApplicable(ret gonvml.Return) bool {
	switch ret {
	case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_FUNCTION_NOT_FOUND, gonvml.ERROR_NO_PERMISSION:
		return true
	default:
		return false
	}
}
