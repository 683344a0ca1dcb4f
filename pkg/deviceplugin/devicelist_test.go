package deviceplugin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// fakeDriverRoot is a driver root with the driver's mig-minors file and
// the control device nodes (as plain files).
func fakeDriverRoot(t *testing.T) string {
	root := t.TempDir()
	driverMIGMinors(t, root, 8)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	for _, n := range []string{"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"} {
		require.NoError(t, os.WriteFile(filepath.Join(root, "dev", n), nil, 0o644))
	}
	return root
}

// TestDeviceListAndIDStrategies: NVIDIA's four device list strategies and
// two device ID strategies on a DGX A100 with GPU 0 in MIG mode (two
// 1g.5gb), GPU 1 time-shared x2 and GPUs 2-7 whole, with a fake driver
// root; the CDI spec the plugin writes is read back and validated by the
// CDI library, and every device name Allocate hands out is in it with its
// device nodes under the driver root.
func TestDeviceListAndIDStrategies(t *testing.T) {
	for _, idStrategy := range []string{"uuid", "index"} {
		t.Run(idStrategy, func(t *testing.T) {
			root := fakeDriverRoot(t)
			cdiDir := t.TempDir()
			config := fmt.Sprintf(`flags:
  migStrategy: mixed
  nvidiaDriverRoot: %q
  gdsEnabled: true
  plugin:
    deviceListStrategy: [cdi-cri, volume-mounts, envvar, cdi-annotations]
    deviceIDStrategy: %s
    cdiAnnotationPrefix: nvidia.cdi.k8s.io/
sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: [1]}]}}`, root, idStrategy)
			k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: config, cdiDir: cdiDir,
				fake: []fake.Option{fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb"}})}})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 6, "nvidia.com/gpu.shared": 2, "nvidia.com/mig-1g.5gb": 2})

			cache, err := cdi.NewCache(cdi.WithSpecDirs(cdiDir), cdi.WithAutoRefresh(false))
			require.NoError(t, err)
			require.Empty(t, cache.GetErrors(), "the CDI library accepts the spec")
			require.Equal(t, []string{"k8s.device-plugin.nvidia.com"}, cache.ListVendors())
			inv := p.mgr.Inventory()
			// The runtime name of each device per the ID strategy.
			name := func(uuid, index string) string {
				if idStrategy == "index" {
					return index
				}
				return uuid
			}
			mig0 := inv.MIG[0]
			cases := []struct {
				resource string
				ids      []string
				want     []string // runtime names, in order
				nodes    []string // device nodes of the first
			}{
				{"nvidia.com/gpu", []string{inv.GPUs[2].UUID, inv.GPUs[5].UUID},
					[]string{name(inv.GPUs[2].UUID, "2"), name(inv.GPUs[5].UUID, "5")},
					[]string{fmt.Sprintf("/dev/nvidia%d", inv.GPUs[2].Minor)}},
				// Two replicas of GPU 1: the GPU once.
				{"nvidia.com/gpu.shared", replicaIDs(inv.GPUs[1].UUID, 2), []string{name(inv.GPUs[1].UUID, "1")},
					[]string{fmt.Sprintf("/dev/nvidia%d", inv.GPUs[1].Minor)}},
				// The first MIG device of GPU 0 is 0:0; its nodes: the GPU's
				// and the caps of GPU instance and compute instance.
				{"nvidia.com/mig-1g.5gb", []string{mig0.UUID}, []string{name(mig0.UUID, "0:0")},
					[]string{fmt.Sprintf("/dev/nvidia%d", inv.GPUs[0].Minor),
						fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", 3+(15*inv.GPUs[0].Minor+mig0.GIID)*9),
						fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", 3+(15*inv.GPUs[0].Minor+mig0.GIID)*9+1+mig0.CIID)}},
			}
			for _, tc := range cases {
				resp, err := client(t, p, tc.resource).Allocate(context.Background(), &pluginapi.AllocateRequest{
					ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: tc.ids}}})
				require.NoError(t, err)
				cr := resp.ContainerResponses[0]
				// volume-mounts replaces envvar's list, as in NVIDIA's plugin.
				require.Equal(t, deviceplugin.VolumeMountsRoot, cr.Envs[deviceplugin.EnvVisibleDevices])
				require.Equal(t, "enabled", cr.Envs["NVIDIA_GDS"])
				var mounts []string
				for _, m := range cr.Mounts {
					require.Equal(t, "/dev/null", m.HostPath)
					mounts = append(mounts, strings.TrimPrefix(m.ContainerPath, deviceplugin.VolumeMountsRoot+"/"))
				}
				require.Equal(t, tc.want, mounts)
				var qualified []string
				for _, n := range tc.want {
					qualified = append(qualified, "k8s.device-plugin.nvidia.com/gpu="+n)
				}
				var cri []string
				for _, d := range cr.CdiDevices {
					cri = append(cri, d.Name)
				}
				require.Equal(t, qualified, cri)
				// cdi-annotations under the configured prefix.
				require.Len(t, cr.Annotations, 1)
				ann := map[string]string{}
				for k, v := range cr.Annotations {
					require.True(t, strings.HasPrefix(k, "nvidia.cdi.k8s.io/nvidia-device-plugin_"), k)
					ann["cdi.k8s.io/"+strings.TrimPrefix(k, "nvidia.cdi.k8s.io/")] = v
				}
				_, devices, err := cdi.ParseAnnotations(ann)
				require.NoError(t, err)
				require.Equal(t, qualified, devices)
				// Every name is a device of the spec, its nodes under the driver root.
				for _, q := range qualified {
					require.NotNil(t, cache.GetDevice(q), q)
				}
				var hostPaths []string
				for _, n := range cache.GetDevice(qualified[0]).ContainerEdits.DeviceNodes {
					require.Equal(t, filepath.Join(root, n.Path), n.HostPath)
					hostPaths = append(hostPaths, n.Path)
				}
				require.Equal(t, tc.nodes, hostPaths)
			}
			// "all" holds every GPU's node; the control nodes present under
			// the root are common edits.
			require.NotNil(t, cache.GetDevice("k8s.device-plugin.nvidia.com/gpu=all"))
			spec := cache.GetDevice("k8s.device-plugin.nvidia.com/gpu=all").GetSpec()
			var common []string
			for _, n := range spec.ContainerEdits.DeviceNodes {
				common = append(common, n.Path)
				require.Equal(t, filepath.Join(root, n.Path), n.HostPath)
			}
			require.Equal(t, []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}, common)
			// 6 whole + GPU 1 + 2 MIG devices + all.
			require.Len(t, spec.Devices, 10)
			require.True(t, slices.ContainsFunc(spec.Devices, func(d cdispec.Device) bool { return d.Name == name(inv.GPUs[1].UUID, "1") }))
		})
	}
}

// TestCDISpecReplacesNVIDIAs: NVIDIA's plugin writes its CDI specs as
// /var/run/cdi/k8s.device-plugin.nvidia.com-gpu.json (and -imex-channel)
// and leaves them when it goes. Two spec files of one kind in one
// directory make every device they share a conflict, which the CDI cache
// drops: a pod's CDI devices would not resolve after a switch (or, with
// gpupack's spec left, after a rollback). gpupack writes the same file
// names, so each plugin replaces the other's, and removes the .yaml of an
// earlier gpupack.
func TestCDISpecReplacesNVIDIAs(t *testing.T) {
	tests := []struct {
		name  string
		stale []string // files in the CDI directory before the plugin starts
	}{
		{"NVIDIA's specs left", []string{"k8s.device-plugin.nvidia.com-gpu.json", "k8s.device-plugin.nvidia.com-imex-channel.json"}},
		{"an earlier gpupack's specs left", []string{"k8s.device-plugin.nvidia.com-gpu.yaml", "k8s.device-plugin.nvidia.com-imex-channel.yaml"}},
		{"both", []string{"k8s.device-plugin.nvidia.com-gpu.json", "k8s.device-plugin.nvidia.com-gpu.yaml",
			"k8s.device-plugin.nvidia.com-imex-channel.json", "k8s.device-plugin.nvidia.com-imex-channel.yaml"}},
		{"none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := imexRoot(t, []string{"channel0"})
			cdiDir := t.TempDir()
			k, p := setup(t, pluginOpts{machine: fake.GB2004GPU, cdiDir: t.TempDir()}) // for the UUIDs
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 4})
			gpu := uuidOf(p, 0)
			for _, f := range tt.stale {
				class := "gpu"
				dev := gpu
				if strings.Contains(f, "imex") {
					class, dev = "imex-channel", "0"
				}
				spec := fmt.Sprintf(`{"cdiVersion":"0.5.0","kind":"k8s.device-plugin.nvidia.com/%s","devices":[{"name":%q,"containerEdits":{"deviceNodes":[{"path":"/dev/null"}]}}]}`, class, dev)
				require.NoError(t, os.WriteFile(filepath.Join(cdiDir, f), []byte(spec), 0o644))
			}
			config := "flags: {nvidiaDriverRoot: " + root + ", plugin: {deviceListStrategy: cdi-cri}}\nimex: {channelIDs: [0]}"
			k2, p2 := setup(t, pluginOpts{machine: fake.GB2004GPU, config: config, cdiDir: cdiDir})
			k2.waitCounts(map[string]int64{"nvidia.com/gpu": 4})
			require.Equal(t, gpu, uuidOf(p2, 0), "the same fake machine")

			cache, err := cdi.NewCache(cdi.WithSpecDirs(cdiDir), cdi.WithAutoRefresh(false))
			require.NoError(t, err)
			require.Empty(t, cache.GetErrors(), "no conflicting specs")
			for _, n := range []string{"k8s.device-plugin.nvidia.com/gpu=" + gpu, "k8s.device-plugin.nvidia.com/imex-channel=0"} {
				require.NotNil(t, cache.GetDevice(n), n)
			}
			entries, err := os.ReadDir(cdiDir)
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			require.ElementsMatch(t, []string{"k8s.device-plugin.nvidia.com-gpu.json", "k8s.device-plugin.nvidia.com-imex-channel.json"}, names)
		})
	}
}
