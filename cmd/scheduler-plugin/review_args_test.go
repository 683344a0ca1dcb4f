package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2/ktesting"
)

// pluginConfig args that are not a mapping, as people slip into writing
// them: a block string (`args: |`, the habit of ConfigMap data), a list, a
// number. kube-scheduler refuses each with its decoder's Go-internal
// message ("couldn't get version/kind; json parse error: json: cannot
// unmarshal string into Go value of type struct { APIVersion string
// \"json:\\\"apiVersion,omitempty\\\"\"; ... }"), naming neither the field
// nor what to write. The start names the entry's args by path, the
// plugin, and what was found. Old: kube-scheduler's message alone.
func TestCheckPluginConfigArgsNotAMapping(t *testing.T) {
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n" +
		"- schedulerName: p\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n" +
		"    bind:\n      enabled: [{name: GPUPack}, {name: DefaultBinder}]\n      disabled: [{name: \"*\"}]\n  pluginConfig:\n"
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"a block string", head + "  - name: GPUPack\n    args: |\n      fragmentationWeight: 3\n",
			`profiles[0].pluginConfig[0].args: Invalid value: "fragmentationWeight: 3\n": GPUPack's args must be a mapping of their fields, not a string`},
		{"a list", head + "  - name: GPUPack\n    args: [{fragmentationWeight: 3}]\n",
			`profiles[0].pluginConfig[0].args: Invalid value: "[{\"fragmentationWeight\":3}]": GPUPack's args must be a mapping of their fields, not a list`},
		{"a number", head + "  - name: GPUPack\n    args: 3\n",
			`profiles[0].pluginConfig[0].args: Invalid value: "3": GPUPack's args must be a mapping of their fields, not a number`},
		// Another plugin's args, second entry, in JSON.
		{"JSON, another plugin", `{"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration", "profiles": [{"schedulerName": "p",` +
			` "pluginConfig": [{"name": "DefaultPreemption", "args": {}}, {"name": "NodeResourcesFit", "args": "scoringStrategy"}]}]}`,
			`profiles[0].pluginConfig[1].args: Invalid value: "scoringStrategy": NodeResourcesFit's args must be a mapping of their fields, not a string`},
		// What starts stays as it was.
		{"null", head + "  - name: GPUPack\n    args: null\n", ""},
		{"a mapping", head + "  - name: GPUPack\n    args: {fragmentationWeight: 3}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { requireConfigCheck(t, tt.yaml, tt.wantErr) })
	}
}

// requireConfigCheck writes yaml to a file and runs the start-up check on
// it: no error when wantErr is "", else one containing wantErr.
func requireConfigCheck(t *testing.T, yaml, wantErr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	logger, _ := ktesting.NewTestContext(t)
	err := checkPluginConfig(logger, path)
	if wantErr == "" {
		require.NoError(t, err)
		return
	}
	require.ErrorContains(t, err, wantErr)
}
