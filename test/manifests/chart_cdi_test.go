package manifests

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// TestChartCDI: a DaemonSet whose config lists a CDI device list strategy
// writes the node's CDI spec where the container runtime reads it and reads
// the driver's files for it, so it gets what NVIDIA's chart gives its
// plugin: the spec directory from the host at the same path
// (--cdi-spec-dir; the container's root filesystem is read-only, so
// without it the plugin exits at start: "CDI spec dir: mkdir /var/run/cdi:
// read-only file system") and the host's driver root read-only at
// /driver-root (--container-driver-root). The others, and the default
// render, get neither.
func TestChartCDI(t *testing.T) {
	tests := []struct {
		values     string
		ds         string
		want       bool
		specDir    string
		driverRoot string
	}{
		{"devicePlugin: {config: {default: {version: v1, flags: {plugin: {deviceListStrategy: cdi-cri}}}}}", "gpupack-device-plugin", true, "/var/run/cdi", "/"},
		{"devicePlugin: {config: {default: {version: v1, flags: {nvidiaDriverRoot: /run/nvidia/driver, plugin: {deviceListStrategy: [envvar, cdi-annotations]}}}}}", "gpupack-device-plugin", true, "/var/run/cdi", "/run/nvidia/driver"},
		{"devicePlugin: {cdi: {specDir: /etc/cdi}, config: {perNode: {h100-cdi: {version: v1, flags: {plugin: {deviceListStrategy: [cdi-cri]}}}}}}", "gpupack-device-plugin-h100-cdi", true, "/etc/cdi", "/"},
		{"devicePlugin: {config: {perNode: {h100-cdi: {version: v1, flags: {plugin: {deviceListStrategy: [cdi-cri]}}}}}}", "gpupack-device-plugin", false, "", ""},
		{"devicePlugin: {config: {default: {version: v1, flags: {plugin: {deviceListStrategy: [envvar, volume-mounts]}}}}}", "gpupack-device-plugin", false, "", ""},
		{"devicePlugin: {cdi: {enabled: false}, config: {default: {version: v1, flags: {plugin: {deviceListStrategy: cdi-cri}}}}}", "gpupack-device-plugin", false, "", ""},
		// DEVICE_LIST_STRATEGY in extraEnv: the chart cannot see it.
		{"devicePlugin: {cdi: {enabled: true}, extraEnv: [{name: DEVICE_LIST_STRATEGY, value: cdi-cri}]}", "gpupack-device-plugin", true, "/var/run/cdi", "/"},
		{"{}", "gpupack-device-plugin", false, "", ""},
		// Values of a release made with a chart before devicePlugin.cdi
		// (helm upgrade --reuse-values keeps them): the defaults apply.
		{"devicePlugin: {cdi: null, config: {default: {version: v1, flags: {plugin: {deviceListStrategy: cdi-cri}}}}}", "gpupack-device-plugin", true, "/var/run/cdi", "/"},
		{"devicePlugin: {cdi: null}", "gpupack-device-plugin", false, "", ""},
	}
	for i, tc := range tests {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Log(tc.values)
			spec := daemonSet(t, renderChart(t, tc.values), tc.ds).Spec.Template.Spec
			c := spec.Containers[0]
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m
			}
			hostPaths := map[string]*corev1.HostPathVolumeSource{}
			for _, v := range spec.Volumes {
				if v.HostPath != nil {
					hostPaths[v.Name] = v.HostPath
				}
			}
			if !tc.want {
				require.NotContains(t, mounts, "cdi-specs")
				require.NotContains(t, mounts, "driver-root")
				require.NotContains(t, hostPaths, "cdi-specs")
				require.NotContains(t, hostPaths, "driver-root")
				for _, a := range c.Args {
					require.NotRegexp(t, `^--(cdi-spec-dir|container-driver-root)=`, a)
				}
				return
			}
			require.Contains(t, c.Args, "--cdi-spec-dir="+tc.specDir)
			require.Contains(t, c.Args, "--container-driver-root=/driver-root")
			require.Equal(t, tc.specDir, mounts["cdi-specs"].MountPath, "at the host's path: the runtime reads the host's")
			require.False(t, mounts["cdi-specs"].ReadOnly, "the plugin writes the spec")
			require.Equal(t, &corev1.HostPathVolumeSource{Path: tc.specDir, Type: ptrTo(corev1.HostPathDirectoryOrCreate)}, hostPaths["cdi-specs"])
			require.Equal(t, "/driver-root", mounts["driver-root"].MountPath)
			require.True(t, mounts["driver-root"].ReadOnly, "the driver is only read")
			require.Equal(t, &corev1.HostPathVolumeSource{Path: tc.driverRoot, Type: ptrTo(corev1.HostPathDirectory)}, hostPaths["driver-root"])
		})
	}
	for values, want := range map[string]string{
		"devicePlugin: {cdi: {enabled: maybe}}":                             "at '/devicePlugin/cdi/enabled': value must be one of 'auto', true, false",
		"devicePlugin: {cdi: {specDir: var/run/cdi}}":                       "/devicePlugin/cdi/specDir",
		"devicePlugin: {extraVolumes: [{name: driver-root, emptyDir: {}}]}": `volume name "driver-root" is the chart's`,
	} {
		out, err := helm(t, "template", "gpupack", chartDir, "--namespace", releaseNamespace, "-f", valuesFile(t, values))
		require.Error(t, err, values)
		require.Contains(t, out, want, values)
	}
}

func ptrTo[T any](v T) *T { return &v }
