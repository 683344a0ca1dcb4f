package deviceplugin

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/nodepublish"
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

// fixedAnswer is a PodResources answer that never changes.
type fixedAnswer map[types.NamespacedName]map[string]map[string][]string

func (a fixedAnswer) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	return a, nil
}

// The node publisher counts each malformed device ID of the kubelet's
// answer once, by resource, however often it reads the answer; the
// per-pod series never carry it (a label value that is not valid UTF-8
// makes the collector panic and the scrape fail). A nil Metrics counts
// nothing.
func TestMetricsCountMalformedInUseDevices(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	p := nodepublish.New(nodepublish.Options{Metrics: m, PodResources: fixedAnswer{
		{Namespace: "default", Name: "p"}: {"main": {"nvidia.com/gpu": {"GPU-a", "gpu 1", "GPU-\xff"}}},
	}})
	for range 3 {
		_, err := p.InUse(context.Background(), []string{"nvidia.com/gpu"}, nil)
		require.NoError(t, err)
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gpupack_device_plugin_in_use_malformed_devices_total Malformed device IDs of the kubelet's PodResources answer left out of the node's in-use report, by resource (counted once while the kubelet lists them).
# TYPE gpupack_device_plugin_in_use_malformed_devices_total counter
gpupack_device_plugin_in_use_malformed_devices_total{resource="nvidia.com/gpu"} 2
`), "gpupack_device_plugin_in_use_malformed_devices_total"))
	pods := m.gpu.pods.Load()
	require.NotNil(t, pods)
	require.Len(t, *pods, 1)
	require.Equal(t, "GPU-a", (*pods)[0].Device)
	var nilMetrics *Metrics
	nilMetrics.MalformedDevice("nvidia.com/gpu")
}
