package deviceplugin

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// The per-resource gauges follow the resources served: serve deletes the
// series of the others, and a late update of a resource no longer served
// (the replaced Manager's ListAndWatch ending) does not bring them back.
func TestMetricsServeDropsOtherResources(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	count := func() (withheld, devices int) {
		t.Helper()
		w, err := testutil.GatherAndCount(reg, "gpupack_device_plugin_devices_withheld")
		require.NoError(t, err)
		d, err := testutil.GatherAndCount(reg, "gpupack_device_plugin_devices")
		require.NoError(t, err)
		return w, d
	}
	tests := []struct {
		name                   string
		do                     func()
		wantWithheld, wantDevs int
	}{
		// Before any Manager runs, every resource is recorded: 2
		// resources, 2 health series each.
		{"before serve", func() { m.setDevices("a", 3, 1, 1); m.setDevices("b", 4, 0, 0) }, 2, 4},
		{"serve a only", func() { m.serve([]string{"a"}) }, 1, 2},
		{"late update of b", func() { m.setDevices("b", 4, 0, 0) }, 1, 2},
		{"serve a and b again", func() { m.serve([]string{"a", "b"}); m.setDevices("b", 4, 0, 0) }, 2, 4},
	}
	for _, tc := range tests {
		tc.do()
		w, d := count()
		require.Equal(t, tc.wantWithheld, w, tc.name)
		require.Equal(t, tc.wantDevs, d, tc.name)
	}
	var nilMetrics *Metrics
	nilMetrics.serve([]string{"a"})
	nilMetrics.setDevices("a", 1, 0, 0)
}
