package nvml_test

import (
	"errors"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestCheckGPUNeedsReset: the recovery checks (CheckGPU by UUID,
// RecheckGPUs by the earlier discovery's refs, the one that leads a
// degraded GPU back) refuse a GPU that answers but needs a reset
// (ErrResetRequired) or service (ErrNeedsService), naming the GPU and the reasons; an answer that says a
// question does not apply (NOT_SUPPORTED: the generation lacks it, ECC off,
// MIG on; FUNCTION_NOT_FOUND: an older driver; NO_PERMISSION) never fails
// a GPU; any other NVML error fails the check with that error, not as a
// reset.
func TestCheckGPUNeedsReset(t *testing.T) {
	const gpu = 2
	type verdict int
	const (
		pass verdict = iota
		reset
		service
		failed // the check fails with an NVML error, no reset nor service
	)
	for _, tc := range []struct {
		name    string
		machine string
		mig     bool // GPU 2 has MIG enabled with one 1g instance
		setup   func(t *testing.T, m *fake.Machine)
		want    verdict
		// contains are parts of the error's text.
		contains []string
		// ret is an NVML Return the error must wrap (0: none checked).
		ret gonvml.Return
	}{
		// Nothing pending, on both generations.
		{name: "V100 clean", machine: fake.DGX1V100, want: pass},
		{name: "T4 clean", machine: fake.PCIe4GPU2Socket, want: pass},
		{name: "A100 clean", machine: fake.DGXA100, want: pass},
		{name: "H100 clean", machine: fake.DGXH100, want: pass},
		{name: "GB200 clean", machine: fake.GB2004GPU, want: pass},
		{name: "single-bit ECC is corrected: no reset", machine: fake.DGXA100, want: pass,
			setup: func(_ *testing.T, m *fake.Machine) { m.InjectECC(gpu, false) }},

		// Pre-Ampere: pages pending retirement, uncorrectable errors.
		{name: "V100 page pending retirement", machine: fake.DGX1V100, want: reset,
			setup:    func(t *testing.T, m *fake.Machine) { require.NoError(t, m.SetRetirementPending(gpu, true)) },
			contains: []string{"memory pages pending retirement", "nvidia-smi -r"}},
		{name: "T4 double-bit ECC", machine: fake.PCIe4GPU2Socket, want: reset,
			setup: func(_ *testing.T, m *fake.Machine) { m.InjectECC(gpu, true) },
			// one double-bit error: 1 volatile uncorrectable, a page pending.
			contains: []string{"memory pages pending retirement", "uncorrectable ECC errors since the last reset: 1"}},
		{name: "V100 double-bit ECC then reset", machine: fake.DGX1V100, want: pass,
			setup: func(_ *testing.T, m *fake.Machine) { m.InjectECC(gpu, true); m.ResetGPU(gpu) }},

		// Ampere and later: remapping pending or failed, uncorrectable errors.
		{name: "A100 remap pending", machine: fake.DGXA100, want: reset,
			setup:    func(t *testing.T, m *fake.Machine) { require.NoError(t, m.SetRemapPending(gpu, true)) },
			contains: []string{"a memory row remapping pending"}},
		{name: "H100 two double-bit ECC errors", machine: fake.DGXH100, want: reset,
			setup: func(_ *testing.T, m *fake.Machine) { m.InjectECC(gpu, true); m.InjectECC(gpu, true) },
			// 1 + 1 = 2 volatile uncorrectable, one remap pending.
			contains: []string{"a memory row remapping pending", "uncorrectable ECC errors since the last reset: 2"}},
		{name: "GB200 double-bit ECC then reset", machine: fake.GB2004GPU, want: pass,
			setup: func(_ *testing.T, m *fake.Machine) { m.InjectECC(gpu, true); m.ResetGPU(gpu) }},
		{name: "A100 remap failure", machine: fake.DGXA100, want: service,
			setup:    func(t *testing.T, m *fake.Machine) { require.NoError(t, m.SetRemapFailure(gpu, true)) },
			contains: []string{"row remapping failed"}},
		{name: "H100 remap failure survives a reset", machine: fake.DGXH100, want: service,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.SetRemapFailure(gpu, true))
				m.ResetGPU(gpu)
			}},
		{name: "A100 remap failure with a double-bit error: service wins", machine: fake.DGXA100, want: service,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.SetRemapFailure(gpu, true))
				m.InjectECC(gpu, true)
			},
			contains: []string{"row remapping failed", "also a memory row remapping pending, uncorrectable ECC errors since the last reset: 1"}},

		// Not applicable: the answer says nothing, the GPU passes.
		{name: "A100 MIG on: remapped rows not supported", machine: fake.DGXA100, mig: true, want: pass,
			setup: func(t *testing.T, m *fake.Machine) { require.NoError(t, m.SetRemapPending(gpu, true)) }},
		{name: "A100 MIG on: the volatile count still sees a double-bit error", machine: fake.DGXA100, mig: true, want: reset,
			setup:    func(_ *testing.T, m *fake.Machine) { m.InjectECC(gpu, true) },
			contains: []string{"uncorrectable ECC errors since the last reset: 1"}},
		{name: "V100 ECC off: total ECC errors not supported", machine: fake.DGX1V100, want: pass,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.Fail(gpu, fake.CallGetTotalEccErrors, gonvml.ERROR_NOT_SUPPORTED))
			}},
		{name: "A100 driver without GetRemappedRows", machine: fake.DGXA100, want: pass,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.SetRemapPending(gpu, true))
				require.NoError(t, m.Fail(gpu, fake.CallGetRemappedRows, gonvml.ERROR_FUNCTION_NOT_FOUND))
			}},
		{name: "V100 retirement status not readable by this process", machine: fake.DGX1V100, want: pass,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.SetRetirementPending(gpu, true))
				require.NoError(t, m.Fail(gpu, fake.CallGetRetiredPagesPendingStatus, gonvml.ERROR_NO_PERMISSION))
			}},

		// Other NVML errors fail the check with the error itself.
		{name: "A100 total ECC errors UNKNOWN", machine: fake.DGXA100, want: failed, ret: gonvml.ERROR_UNKNOWN,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.Fail(gpu, fake.CallGetTotalEccErrors, gonvml.ERROR_UNKNOWN))
			},
			contains: []string{"GetTotalEccErrors"}},
		{name: "V100 retirement status CORRUPTED_INFOROM", machine: fake.DGX1V100, want: failed, ret: gonvml.ERROR_CORRUPTED_INFOROM,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.Fail(gpu, fake.CallGetRetiredPagesPendingStatus, gonvml.ERROR_CORRUPTED_INFOROM))
			},
			contains: []string{"GetRetiredPagesPendingStatus"}},
		{name: "H100 remapped rows GPU_IS_LOST", machine: fake.DGXH100, want: failed, ret: gonvml.ERROR_GPU_IS_LOST,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.Fail(gpu, fake.CallGetRemappedRows, gonvml.ERROR_GPU_IS_LOST))
			},
			contains: []string{"GetRemappedRows"}},
		// The driver's own "reset required" is a reset.
		{name: "A100 remapped rows RESET_REQUIRED", machine: fake.DGXA100, want: reset, ret: gonvml.ERROR_RESET_REQUIRED,
			setup: func(t *testing.T, m *fake.Machine) {
				require.NoError(t, m.Fail(gpu, fake.CallGetRemappedRows, gonvml.ERROR_RESET_REQUIRED))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []fake.Option
			if tc.mig {
				opts = append(opts, fake.WithMIG(map[int][]string{gpu: {"1g.5gb"}}))
			}
			m, err := fake.New(tc.machine, opts...)
			require.NoError(t, err)
			lib := m.Lib(t)
			// The earlier discovery, before the fault.
			inv, err := lib.Discover()
			require.NoError(t, err)
			earlier := refs(inv)
			if tc.setup != nil {
				tc.setup(t, m)
			}
			for _, check := range []struct {
				name string
				run  func() error
			}{
				{"CheckGPU", func() error { return lib.CheckGPU(m.UUID(gpu)) }},
				{"RecheckGPUs", func() error { return lib.RecheckGPUs(earlier, []int{gpu})[0] }},
			} {
				err := check.run()
				if tc.want == pass {
					require.NoError(t, err, check.name)
					continue
				}
				require.Error(t, err, check.name)
				require.Contains(t, err.Error(), m.UUID(gpu), "%s names the GPU", check.name)
				require.Equal(t, tc.want == reset, errors.Is(err, nvml.ErrResetRequired), "%s: ErrResetRequired: %v", check.name, err)
				require.Equal(t, tc.want == service, errors.Is(err, nvml.ErrNeedsService), "%s: ErrNeedsService: %v", check.name, err)
				require.Equal(t, tc.ret == gonvml.ERROR_GPU_IS_LOST, errors.Is(err, nvml.ErrGPULost), "%s: ErrGPULost: %v", check.name, err)
				if tc.ret != 0 {
					require.ErrorIs(t, err, tc.ret, check.name)
				}
				for _, s := range tc.contains {
					require.Contains(t, err.Error(), s, check.name)
				}
			}
			// The other GPUs are untouched.
			require.NoError(t, lib.CheckGPU(m.UUID(gpu+1)))
		})
	}
}
