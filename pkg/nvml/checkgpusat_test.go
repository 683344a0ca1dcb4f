package nvml_test

import (
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestCheckGPUsAt: CheckGPUsAt answers each index as CheckGPUAt does, in
// the order asked, over one discovery (one DeviceGetCount); a discovery
// that fails, or a library not initialised, is every index's error.
func TestCheckGPUsAt(t *testing.T) {
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
			lib := nvml.New(m.Interface())
			if tc.init {
				require.NoError(t, lib.Init())
				t.Cleanup(func() { _ = lib.Shutdown() })
			}
			errs := lib.CheckGPUsAt(tc.indexes)
			require.Len(t, errs, len(tc.indexes))
			require.Equal(t, tc.wantDiscoveries, discoveries)
			for k, i := range tc.indexes {
				require.Equal(t, tc.wantFail[k], errs[k] != nil, "GPU %d: %v", i, errs[k])
				// The same answer as CheckGPUAt's.
				require.Equal(t, errs[k] != nil, lib.CheckGPUAt(i) != nil, "GPU %d", i)
			}
		})
	}
}
