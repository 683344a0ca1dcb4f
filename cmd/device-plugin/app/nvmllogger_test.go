package app

import (
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestLibLogsToTheCommandsLogger: discovery's warnings (NVLink ends that
// disagree on their lanes, 02baee6) went to klog's global logger, without
// the device plugin's logger name and values; the NVML o.lib returns now
// logs them to the command's logger.
func TestLibLogsToTheCommandsLogger(t *testing.T) {
	tests := []struct {
		name string
		// linkDown: GPU 0 reads its link 3 (one of its two lanes to GPU
		// 3 on a DGX-1 V100) down, GPU 3 both up.
		linkDown bool
		wantWarn bool
	}{
		{name: "NVLink ends disagree", linkDown: true, wantWarn: true},
		{name: "NVLink ends agree"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true))).
				WithName("device-plugin").WithValues("node", "gpu-node-1")
			o := &options{fakeMachine: fake.DGX1V100}
			lib, m, err := o.lib(logger)
			require.NoError(t, err)
			if tc.linkDown {
				d := m.Device(0)
				orig := d.GetNvLinkStateFunc
				d.GetNvLinkStateFunc = func(link int) (gonvml.EnableState, gonvml.Return) {
					if link == 3 {
						return gonvml.FEATURE_DISABLED, gonvml.SUCCESS
					}
					return orig(link)
				}
			}
			require.NoError(t, lib.Init())
			t.Cleanup(func() { _ = lib.Shutdown() })
			_, err = lib.Discover()
			require.NoError(t, err)

			var warnings []string
			for _, l := range strings.Split(logger.GetSink().(ktesting.Underlier).GetBuffer().String(), "\n") {
				if strings.Contains(l, "disagree on their NVLink lanes") {
					warnings = append(warnings, l)
				}
			}
			if !tc.wantWarn {
				require.Empty(t, warnings)
				return
			}
			require.Len(t, warnings, 1)
			require.Contains(t, warnings[0], "device-plugin:", "the logger's name")
			require.Contains(t, warnings[0], `node="gpu-node-1"`, "the logger's values")
		})
	}
}
