package fake_test

import (
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// memAnswer is what one GPU answers to the three calls that say whether it
// needs a reset.
type memAnswer struct {
	retire       gonvml.Return
	retirePend   bool
	remap        gonvml.Return
	remapped     int
	remapPending bool
	remapFailed  bool
	unc          uint64 // volatile uncorrectable
	corr         uint64 // volatile correctable
	aggUnc       uint64 // aggregate uncorrectable
}

func memOf(t *testing.T, d gonvml.Device) memAnswer {
	t.Helper()
	var a memAnswer
	var state gonvml.EnableState
	state, a.retire = d.GetRetiredPagesPendingStatus()
	a.retirePend = state == gonvml.FEATURE_ENABLED
	_, a.remapped, a.remapPending, a.remapFailed, a.remap = d.GetRemappedRows()
	var ret gonvml.Return
	a.unc, ret = d.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC)
	require.Equal(t, gonvml.SUCCESS, ret)
	a.corr, ret = d.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_CORRECTED, gonvml.VOLATILE_ECC)
	require.Equal(t, gonvml.SUCCESS, ret)
	a.aggUnc, ret = d.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.AGGREGATE_ECC)
	require.Equal(t, gonvml.SUCCESS, ret)
	return a
}

// Every GPU of every catalog machine answers the memory-error calls: no
// error pending at first, and NOT_SUPPORTED for the other generation's
// mechanism, as real hardware: pre-Ampere GPUs (V100, T4) retire pages and
// have no row remapping, Ampere and later (A100, H100, GB200) remap rows and
// have no page retirement.
func TestMemoryStateByGeneration(t *testing.T) {
	remaps := map[string]bool{
		fake.DGX1V100: false, fake.NVSwitch16GPU: false, fake.PCIe4GPU2Socket: false,
		fake.DGXA100: true, fake.A100PCIeBridge: true, fake.DGXH100: true, fake.GB2004GPU: true,
	}
	require.Len(t, remaps, len(fake.Names()), "every catalog machine has a generation here")
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			m, err := fake.New(name)
			require.NoError(t, err)
			want := memAnswer{retire: gonvml.SUCCESS, remap: gonvml.ERROR_NOT_SUPPORTED}
			if remaps[name] {
				want = memAnswer{retire: gonvml.ERROR_NOT_SUPPORTED, remap: gonvml.SUCCESS}
			}
			for i := range m.NumGPUs() {
				require.Equal(t, want, memOf(t, m.Device(i)), "GPU %d", i)
			}
			_, ret := m.Device(0).GetTotalEccErrors(gonvml.MemoryErrorType(7), gonvml.VOLATILE_ECC)
			require.Equal(t, gonvml.ERROR_INVALID_ARGUMENT, ret)
		})
	}
}

// ECC errors are counted; a double-bit one leaves the GPU needing a reset
// (a remap pending on Ampere+, a page pending retirement before); ResetGPU
// clears the volatile counts and the pending states, not the aggregate
// counts nor a failed remapping.
func TestMemoryErrorsAndReset(t *testing.T) {
	for _, tc := range []struct {
		name    string
		machine string
		remaps  bool
	}{
		{"pre-Ampere V100", fake.DGX1V100, false},
		{"Ampere A100", fake.DGXA100, true},
		{"Hopper H100", fake.DGXH100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(tc.machine)
			require.NoError(t, err)
			m.InjectECC(2, false)
			m.InjectECC(2, true)
			m.InjectECC(2, true)
			got := memOf(t, m.Device(2))
			// 2 double-bit errors: volatile and aggregate uncorrectable 2;
			// 1 single-bit: volatile correctable 1.
			require.Equal(t, uint64(2), got.unc)
			require.Equal(t, uint64(2), got.aggUnc)
			require.Equal(t, uint64(1), got.corr)
			require.Equal(t, tc.remaps, got.remapPending)
			require.Equal(t, !tc.remaps, got.retirePend)
			require.Equal(t, memAnswer{}, stateOnly(memOf(t, m.Device(3))), "GPU 3 untouched")

			m.ResetGPU(2)
			got = memOf(t, m.Device(2))
			require.Zero(t, got.unc)
			require.Zero(t, got.corr)
			require.Equal(t, uint64(2), got.aggUnc, "aggregate counts survive a reset")
			require.False(t, got.remapPending)
			require.False(t, got.retirePend)
			if tc.remaps {
				require.Equal(t, 1, got.remapped, "the pending row was remapped by the reset")
			}
		})
	}
}

// stateOnly keeps the state of an answer, not its return codes.
func stateOnly(a memAnswer) memAnswer {
	a.retire, a.remap = 0, 0
	return a
}

func TestMemorySetters(t *testing.T) {
	v100, err := fake.New(fake.DGX1V100)
	require.NoError(t, err)
	a100, err := fake.New(fake.DGXA100)
	require.NoError(t, err)

	require.NoError(t, v100.SetRetirementPending(1, true))
	require.True(t, memOf(t, v100.Device(1)).retirePend)
	require.ErrorContains(t, v100.SetRemapPending(1, true), "does not remap rows")
	require.ErrorContains(t, v100.SetRemapFailure(1, true), "does not remap rows")
	require.ErrorContains(t, a100.SetRetirementPending(1, true), "does not retire pages")
	require.ErrorContains(t, a100.SetRemapFailure(8, true), "no GPU 8") // GPUs 0..7
	require.ErrorContains(t, v100.SetRetirementPending(-1, true), "no GPU -1")
	v100.ResetGPU(1)
	require.False(t, memOf(t, v100.Device(1)).retirePend)

	require.NoError(t, a100.SetRemapPending(4, true))
	require.NoError(t, a100.SetRemapFailure(4, true))
	a100.ResetGPU(4)
	got := memOf(t, a100.Device(4))
	require.False(t, got.remapPending)
	require.True(t, got.remapFailed, "a failed remapping survives a reset")
	require.NoError(t, a100.SetRemapFailure(4, false))
	require.False(t, memOf(t, a100.Device(4)).remapFailed)
}

// A lost GPU answers ERROR_GPU_IS_LOST, a fault injected with Fail wins,
// a GPU with MIG enabled answers NOT_SUPPORTED for its remapped rows (as
// NVML documents), and MIG device handles answer NOT_SUPPORTED.
func TestMemoryCallsLostFaultMIG(t *testing.T) {
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{5: {"1g.5gb"}}))
	require.NoError(t, err)
	m.LoseGPU(1)
	_, ret := m.Device(1).GetRetiredPagesPendingStatus()
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)
	_, _, _, _, ret = m.Device(1).GetRemappedRows()
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)
	_, ret = m.Device(1).GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC)
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)

	require.NoError(t, m.Fail(2, fake.CallGetTotalEccErrors, gonvml.ERROR_UNKNOWN))
	_, ret = m.Device(2).GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC)
	require.Equal(t, gonvml.ERROR_UNKNOWN, ret)
	m.Heal(2)
	_, ret = m.Device(2).GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC)
	require.Equal(t, gonvml.SUCCESS, ret)

	require.NoError(t, m.SetRemapPending(5, true))
	_, _, _, _, ret = m.Device(5).GetRemappedRows()
	require.Equal(t, gonvml.ERROR_NOT_SUPPORTED, ret, "MIG enabled")
	mig, ret := m.Device(5).GetMigDeviceHandleByIndex(0)
	require.Equal(t, gonvml.SUCCESS, ret)
	_, ret = mig.GetRetiredPagesPendingStatus()
	require.Equal(t, gonvml.ERROR_NOT_SUPPORTED, ret)
	_, _, _, _, ret = mig.GetRemappedRows()
	require.Equal(t, gonvml.ERROR_NOT_SUPPORTED, ret)
	_, ret = mig.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC)
	require.Equal(t, gonvml.ERROR_NOT_SUPPORTED, ret)
}
