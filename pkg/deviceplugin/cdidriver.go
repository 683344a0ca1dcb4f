package deviceplugin

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	cdispec "tags.cncf.io/container-device-interface/specs-go"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
)

// The driver's part of the node's CDI spec, as NVIDIA's nvidia-container-
// toolkit (nvcdi) writes it for the NVIDIA spec: the driver's libraries of
// the running version, its binaries and GSP firmware mounted read-only from
// the driver root, and the nvidia-cdi-hook hooks that make them usable in
// the container (the libraries' symlinks, the ld cache). Written from
// nvcdi's behaviour; nvcdi itself is not a dependency (see
// docs/architecture.md).

// DefaultNvidiaCDIHookPath is nvcdi's default hook binary.
const DefaultNvidiaCDIHookPath = "/usr/bin/nvidia-cdi-hook"

// driverLibDirs are where the driver's libraries are looked for under the
// driver root (nvcdi's default search path, without an ld cache), each with
// its vdpau subdirectory.
var driverLibDirs = []string{
	"/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib", "/lib",
}

// driverBinDirs are where the driver's binaries are looked for.
var driverBinDirs = []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"}

// driverBinaries are the driver's tools nvcdi mounts into containers.
var driverBinaries = []string{
	"nvidia-smi", "nvidia-debugdump", "nvidia-persistenced",
	"nvidia-cuda-mps-control", "nvidia-cuda-mps-server", "nvidia-imex", "nvidia-imex-ctl",
}

// driverMountOptions are nvcdi's options for every driver file mount.
var driverMountOptions = []string{"ro", "nosuid", "nodev", "rbind", "rprivate"}

// DriverEditsOptions say where the driver is and which hook binary runs.
type DriverEditsOptions struct {
	// ReadRoot is the driver root as the plugin sees it (files are looked
	// for there); HostRoot is the same root on the host (the mounts' host
	// paths). Empty HostRoot means ReadRoot.
	ReadRoot, HostRoot string
	// Version is the driver version (NVML's), e.g. 550.54.15: the
	// libraries are those named *.so.<Version>.
	Version string
	// HookPath is the nvidia-cdi-hook binary on the host (or nvidia-ctk,
	// whose hooks are its "hook" subcommands); empty means the default.
	HookPath string
}

// DriverEdits returns the driver's common container edits for the node's
// CDI spec, and why some are missing (no driver version, no libraries:
// the spec then has the device nodes only).
func DriverEdits(o DriverEditsOptions) (cdispec.ContainerEdits, []error) {
	var edits cdispec.ContainerEdits
	if o.ReadRoot == "" {
		o.ReadRoot = "/"
	}
	if o.HostRoot == "" {
		o.HostRoot = o.ReadRoot
	}
	if o.HookPath == "" {
		o.HookPath = DefaultNvidiaCDIHookPath
	}
	if o.Version == "" {
		return edits, []error{fmt.Errorf("CDI spec: no driver version: the driver's libraries are left out")}
	}
	libs := findFiles(o.ReadRoot, libDirsWithVdpau(), func(name string) bool { return strings.HasSuffix(name, ".so."+o.Version) })
	var notes []error
	if len(libs) == 0 {
		notes = append(notes, fmt.Errorf("CDI spec: no driver libraries *.so.%s under %s: the spec has the device nodes only", o.Version, o.ReadRoot))
	}
	firmware := findFiles(o.ReadRoot, []string{path.Join("/lib/firmware/nvidia", o.Version)}, func(name string) bool {
		return strings.HasSuffix(name, ".bin") && (strings.HasPrefix(name, "gsp") || strings.HasPrefix(name, "ucodes"))
	})
	var bins []string
	for _, b := range driverBinaries {
		if p, ok := findExecutable(o.ReadRoot, b); ok {
			bins = append(bins, p)
		}
	}
	for _, p := range slices.Concat(libs, firmware, bins) {
		edits.Mounts = append(edits.Mounts, &cdispec.Mount{
			ContainerPath: p, HostPath: filepath.Join(o.HostRoot, p), Options: driverMountOptions})
	}
	if len(libs) == 0 {
		return edits, notes
	}
	h := hookCLI{path: o.HookPath}
	if links := libraryLinks(o.ReadRoot, libs, o.Version); len(links) > 0 {
		edits.Hooks = append(edits.Hooks, h.hook("create-symlinks", "--link", links...))
	}
	edits.Hooks = append(edits.Hooks, h.hook("update-ldcache", "--folder", uniqueDirs(libs)...))
	edits.Hooks = append(edits.Hooks, h.hook("disable-device-node-modification", ""))
	var cudaDirs []string
	for _, l := range libs {
		if path.Base(l) == "libcuda.so."+o.Version {
			cudaDirs = append(cudaDirs, path.Dir(l))
		}
	}
	if len(cudaDirs) > 0 {
		edits.Env = append(edits.Env, "NVIDIA_CTK_LIBCUDA_DIR="+strings.Join(cudaDirs, string(filepath.ListSeparator)))
	}
	return edits, notes
}

func libDirsWithVdpau() []string {
	var dirs []string
	for _, d := range driverLibDirs {
		dirs = append(dirs, d, path.Join(d, "vdpau"))
	}
	return dirs
}

// findFiles lists, in dirs under root, the files (or links to files) whose
// names match, as container paths; a file seen through two directories (a
// /lib -> /usr/lib link) is listed once.
func findFiles(root string, dirs []string, match func(name string) bool) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range dirs {
		entries, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !match(e.Name()) {
				continue
			}
			p := path.Join(d, e.Name())
			real, err := filepath.EvalSymlinks(filepath.Join(root, p))
			if err != nil || seen[real] {
				continue
			}
			if info, err := os.Stat(real); err != nil || !info.Mode().IsRegular() {
				continue
			}
			seen[real] = true
			out = append(out, p)
		}
	}
	return out
}

// findExecutable returns the container path of the first executable file
// named name in the binary directories under root.
func findExecutable(root, name string) (string, bool) {
	for _, d := range driverBinDirs {
		p := path.Join(d, name)
		info, err := os.Stat(filepath.Join(root, p))
		if err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// libraryLinks are the symlinks the container needs beside the versioned
// libraries, as target::link: libcuda.so -> libcuda.so.1 always (many
// programs dlopen libcuda.so), and the links the host has to each library
// (its SONAME link, libX.so.1 -> libX.so.<version>, and libX.so -> libX.so.1).
func libraryLinks(root string, libs []string, version string) []string {
	var links []string
	add := func(l string) {
		if !slices.Contains(links, l) {
			links = append(links, l)
		}
	}
	for _, lib := range libs {
		dir, name := path.Split(lib)
		if name == "libcuda.so."+version {
			add("libcuda.so.1::" + path.Join(dir, "libcuda.so"))
		}
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			continue
		}
		// One level (libX.so.1 -> libX.so.<version>), then the links to
		// those (libX.so -> libX.so.1).
		targets := []string{name}
		for range 2 {
			var next []string
			for _, e := range entries {
				if e.Type()&fs.ModeSymlink == 0 {
					continue
				}
				t, err := os.Readlink(filepath.Join(root, dir, e.Name()))
				if err != nil || !slices.Contains(targets, path.Base(t)) || e.Name() == path.Base(t) {
					continue
				}
				add(path.Base(t) + "::" + path.Join(dir, e.Name()))
				next = append(next, e.Name())
			}
			targets = next
		}
	}
	return links
}

func uniqueDirs(files []string) []string {
	var dirs []string
	for _, f := range files {
		if d := path.Dir(f); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// cdiHookPath is the hook binary the spec's hooks run: nvidiaCDIHookPath,
// else an nvidiaCTKPath other than its default (NVIDIA's older name: the
// hooks are then nvidia-ctk's), else nvidia-cdi-hook's default path.
func cdiHookPath(pf *configv1.PluginFlags) string {
	switch {
	case pf == nil:
	case pf.NvidiaCDIHookPath != nil && *pf.NvidiaCDIHookPath != "":
		return *pf.NvidiaCDIHookPath
	case pf.NvidiaCTKPath != nil && *pf.NvidiaCTKPath != "" && *pf.NvidiaCTKPath != configv1.DefaultNvidiaCTKPath:
		return *pf.NvidiaCTKPath
	}
	return DefaultNvidiaCDIHookPath
}

// hookCLI builds nvcdi's createContainer hooks for one hook binary:
// nvidia-cdi-hook <name> <args>, or nvidia-ctk hook <name> <args>.
type hookCLI struct{ path string }

// hook is the hook name with each value after flag ("" for none).
func (h hookCLI) hook(name, flag string, values ...string) *cdispec.Hook {
	args := []string{path.Base(h.path)}
	if path.Base(h.path) == "nvidia-ctk" {
		args = append(args, "hook")
	}
	args = append(args, name)
	for _, v := range values {
		args = append(args, flag, v)
	}
	return &cdispec.Hook{HookName: "createContainer", Path: h.path, Args: args, Env: []string{"NVIDIA_CTK_DEBUG=false"}}
}
