package manifests

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// With the chart's per-node configs, the default DaemonSet's plugin is told
// their names and the node label, so it warns when its node's label names
// none of them (a typo that would run the default config silently); the
// per-node DaemonSets, and a chart without per-node configs, get neither.
func TestChartTellsTheDefaultPluginThePerNodeNames(t *testing.T) {
	pluginArgs := func(objs []*unstructured.Unstructured, name string) []string {
		ds := daemonSet(t, objs, name)
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name == "device-plugin" || strings.Contains(c.Image, "device-plugin") {
				return c.Args
			}
		}
		t.Fatalf("%s: no device-plugin container", name)
		return nil
	}
	withFlag := func(args []string, flag string) []string {
		var out []string
		for _, a := range args {
			if strings.HasPrefix(a, flag+"=") {
				out = append(out, a)
			}
		}
		return out
	}
	objs := renderChart(t, allOn)
	def := pluginArgs(objs, "gpupack-device-plugin")
	// Sorted: a100-mig before t4-shared.
	require.Equal(t, []string{"--per-node-config-names=a100-mig,t4-shared"}, withFlag(def, "--per-node-config-names"))
	require.Equal(t, []string{"--node-label=nvidia.com/device-plugin.config"}, withFlag(def, "--node-label"))
	for _, name := range []string{"gpupack-device-plugin-a100-mig", "gpupack-device-plugin-t4-shared"} {
		args := pluginArgs(objs, name)
		require.False(t, slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--per-node-config-names") }), name)
	}
	plain := pluginArgs(renderChart(t, ""), "gpupack-device-plugin")
	require.Empty(t, withFlag(plain, "--per-node-config-names"), "no per-node configs: nothing to check")
}
