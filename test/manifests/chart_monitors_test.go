package manifests

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// monitors lists the prometheus-operator objects of objs as kind/name, sorted.
func monitors(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if o.GetAPIVersion() == "monitoring.coreos.com/v1" {
			out = append(out, o.GetKind()+"/"+o.GetName())
		}
	}
	slices.Sort(out)
	return out
}

// Monitors: the device plugin's ServiceMonitor or its PodMonitor, one at a
// time (both select the same pods: every target would be scraped twice, and
// the chart refuses it, chart_schema_test.go).
func TestChartMonitors(t *testing.T) {
	require.Empty(t, monitors(renderChart(t, "")), "no monitor by default")
	for want, values := range map[string]string{
		"ServiceMonitor/gpupack-device-plugin": "devicePlugin: {metrics: {serviceMonitor: {enabled: true}}}",
		"PodMonitor/gpupack-device-plugin":     "devicePlugin: {metrics: {podMonitor: {enabled: true}}}",
	} {
		require.Equal(t, []string{want}, monitors(renderChart(t, values)), values)
	}
}
