package deviceplugin_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// mountsUnder are the container paths of the mounts whose host path is
// under root, and of the /dev/null mount nvcdi adds; nvcdi also looks for
// binaries in the host's PATH outside the driver root, which a GPU host
// running the tests has.
func mountsUnder(t *testing.T, root string, ms []*cdispec.Mount) []string {
	t.Helper()
	var out []string
	for _, m := range ms {
		switch {
		case m.HostPath == "/dev/null":
			require.Equal(t, []string{"ro", "nosuid", "nodev", "bind"}, m.Options)
		case strings.HasPrefix(m.HostPath, root+"/"):
			require.Equal(t, filepath.Join(root, m.ContainerPath), m.HostPath)
			require.Equal(t, []string{"ro", "nosuid", "nodev", "rbind", "rprivate"}, m.Options)
		default:
			continue
		}
		out = append(out, m.ContainerPath)
	}
	return out
}

// hooksByName are the hooks' arguments after the hook binary's fixed ones,
// by hook name; each hook runs path at createContainer.
func hooksByName(t *testing.T, hooks []*cdispec.Hook, path string, fixed []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, h := range hooks {
		require.Equal(t, "createContainer", h.HookName)
		require.Equal(t, path, h.Path)
		require.Equal(t, fixed, h.Args[:len(fixed)])
		out[h.Args[len(fixed)]] = h.Args[len(fixed)+1:]
	}
	return out
}

// TestCDISpecHasTheDriver: on a DGX A100 (driver 550.54.15) with a fake
// driver root, the node's CDI spec carries what NVIDIA's nvcdi puts in the
// NVIDIA spec besides device nodes (nvcdi builds it): the driver's
// libraries of that version (vdpau too; not the older version's, not the
// non-executable binary), its binaries and firmware, mounted read-only from
// the driver root, and the nvidia-cdi-hook hooks; the CDI library accepts
// the spec and the device nodes are still ours.
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
			require.ElementsMatch(t, []string{
				lib + "/libcuda.so." + v, lib + "/libnvidia-ml.so." + v, lib + "/libnvidia-ptxjitcompiler.so." + v,
				lib + "/vdpau/libvdpau_nvidia.so." + v,
				"/lib/firmware/nvidia/" + v + "/gsp_ga10x.bin",
				"/usr/bin/nvidia-smi", "/usr/bin/nvidia-cuda-mps-control",
				"/var/run/nvidia-container-devices/void", // nvcdi's guard against a second injection
			}, mountsUnder(t, root, edits.Mounts))

			require.Equal(t, map[string][]string{
				"create-symlinks":                  {"--link", "libcuda.so.1::" + lib + "/libcuda.so"},
				"enable-cuda-compat":               {"--host-driver-version=" + v},
				"update-ldcache":                   {"--folder", lib, "--folder", lib + "/vdpau"},
				"disable-device-node-modification": {},
				"update-application-profile":       {},
			}, hooksByName(t, edits.Hooks, tc.hook[0], tc.hook[1:]))
			require.Subset(t, edits.Env, []string{"NVIDIA_CTK_LIBCUDA_DIR=" + lib, "NVIDIA_VISIBLE_DEVICES=void"})
			// The device nodes stay ours: the control nodes under the
			// driver root, once each.
			var nodes []string
			for _, n := range edits.DeviceNodes {
				nodes = append(nodes, n.Path)
			}
			require.ElementsMatch(t, []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}, nodes)
			require.Len(t, dev.ContainerEdits.DeviceNodes, 1, "GPU 0: /dev/nvidia0")
		})
	}
}

// TestDriverEditsRoots: with the host's driver root seen elsewhere by the
// plugin (containerDriverRoot), files are looked for under the read root
// and mounted from the host root; without a version, without the driver's
// libraries of that version, or with a driver root that is not there,
// there are no driver edits and one note on one line says why.
func TestDriverEditsRoots(t *testing.T) {
	const v = "570.133.20"
	read := t.TempDir()
	driverFiles(t, read, v)
	edits, notes := deviceplugin.DriverEdits(deviceplugin.DriverEditsOptions{ReadRoot: read, HostRoot: "/run/nvidia/driver", Version: v})
	require.Empty(t, notes)
	require.Len(t, mountsUnder(t, "/run/nvidia/driver", edits.Mounts), 8, "4 libraries, 1 firmware, 2 binaries, the void mount")
	for _, m := range edits.Mounts {
		require.NotContains(t, m.HostPath, read, "no host path under the plugin's view of the root")
	}
	require.NoError(t, cdi.ValidateEnv(edits.Env))

	notFile := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notFile, []byte("x"), 0o644))
	for _, tc := range []struct {
		name string
		o    deviceplugin.DriverEditsOptions
		note string
	}{
		{"other version", deviceplugin.DriverEditsOptions{ReadRoot: read, Version: "999.1"}, "no driver libraries *.so.999.1 under " + read},
		{"no version", deviceplugin.DriverEditsOptions{ReadRoot: read}, "no driver version"},
		{"missing root", deviceplugin.DriverEditsOptions{ReadRoot: filepath.Join(read, "nonexistent"), Version: v}, "no driver libraries *.so." + v},
		{"root is a file", deviceplugin.DriverEditsOptions{ReadRoot: notFile, Version: v}, "no driver libraries *.so." + v},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edits, notes := deviceplugin.DriverEdits(tc.o)
			require.Empty(t, edits.Mounts)
			require.Empty(t, edits.Hooks)
			require.Empty(t, edits.Env)
			require.Len(t, notes, 1)
			require.ErrorContains(t, notes[0], tc.note)
			require.NotContains(t, notes[0].Error(), "\n")
		})
	}
}

// ldCache writes root/etc/ld.so.cache in glibc's format, the one ldconfig
// writes ("glibc-ld.so.cache" version "1.1"): a 48-byte header, one 24-byte
// entry per library (flags: ELF, x86-64 64-bit; key and value: offsets of
// the SONAME and the path into the file), then the NUL-terminated strings.
func ldCache(t *testing.T, root string, libs map[string]string) {
	t.Helper()
	type header struct {
		Magic      [17]byte
		Version    [3]byte
		NLibs      uint32
		LenStrings uint32
		Flags      uint8
		_          [3]uint8
		ExtOffset  uint32
		_          [3]uint32
	}
	type entry struct {
		Flags                 int32
		Key, Value, OSVersion uint32
		HWCap                 uint64
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range libs {
			if !yield(k) {
				return
			}
		}
	})
	base := 48 + 24*len(names) // 48 + 24 per entry: where the strings start
	var strs bytes.Buffer
	entries := make([]entry, 0, len(names))
	for _, n := range names {
		key := uint32(base + strs.Len())
		strs.WriteString(n + "\x00")
		value := uint32(base + strs.Len())
		strs.WriteString(libs[n] + "\x00")
		entries = append(entries, entry{Flags: 0x0301, Key: key, Value: value})
	}
	h := header{NLibs: uint32(len(names)), LenStrings: uint32(strs.Len())}
	copy(h.Magic[:], "glibc-ld.so.cache")
	copy(h.Version[:], "1.1")
	var out bytes.Buffer
	require.NoError(t, binary.Write(&out, binary.LittleEndian, h))
	require.NoError(t, binary.Write(&out, binary.LittleEndian, entries))
	require.Equal(t, base, out.Len())
	out.Write(strs.Bytes())
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/ld.so.cache"), out.Bytes(), 0o644))
}

// TestDriverEditsFromLDCache: the driver of an H200 node as the GPU
// Operator's driver container installs it, under /usr/local/nvidia (lib64,
// bin), in no standard library directory: only the driver root's ld cache
// says where the libraries are (the old hand-written walk found none:
// "no driver libraries *.so.580.159.04 under /"). nvcdi finds them through
// the cache; without the cache, or with a cache that is not one, there are
// none and the note says so.
func TestDriverEditsFromLDCache(t *testing.T) {
	const v = "580.159.04"
	const lib = "/usr/local/nvidia/lib64"
	root := t.TempDir()
	write := func(p string, mode os.FileMode) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, p), []byte("x"), mode))
	}
	cache := map[string]string{}
	for _, l := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-nvvm.so"} {
		write(lib+"/"+l+"."+v, 0o644)
		require.NoError(t, os.Symlink(l+"."+v, filepath.Join(root, lib, l+".1")))
		cache[l+".1"] = lib + "/" + l + ".1"
	}
	write("/usr/local/nvidia/bin/nvidia-smi", 0o755)
	// The binaries are found through PATH (the driver container's), under the root.
	t.Setenv("PATH", "/usr/local/nvidia/bin")
	opts := deviceplugin.DriverEditsOptions{ReadRoot: root, Version: v}

	edits, notes := deviceplugin.DriverEdits(opts)
	require.ErrorContains(t, errors.Join(notes...), "no driver libraries *.so."+v, "no ld cache: nothing in the standard directories")
	require.Empty(t, edits.Mounts)

	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/ld.so.cache"), []byte("not a cache, but long enough to be read"), 0o644))
	edits, notes = deviceplugin.DriverEdits(opts)
	require.ErrorContains(t, errors.Join(notes...), "no driver libraries *.so."+v, "a corrupt cache is no cache")
	require.Empty(t, edits.Mounts)

	ldCache(t, root, cache)
	edits, notes = deviceplugin.DriverEdits(opts)
	require.Empty(t, notes)
	require.ElementsMatch(t, []string{
		lib + "/libcuda.so." + v, lib + "/libnvidia-ml.so." + v, lib + "/libnvidia-nvvm.so." + v,
		"/usr/local/nvidia/bin/nvidia-smi",
		"/var/run/nvidia-container-devices/void",
	}, mountsUnder(t, root, edits.Mounts))
	hooks := hooksByName(t, edits.Hooks, deviceplugin.DefaultNvidiaCDIHookPath, []string{"nvidia-cdi-hook"})
	require.Equal(t, []string{"--folder", lib}, hooks["update-ldcache"])
	require.Equal(t, []string{"--link", "libcuda.so.1::" + lib + "/libcuda.so"}, hooks["create-symlinks"])
	require.Contains(t, edits.Env, "NVIDIA_CTK_LIBCUDA_DIR="+lib)
}
