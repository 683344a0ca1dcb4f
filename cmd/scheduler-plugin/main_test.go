package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2/ktesting"
)

// The start-up check reads the config file as kube-scheduler does: a
// binding extender for the GPU resources GPUPack places (the defaults', or
// those its args name) is refused; one for other resources starts.
func TestCheckPluginConfigExtenders(t *testing.T) {
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n" +
		"- schedulerName: gpupack-scheduler\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n"
	const args = "  pluginConfig:\n  - name: GPUPack\n    args: {wholeResource: example.com/accel}\n"
	ext := func(res string) string {
		return "extenders:\n- urlPrefix: http://127.0.0.1:1\n  bindVerb: bind\n  managedResources:\n  - name: " + res + "\n"
	}
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"default whole GPUs", head + ext("nvidia.com/gpu"), `extenders[0].managedResources[0].name: Invalid value: "nvidia.com/gpu"`},
		{"default MIG devices", head + ext("nvidia.com/mig-3g.20gb"), "extenders[0].managedResources[0].name"},
		{"the args' whole resource", head + args + ext("example.com/accel"), `Invalid value: "example.com/accel"`},
		{"another resource", head + args + ext("example.com/fpga"), ""},
		{"every pod", head + "extenders:\n- urlPrefix: http://127.0.0.1:1\n  bindVerb: bind\n", "extenders[0].bindVerb"},
		{"the shipped manifest", "", ""},
	}
	logger, _ := ktesting.NewTestContext(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("..", "..", "manifests", "scheduler", "config.yaml")
			if tt.yaml != "" {
				path = filepath.Join(t.TempDir(), "config.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tt.yaml), 0o600))
			}
			err := checkPluginConfig(logger, path)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// Two profiles reading one resource name as different kinds of device
// (whole GPUs in one, time-shared replicas in the other) are refused at
// start: they share the record of the devices in use.
func TestCheckPluginConfigResourceKinds(t *testing.T) {
	const cfg = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n" +
		"- schedulerName: a\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n" +
		"  pluginConfig:\n  - name: GPUPack\n    args: {wholeResource: example.com/gpu, sharedResource: nvidia.com/gpu}\n" +
		"- schedulerName: b\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n"
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	logger, _ := ktesting.NewTestContext(t)
	err := checkPluginConfig(logger, path)
	require.ErrorContains(t, err, `profiles[1].pluginConfig[GPUPack].args.wholeResource: Invalid value: "nvidia.com/gpu": profile "a" reads it as time-shared replicas`)
}
