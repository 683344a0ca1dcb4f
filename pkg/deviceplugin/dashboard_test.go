package deviceplugin

import (
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/version"
	"github.com/gpupack/gpupack/test/dashboard"
)

// fqName reads a Desc's name (prometheus.Desc exposes it only in String()).
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registeredNames are the names of every metric the device plugin serves
// (cmd/device-plugin registers Metrics and the build-info collector).
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	cs := append(NewMetrics(prometheus.NewRegistry()).collectors(), version.NewCollector("device-plugin"))
	names := map[string]bool{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			require.NotNil(t, m, d.String())
			names[m[1]] = true
		}
	}
	return names
}

// The chart's Grafana dashboard is well-formed and every device-plugin
// metric its queries use (gpupack_device_plugin_*, gpupack_build_info) is
// one the device plugin registers; the scheduler's test checks the rest.
func TestDashboardUsesRegisteredDevicePluginMetrics(t *testing.T) {
	names := registeredNames(t)
	require.True(t, names["gpupack_device_plugin_gpu_healthy"])
	queries, err := dashboard.Queries(dashboard.Path())
	require.NoError(t, err)
	used := dashboard.MetricNames(queries, func(string) bool { return false }) // no histograms here
	checked := 0
	for _, n := range used {
		if !strings.HasPrefix(n, "gpupack_device_plugin_") && n != version.BuildInfoName {
			continue
		}
		checked++
		require.True(t, names[n], "the dashboard queries %s, which the device plugin does not register", n)
	}
	// GPU map, pods, handoff, health, versions.
	require.GreaterOrEqual(t, checked, 8)
}
