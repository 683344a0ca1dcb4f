package manifests

import (
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// TestChartMPS: a DaemonSet whose config shares GPUs with MPS gets what
// NVIDIA's chart gives its MPS daemon: the MPS root from the host (at the
// host's path, named by MPS_ROOT), the root's shm as /dev/shm, the compute
// driver capability (the runtime mounts the control program) and the
// control program's flag; the others, and the default render, get none.
func TestChartMPS(t *testing.T) {
	mpsConfig := "{version: v1, sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}}"
	tests := []struct {
		values string
		ds     string
		want   bool
		root   string
	}{
		{"devicePlugin: {config: {default: " + mpsConfig + "}}", "gpupack-device-plugin", true, "/run/nvidia/mps"},
		{"devicePlugin: {mps: {root: /var/run/mps, controlBinary: /usr/local/bin/mps-control}, config: {perNode: {t4-mps: " + mpsConfig + "}}}", "gpupack-device-plugin-t4-mps", true, "/var/run/mps"},
		{"devicePlugin: {config: {perNode: {t4-mps: " + mpsConfig + "}}}", "gpupack-device-plugin", false, ""},
		{"devicePlugin: {mps: {enabled: false}, config: {default: " + mpsConfig + "}}", "gpupack-device-plugin", false, ""},
		{"devicePlugin: {mps: {enabled: true}}", "gpupack-device-plugin", true, "/run/nvidia/mps"},
		{"{}", "gpupack-device-plugin", false, ""},
	}
	for i, tc := range tests {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Log(tc.values)
			spec := daemonSet(t, renderChart(t, tc.values), tc.ds).Spec.Template.Spec
			c := spec.Containers[0]
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			hostPaths := map[string]string{}
			for _, v := range spec.Volumes {
				if v.HostPath != nil {
					hostPaths[v.Name] = v.HostPath.Path
				}
			}
			if !tc.want {
				require.NotContains(t, env, "MPS_ROOT")
				require.Equal(t, "utility", env["NVIDIA_DRIVER_CAPABILITIES"])
				require.NotContains(t, mounts, "mps-root")
				require.False(t, slices.ContainsFunc(c.Args, func(a string) bool { return len(a) > 20 && a[:20] == "--mps-control-binary" }))
				return
			}
			require.Equal(t, tc.root, env["MPS_ROOT"])
			require.Equal(t, "compute,utility", env["NVIDIA_DRIVER_CAPABILITIES"])
			require.Equal(t, tc.root, mounts["mps-root"], "at the host's path: Allocate names host paths")
			require.Equal(t, "/dev/shm", mounts["mps-shm"])
			require.Equal(t, tc.root, hostPaths["mps-root"])
			require.Equal(t, tc.root+"/shm", hostPaths["mps-shm"])
			for _, v := range spec.Volumes {
				if v.Name == "mps-root" || v.Name == "mps-shm" {
					require.Equal(t, corev1.HostPathDirectoryOrCreate, *v.HostPath.Type)
				}
			}
			bin := "nvidia-cuda-mps-control"
			if tc.root == "/var/run/mps" {
				bin = "/usr/local/bin/mps-control"
			}
			require.Contains(t, c.Args, "--mps-control-binary="+bin)
		})
	}
	out, err := helm(t, "template", "gpupack", chartDir, "--namespace", releaseNamespace, "-f", valuesFile(t, "devicePlugin: {mps: {enabled: maybe}}"))
	require.Error(t, err)
	require.Contains(t, out, "at '/devicePlugin/mps/enabled': value must be one of 'auto', true, false")
}
