package nvml_test

import (
	"errors"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// refs is the refs of inv's GPUs, what RecheckGPUs takes as earlier.
func refs(inv *nvml.Inventory) []nvml.GPURef {
	var r []nvml.GPURef
	for _, g := range inv.GPUs {
		r = append(r, g.Ref())
	}
	return r
}

// TestRecheckGPUsPerGPU: RecheckGPUs answers each GPU of the earlier
// discovery as it answers it alone, in the order asked, over one discovery
// (one DeviceGetCount); a GPU the earlier discovery did not list fails; a
// discovery that fails, or a library not initialised, is every GPU's
// error.
func TestRecheckGPUsPerGPU(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(m *fake.Machine)
		init    bool
		indexes []int
		// wantFail[k]: indexes[k] fails its check.
		wantFail        []bool
		wantDiscoveries int64
	}{
		// 8 GPUs, GPU 3 lost, GPU 9 not listed: 1 discovery for 4 answers.
		{name: "per GPU", init: true, break_: func(m *fake.Machine) { m.LoseGPU(3) },
			indexes: []int{5, 3, 9, 0}, wantFail: []bool{false, true, true, false}, wantDiscoveries: 1},
		{name: "none asked", init: true, indexes: nil, wantFail: []bool{}, wantDiscoveries: 0},
		{name: "discovery fails", init: true, break_: func(m *fake.Machine) {
			m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
		}, indexes: []int{1, 2}, wantFail: []bool{true, true}, wantDiscoveries: 0},
		{name: "not initialised", indexes: []int{0, 1}, wantFail: []bool{true, true}, wantDiscoveries: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			lib := nvml.New(m.Interface())
			// The earlier discovery's refs, read by a library of their
			// own when lib is left uninitialised.
			disc := lib
			if !tc.init {
				disc = m.Lib(t)
			} else {
				require.NoError(t, lib.Init())
				t.Cleanup(func() { _ = lib.Shutdown() })
			}
			inv, err := disc.Discover()
			require.NoError(t, err)
			earlier := refs(inv)
			if tc.break_ != nil {
				tc.break_(m)
			}
			var discoveries int64
			count := m.Server().DeviceGetCountFunc
			m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) {
				n, ret := count()
				if ret == gonvml.SUCCESS {
					discoveries++
				}
				return n, ret
			}
			errs := lib.RecheckGPUs(earlier, tc.indexes)
			require.Len(t, errs, len(tc.indexes))
			require.Equal(t, tc.wantDiscoveries, discoveries)
			for k, i := range tc.indexes {
				require.Equal(t, tc.wantFail[k], errs[k] != nil, "GPU %d: %v", i, errs[k])
				// The same answer as for that GPU alone.
				require.Equal(t, errs[k] != nil, lib.RecheckGPUs(earlier, []int{i})[0] != nil, "GPU %d", i)
			}
		})
	}
}

// TestRecheckGPUs: GPU 0 is no longer listed (NVML numbers the GPUs after
// it one lower) and the GPUs of the earlier discovery asked are found by
// their identity, else their place between the GPUs found, not by their
// index: one discovery for all; a GPU not found fails with ErrGPULost.
func TestRecheckGPUs(t *testing.T) {
	tests := []struct {
		name     string
		degraded []int // no handle at the earlier discovery: no identity read
		heal     bool  // they answer again
		unlist   []int // no longer listed after the earlier discovery
		indexes  []int
		// wantErr[k]: indexes[k]'s error contains it ("": passes);
		// lost[k]: it wraps ErrGPULost (not found).
		wantErr []string
		lost    []bool
	}{
		// 8-1 = 7 listed: 3 is found between 2 and 4 (now 1 and 3), 7
		// after 6 (now 5), 4 by its bus ID (now 3).
		{name: "degraded GPUs read again", degraded: []int{3, 7}, heal: true, unlist: []int{0},
			indexes: []int{3, 7, 4, 0}, wantErr: []string{"", "", "", "not found among the 7 GPUs"}, lost: []bool{false, false, false, true}},
		{name: "degraded GPUs still failing", degraded: []int{3, 7}, unlist: []int{0},
			indexes: []int{3, 7}, wantErr: []string{"DeviceGetHandleByIndex", "DeviceGetHandleByIndex"}, lost: []bool{true, true}},
		// 8-2 = 6 listed: nothing left between 2 and 4 (now 1 and 2).
		{name: "degraded GPU no longer listed", degraded: []int{3}, heal: true, unlist: []int{0, 3},
			indexes: []int{3}, wantErr: []string{"GPU 3 (identity not read): GPU is lost: not found among the 6 GPUs"}, lost: []bool{true}},
		// 8-1 = 7 listed: 2 GPUs without identity were between 2 and 5,
		// 1 is now: which one is not known.
		{name: "two without identity, one unlisted", degraded: []int{3, 4}, heal: true, unlist: []int{3},
			indexes: []int{3, 4}, wantErr: []string{"not found among the 7 GPUs", "not found among the 7 GPUs"}, lost: []bool{true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			for _, i := range tc.degraded {
				require.NoError(t, m.Fail(i, fake.CallDeviceGetHandleByIndex, gonvml.ERROR_GPU_IS_LOST))
			}
			lib := nvml.New(m.Interface())
			require.NoError(t, lib.Init())
			t.Cleanup(func() { _ = lib.Shutdown() })
			inv, err := lib.Discover()
			require.NoError(t, err)
			earlier := refs(inv)
			for _, i := range tc.unlist {
				m.Unlist(i)
			}
			if tc.heal {
				for _, i := range tc.degraded {
					m.Heal(i)
				}
			}
			var discoveries int
			count := m.Server().DeviceGetCountFunc
			m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) {
				discoveries++
				return count()
			}
			errs := lib.RecheckGPUs(earlier, tc.indexes)
			require.Equal(t, 1, discoveries)
			require.Len(t, errs, len(tc.indexes))
			for k, i := range tc.indexes {
				if tc.wantErr[k] == "" {
					require.NoError(t, errs[k], "GPU %d", i)
					continue
				}
				require.ErrorContains(t, errs[k], tc.wantErr[k], "GPU %d", i)
				require.Equal(t, tc.lost[k], errors.Is(errs[k], nvml.ErrGPULost), "GPU %d: %v", i, errs[k])
			}
		})
	}
}
