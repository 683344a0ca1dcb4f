package deviceplugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// driverFiles lays out a driver of version v under root, as a distribution
// installs it: versioned libraries with their SONAME and .so links, a
// vdpau library, an older version's library left behind, binaries (one
// not executable), GSP firmware.
func driverFiles(t *testing.T, root, v string) {
	t.Helper()
	lib := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	write := func(p string, mode os.FileMode) {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("x"), mode))
	}
	link := func(target, p string) { require.NoError(t, os.Symlink(target, p)) }
	for _, l := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"} {
		write(filepath.Join(lib, l+"."+v), 0o644)
		link(l+"."+v, filepath.Join(lib, l+".1"))
	}
	link("libcuda.so.1", filepath.Join(lib, "libcuda.so"))
	write(filepath.Join(lib, "libnvidia-ml.so.535.1"), 0o644) // another version: not mounted
	write(filepath.Join(lib, "vdpau", "libvdpau_nvidia.so."+v), 0o644)
	write(filepath.Join(root, "usr/bin/nvidia-smi"), 0o755)
	write(filepath.Join(root, "usr/bin/nvidia-cuda-mps-control"), 0o755)
	write(filepath.Join(root, "usr/bin/nvidia-debugdump"), 0o644) // not executable: left out
	write(filepath.Join(root, "lib/firmware/nvidia", v, "gsp_ga10x.bin"), 0o644)
}

// TestCDISpecHasTheDriver: on a DGX A100 (driver 550.54.15) with a fake
// driver root, the node's CDI spec carries what NVIDIA's nvcdi puts in the
// NVIDIA spec besides device nodes: the driver's libraries of that version
// (vdpau too), its binaries and firmware, mounted read-only from the driver
// root, and the nvidia-cdi-hook hooks (the library links, the ld cache);
// the CDI library accepts the spec.
func TestCDISpecHasTheDriver(t *testing.T) {
	const v = "550.54.15"
	for _, tc := range []struct {
		name, flags string
		hook        []string // the hook binary's path and fixed args
	}{
		{"default hook", "", []string{"/usr/bin/nvidia-cdi-hook", "nvidia-cdi-hook"}},
		{"nvidiaCDIHookPath", "nvidiaCDIHookPath: /opt/toolkit/nvidia-cdi-hook", []string{"/opt/toolkit/nvidia-cdi-hook", "nvidia-cdi-hook"}},
		// NVIDIA's older setting: nvidia-ctk runs the hooks as "hook" subcommands.
		{"nvidiaCTKPath", "nvidiaCTKPath: /usr/local/nvidia/toolkit/nvidia-ctk", []string{"/usr/local/nvidia/toolkit/nvidia-ctk", "nvidia-ctk", "hook"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeDriverRoot(t)
			driverFiles(t, root, v)
			cdiDir := t.TempDir()
			config := fmt.Sprintf("flags: {nvidiaDriverRoot: %q, plugin: {deviceListStrategy: cdi-cri, %s}}", root, tc.flags)
			k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: config, cdiDir: cdiDir})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			require.Equal(t, v, p.mgr.Inventory().DriverVersion)

			cache, err := cdi.NewCache(cdi.WithSpecDirs(cdiDir), cdi.WithAutoRefresh(false))
			require.NoError(t, err)
			require.Empty(t, cache.GetErrors(), "the CDI library accepts the spec")
			dev := cache.GetDevice("k8s.device-plugin.nvidia.com/gpu=" + uuidOf(p, 0))
			require.NotNil(t, dev)
			edits := dev.GetSpec().ContainerEdits

			const lib = "/usr/lib/x86_64-linux-gnu"
			var mounts []string
			for _, m := range edits.Mounts {
				require.Equal(t, filepath.Join(root, m.ContainerPath), m.HostPath)
				require.Equal(t, []string{"ro", "nosuid", "nodev", "rbind", "rprivate"}, m.Options)
				mounts = append(mounts, m.ContainerPath)
			}
			require.ElementsMatch(t, []string{
				lib + "/libcuda.so." + v, lib + "/libnvidia-ml.so." + v, lib + "/libnvidia-ptxjitcompiler.so." + v,
				lib + "/vdpau/libvdpau_nvidia.so." + v,
				"/lib/firmware/nvidia/" + v + "/gsp_ga10x.bin",
				"/usr/bin/nvidia-smi", "/usr/bin/nvidia-cuda-mps-control",
			}, mounts)

			args := func(rest ...string) []string { return append(append([]string(nil), tc.hook[1:]...), rest...) }
			hooks := map[string][]string{}
			for _, h := range edits.Hooks {
				require.Equal(t, "createContainer", h.HookName)
				require.Equal(t, tc.hook[0], h.Path)
				hooks[h.Args[len(tc.hook)-1]] = h.Args
			}
			require.ElementsMatch(t, args("create-symlinks",
				"--link", "libcuda.so.1::"+lib+"/libcuda.so",
				"--link", "libcuda.so."+v+"::"+lib+"/libcuda.so.1",
				"--link", "libnvidia-ml.so."+v+"::"+lib+"/libnvidia-ml.so.1",
				"--link", "libnvidia-ptxjitcompiler.so."+v+"::"+lib+"/libnvidia-ptxjitcompiler.so.1"),
				hooks["create-symlinks"])
			require.Equal(t, args("update-ldcache", "--folder", lib, "--folder", lib+"/vdpau"), hooks["update-ldcache"])
			require.Equal(t, args("disable-device-node-modification"), hooks["disable-device-node-modification"])
			require.Contains(t, edits.Env, "NVIDIA_CTK_LIBCUDA_DIR="+lib)
			// The device nodes stay as they were.
			require.NotEmpty(t, edits.DeviceNodes)
		})
	}
}

// TestDriverEditsRoots: with the host's driver root seen elsewhere by the
// plugin (containerDriverRoot), files are looked for under the read root
// and mounted from the host root; without a version or libraries there are
// no driver mounts, and the reason is given.
func TestDriverEditsRoots(t *testing.T) {
	const v = "570.133.20"
	read := t.TempDir()
	driverFiles(t, read, v)
	edits, notes := deviceplugin.DriverEdits(deviceplugin.DriverEditsOptions{ReadRoot: read, HostRoot: "/run/nvidia/driver", Version: v})
	require.Empty(t, notes)
	require.NotEmpty(t, edits.Mounts)
	for _, m := range edits.Mounts {
		require.Equal(t, filepath.Join("/run/nvidia/driver", m.ContainerPath), m.HostPath)
	}
	require.NoError(t, cdi.ValidateEnv(edits.Env))

	edits, notes = deviceplugin.DriverEdits(deviceplugin.DriverEditsOptions{ReadRoot: read, Version: "999.1"})
	require.Equal(t, []*cdispec.Mount{
		{ContainerPath: "/usr/bin/nvidia-smi", HostPath: filepath.Join(read, "usr/bin/nvidia-smi"), Options: []string{"ro", "nosuid", "nodev", "rbind", "rprivate"}},
		{ContainerPath: "/usr/bin/nvidia-cuda-mps-control", HostPath: filepath.Join(read, "usr/bin/nvidia-cuda-mps-control"), Options: []string{"ro", "nosuid", "nodev", "rbind", "rprivate"}},
	}, edits.Mounts, "binaries only: no library of version 999.1")
	require.Empty(t, edits.Hooks)
	require.Len(t, notes, 1)
	require.ErrorContains(t, notes[0], "no driver libraries *.so.999.1")

	edits, notes = deviceplugin.DriverEdits(deviceplugin.DriverEditsOptions{ReadRoot: read})
	require.Empty(t, edits.Mounts)
	require.ErrorContains(t, notes[0], "no driver version")
}
