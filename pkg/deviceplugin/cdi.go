package deviceplugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"k8s.io/klog/v2"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// DefaultCDISpecDir is where the node's CDI spec is written (the runtimes'
// dynamic spec directory).
const DefaultCDISpecDir = "/var/run/cdi"

// controlDeviceNodes are added to every device's edits (CDI) and device
// specs (passDeviceSpecs) when they exist under the driver root: NVIDIA's
// plugin treats all four as optional, and a node passed that the host
// lacks fails the container's creation.
var controlDeviceNodes = []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"}

// presentControlNodes returns the control nodes that exist under readRoot,
// in controlDeviceNodes' order.
func presentControlNodes(readRoot string) []string {
	var out []string
	for _, p := range controlDeviceNodes {
		if _, err := os.Stat(filepath.Join(readRoot, p)); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// CDISpecOptions say how the node's CDI spec is built.
type CDISpecOptions struct {
	// DriverRoot is where the plugin reads the driver's files (the MIG
	// capability minors, which control nodes exist).
	DriverRoot string
	// DevRoot is the device nodes' root on the host: the spec's host paths.
	DevRoot string
	// DeviceIDStrategy names the spec's devices: uuid or index, as in Allocate.
	DeviceIDStrategy string
	// Driver are the driver's common edits (DriverEdits, from nvcdi:
	// libraries, binaries, firmware, hooks), added to the spec's.
	Driver cdispec.ContainerEdits
}

// BuildCDISpec returns the node's CDI spec (kind k8s.device-plugin.nvidia.com/gpu):
// one device per name the runtime can be given (a GPU, a MIG device; a
// replica is its GPU or MIG device), named per the ID strategy, plus
// "all", each with its device nodes (/dev/nvidia<minor>, for MIG the
// nvidia-caps nodes of its GPU and compute instance) at their host paths
// under the dev root.
func BuildCDISpec(resources []sharing.Resource, o CDISpecOptions) (*cdispec.Spec, error) {
	readRoot := o.DriverRoot
	if readRoot == "" {
		readRoot = "/"
	}
	hostRoot := o.DevRoot
	if hostRoot == "" {
		hostRoot = readRoot
	}
	node := func(p string) *cdispec.DeviceNode {
		return &cdispec.DeviceNode{Path: p, HostPath: filepath.Join(hostRoot, p)}
	}
	var minors nvml.MIGMinors
	byName := map[string]*cdispec.Device{}
	var order []string
	var allPaths []string
	for _, r := range resources {
		for i := range r.Devices {
			d := &r.Devices[i]
			name := runtimeID(d, o.DeviceIDStrategy)
			if _, seen := byName[name]; seen {
				continue
			}
			paths := []string{fmt.Sprintf("/dev/nvidia%d", d.GPUMinor)}
			if d.MIG {
				if minors == nil {
					var err error
					if minors, err = nvml.ReadMIGMinors(readRoot); err != nil {
						return nil, fmt.Errorf("CDI spec for MIG device %s: %w", d.UUID, err)
					}
				}
				caps, err := minors.CapPaths(d.GPUMinor, d.GIID, d.CIID)
				if err != nil {
					return nil, fmt.Errorf("CDI spec for MIG device %s: %w", d.UUID, err)
				}
				paths = append(paths, caps...)
			}
			dev := &cdispec.Device{Name: name}
			for _, p := range paths {
				dev.ContainerEdits.DeviceNodes = append(dev.ContainerEdits.DeviceNodes, node(p))
				if !slices.Contains(allPaths, p) {
					allPaths = append(allPaths, p)
				}
			}
			byName[name] = dev
			order = append(order, name)
		}
	}
	spec := &cdispec.Spec{Version: cdispec.CurrentVersion, Kind: CDIVendor + "/" + CDIClass}
	for _, name := range order {
		spec.Devices = append(spec.Devices, *byName[name])
	}
	if len(order) > 0 {
		all := cdispec.Device{Name: "all"}
		for _, p := range allPaths {
			all.ContainerEdits.DeviceNodes = append(all.ContainerEdits.DeviceNodes, node(p))
		}
		spec.Devices = append(spec.Devices, all)
	}
	for _, p := range presentControlNodes(readRoot) {
		spec.ContainerEdits.DeviceNodes = append(spec.ContainerEdits.DeviceNodes, node(p))
	}
	spec.ContainerEdits.Env = append(spec.ContainerEdits.Env, o.Driver.Env...)
	spec.ContainerEdits.Mounts = append(spec.ContainerEdits.Mounts, o.Driver.Mounts...)
	spec.ContainerEdits.Hooks = append(spec.ContainerEdits.Hooks, o.Driver.Hooks...)
	v, err := cdi.MinimumRequiredVersion(spec)
	if err != nil {
		return nil, fmt.Errorf("CDI spec version: %w", err)
	}
	spec.Version = v
	return spec, nil
}

// writeCDISpecs writes the node's CDI specs into dir: the GPUs' (with the
// driver's edits; notes say what those lack) and the IMEX channels' (or
// removes the one an earlier config left).
func writeCDISpecs(logger klog.Logger, dir string, c *configv1.Config, driverVersion string, resources []sharing.Resource, popts PluginOptions) (notes []error, err error) {
	driver, notes := DriverEdits(DriverEditsOptions{ReadRoot: popts.DriverRoot, HostRoot: deref(c.Flags.NvidiaDriverRoot),
		Version: driverVersion, HookPath: cdiHookPath(c.Flags.Plugin), Logger: logger})
	spec, err := BuildCDISpec(resources, CDISpecOptions{DriverRoot: popts.DriverRoot, DevRoot: popts.DevRoot,
		DeviceIDStrategy: popts.DeviceIDStrategy, Driver: driver})
	if err != nil {
		return nil, err
	}
	if _, err := WriteCDISpec(dir, spec); err != nil {
		return nil, err
	}
	imexSpec, err := BuildIMEXCDISpec(popts.IMEXChannels)
	switch {
	case err != nil:
		return nil, err
	case imexSpec == nil:
		err = removeCDISpec(dir, CDIVendor+"/"+CDIIMEXClass)
	default:
		_, err = WriteCDISpec(dir, imexSpec)
	}
	return notes, err
}

// cdiSpecExt is the extension of the spec files: NVIDIA's plugin writes
// <vendor>-<class>.json, and gpupack writes the same file so that each
// plugin replaces the other's (two files of one kind in one directory
// make their shared devices conflicts, which the CDI cache drops).
// staleCDISpecExt is the one an earlier gpupack wrote.
const (
	cdiSpecExt      = ".json"
	staleCDISpecExt = ".yaml"
)

// removeCDISpec removes the spec of kind that WriteCDISpec (or NVIDIA's
// plugin, or an earlier gpupack) would have written into dir, if any.
func removeCDISpec(dir, kind string) error {
	name, err := cdi.GenerateNameForSpec(&cdispec.Spec{Kind: kind})
	if err != nil {
		return fmt.Errorf("CDI spec name: %w", err)
	}
	for _, ext := range []string{cdiSpecExt, staleCDISpecExt} {
		if err := os.Remove(filepath.Join(dir, name+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the CDI spec of %s: %w", kind, err)
		}
	}
	return nil
}

// WriteCDISpec writes spec into dir through the CDI library, which
// validates it first; the file is named after its kind as NVIDIA's plugin
// names it (<vendor>-<class>.json, replacing NVIDIA's), and an earlier
// gpupack's <vendor>-<class>.yaml is removed.
func WriteCDISpec(dir string, spec *cdispec.Spec) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("CDI spec dir: %w", err)
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dir), cdi.WithAutoRefresh(false))
	if err != nil {
		return "", fmt.Errorf("CDI cache: %w", err)
	}
	name, err := cdi.GenerateNameForSpec(spec)
	if err != nil {
		return "", fmt.Errorf("CDI spec name: %w", err)
	}
	if err := cache.WriteSpec(spec, name+cdiSpecExt); err != nil {
		return "", fmt.Errorf("writing CDI spec: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, name+staleCDISpecExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("removing the earlier CDI spec of %s: %w", spec.Kind, err)
	}
	return filepath.Join(dir, name+cdiSpecExt), nil
}
