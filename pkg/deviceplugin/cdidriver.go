package deviceplugin

import (
	"fmt"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi"
	transformroot "github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi/transform/root"
	"k8s.io/klog/v2"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
)

// The driver's part of the node's CDI spec comes from NVIDIA's
// nvidia-container-toolkit library (nvcdi), as in NVIDIA's device plugin:
// the libraries of the running driver version (looked up in the standard
// library directories under the driver root, then through the driver
// root's ld cache), its binaries, GSP firmware and IPC sockets, graphics
// configs, and the nvidia-cdi-hook hooks that make them usable in the
// container (library links, CUDA compat, the ld cache, device node
// modification). The device nodes stay ours (cdi.go: our naming per device
// ID strategy, MIG capability nodes).

// DefaultNvidiaCDIHookPath is nvcdi's default hook binary.
const DefaultNvidiaCDIHookPath = "/usr/bin/nvidia-cdi-hook"

// DriverEditsOptions say where the driver is and which hook binary runs.
type DriverEditsOptions struct {
	// ReadRoot is the driver root as the plugin sees it (files are looked
	// for there); HostRoot is the same root on the host (the mounts' host
	// paths). Empty ReadRoot means "/", empty HostRoot means ReadRoot.
	ReadRoot, HostRoot string
	// Version is the driver version (NVML's), e.g. 550.54.15: the
	// libraries are those named *.so.<Version>.
	Version string
	// HookPath is the nvidia-cdi-hook binary on the host (or nvidia-ctk,
	// whose hooks are its "hook" subcommands); empty means the default.
	HookPath string
	// Logger gets nvcdi's messages; the zero Logger discards them.
	Logger klog.Logger
}

// DriverEdits returns the driver's common container edits for the node's
// CDI spec, as nvcdi finds them, and why they are missing when they are
// (no driver version, no driver under the root: the spec then has the
// device nodes only). It never fails the spec.
func DriverEdits(o DriverEditsOptions) (edits cdispec.ContainerEdits, notes []error) {
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
	noDriver := func(err error) []error {
		return []error{fmt.Errorf("CDI spec: no driver libraries *.so.%s under %s (nvcdi: %w): the spec has the device nodes only",
			o.Version, o.ReadRoot, oneLine{err})}
	}
	// nvcdi is another project's code run at start: a panic in it costs
	// the driver's edits, not the plugin.
	defer func() {
		if r := recover(); r != nil {
			edits, notes = cdispec.ContainerEdits{}, noDriver(fmt.Errorf("panic: %v", r))
		}
	}()
	lib, err := nvcdi.New(
		nvcdi.WithMode(nvcdi.ModeNvml),
		nvcdi.WithDriverRoot(o.ReadRoot),
		nvcdi.WithDevRoot(o.ReadRoot),
		nvcdi.WithNVIDIACDIHookPath(o.HookPath),
		nvcdi.WithNvmlLib(driverVersionNVML{version: o.Version}),
		nvcdi.WithLogger(nvcdiLogger{o.Logger.WithName("nvcdi")}),
		// The version is NVML's (the Inventory's); nvsandboxutils would
		// load another library of the driver to ask it again.
		nvcdi.WithFeatureFlags(nvcdi.FeatureDisableNvsandboxUtils),
	)
	if err != nil {
		return edits, noDriver(err)
	}
	common, err := lib.GetCommonEdits()
	if err != nil {
		return edits, noDriver(err)
	}
	if common == nil || common.ContainerEdits == nil {
		return edits, noDriver(fmt.Errorf("no common edits"))
	}
	// Device nodes are the spec's own (cdi.go); the driver's files, hooks
	// and environment are nvcdi's.
	spec := &cdispec.Spec{ContainerEdits: cdispec.ContainerEdits{
		Env: common.Env, Mounts: common.Mounts, Hooks: common.Hooks}}
	// Host paths under the root the plugin reads move to the host's root,
	// as NVIDIA's plugin does for containerDriverRoot.
	t := transformroot.New(transformroot.WithRoot(o.ReadRoot), transformroot.WithTargetRoot(o.HostRoot),
		transformroot.WithRelativeTo("host"))
	if err := t.Transform(spec); err != nil {
		return cdispec.ContainerEdits{}, noDriver(fmt.Errorf("driver root %s as %s: %w", o.ReadRoot, o.HostRoot, err))
	}
	return spec.ContainerEdits, nil
}

// oneLine is err on one line: nvcdi joins the reasons of a failed lookup
// with newlines, and the note is one log line.
type oneLine struct{ err error }

func (e oneLine) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", "; ") }
func (e oneLine) Unwrap() error { return e.err }

// driverVersionNVML is the NVML nvcdi is given: it answers the driver
// version the plugin's NVML reported (pkg/nvml's Inventory), and only
// that. nvcdi's common edits ask NVML for nothing else; any other call
// panics on the nil Interface and DriverEdits recovers.
type driverVersionNVML struct {
	gonvml.Interface
	version string
}

func (driverVersionNVML) Init() gonvml.Return     { return gonvml.SUCCESS }
func (driverVersionNVML) Shutdown() gonvml.Return { return gonvml.SUCCESS }
func (v driverVersionNVML) SystemGetDriverVersion() (string, gonvml.Return) {
	return v.version, gonvml.SUCCESS
}

// nvcdiLogger hands nvcdi's printf-style messages to a klog Logger. nvcdi
// warns about what is merely absent on many nodes (no custom firmware
// path, no graphics configs), so its warnings are verbose messages here;
// what matters reaches the caller as DriverEdits' notes.
type nvcdiLogger struct{ logger klog.Logger }

func (l nvcdiLogger) Errorf(format string, args ...any) {
	l.logger.Error(nil, "nvcdi error", "detail", fmt.Sprintf(format, args...))
}
func (l nvcdiLogger) Warningf(format string, args ...any) {
	l.logger.V(2).Info("nvcdi warning", "detail", fmt.Sprintf(format, args...))
}
func (l nvcdiLogger) Infof(format string, args ...any) {
	l.logger.V(4).Info("nvcdi", "detail", fmt.Sprintf(format, args...))
}
func (l nvcdiLogger) Debugf(format string, args ...any) {
	l.logger.V(5).Info("nvcdi", "detail", fmt.Sprintf(format, args...))
}
func (l nvcdiLogger) Tracef(format string, args ...any) {
	l.logger.V(6).Info("nvcdi", "detail", fmt.Sprintf(format, args...))
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
