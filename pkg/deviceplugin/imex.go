package deviceplugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// IMEX channels (NVIDIA's imex section): the driver's channel device nodes
// that fabric-attached GPUs (GB200 NVL) need for memory export across
// nodes. NVIDIA's plugin gives every container that gets a device the
// configured channels.
const (
	// IMEXChannelsDir holds the channel nodes, channel<N>.
	IMEXChannelsDir = "/dev/nvidia-caps-imex-channels"
	// EnvIMEXChannels lists the channel IDs for the container runtime
	// (envvar strategy).
	EnvIMEXChannels = "NVIDIA_IMEX_CHANNELS"
	// CDIIMEXClass is the CDI class of the channels:
	// k8s.device-plugin.nvidia.com/imex-channel=<id>.
	CDIIMEXClass = "imex-channel"
)

// IMEXChannel is one IMEX channel given to containers.
type IMEXChannel struct {
	// ID is the channel number, as NVIDIA_IMEX_CHANNELS lists it.
	ID string
	// Path is the node in the container, HostPath on the host (under the
	// dev root).
	Path, HostPath string
}

// IMEXChannels resolves imex.channelIDs as NVIDIA's plugin does at start: a
// channel is given to containers when its character device exists, under
// the driver root as the plugin reads it or at its own path (a management
// container that got it by CDI); a missing one is an error when required,
// else skipped (and said in skipped, for the log).
func IMEXChannels(ids []int, required bool, readRoot, hostRoot string) (channels []IMEXChannel, skipped []error, err error) {
	if readRoot == "" {
		readRoot = "/"
	}
	if hostRoot == "" {
		hostRoot = readRoot
	}
	for _, id := range ids {
		c := IMEXChannel{ID: strconv.Itoa(id), Path: path.Join(IMEXChannelsDir, "channel"+strconv.Itoa(id))}
		c.HostPath = filepath.Join(hostRoot, c.Path)
		if err := charDeviceAt(filepath.Join(readRoot, c.Path), c.Path); err != nil {
			if required {
				return nil, nil, fmt.Errorf("imex.required: IMEX channel %s: %w", c.Path, err)
			}
			skipped = append(skipped, fmt.Errorf("IMEX channel %s not given to containers: %w", c.Path, err))
			continue
		}
		channels = append(channels, c)
	}
	return channels, skipped, nil
}

// charDeviceAt reports nil when one of paths is a character device.
func charDeviceAt(paths ...string) error {
	var errs []error
	for _, p := range paths {
		info, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Errorf("%s does not exist", p))
		case err != nil:
			errs = append(errs, err)
		case info.Mode()&fs.ModeCharDevice == 0:
			errs = append(errs, fmt.Errorf("%s is not a character device", p))
		default:
			return nil
		}
	}
	return errors.Join(errs...)
}

// imexCDINames are the qualified CDI names of the channels.
func imexCDINames(channels []IMEXChannel) []string {
	names := make([]string, 0, len(channels))
	for _, c := range channels {
		names = append(names, parser.QualifiedName(CDIVendor, CDIIMEXClass, c.ID))
	}
	return names
}

// imexEnv sets NVIDIA_IMEX_CHANNELS (envvar strategy).
func imexEnv(resp *pluginapi.ContainerAllocateResponse, channels []IMEXChannel) {
	if len(channels) == 0 {
		return
	}
	ids := make([]string, 0, len(channels))
	for _, c := range channels {
		ids = append(ids, c.ID)
	}
	setEnv(resp, EnvIMEXChannels, strings.Join(ids, ","))
}

// imexMounts adds a /dev/null mount per channel under
// <VolumeMountsRoot>/imex (volume-mounts strategy).
func imexMounts(resp *pluginapi.ContainerAllocateResponse, channels []IMEXChannel) {
	for _, c := range channels {
		resp.Mounts = append(resp.Mounts, &pluginapi.Mount{
			ContainerPath: path.Join(VolumeMountsRoot, "imex", c.ID), HostPath: volumeMountsHostPath})
	}
}

// imexDeviceSpecs are the channels' device nodes (passDeviceSpecs).
func imexDeviceSpecs(channels []IMEXChannel) []*pluginapi.DeviceSpec {
	specs := make([]*pluginapi.DeviceSpec, 0, len(channels))
	for _, c := range channels {
		specs = append(specs, &pluginapi.DeviceSpec{ContainerPath: c.Path, HostPath: c.HostPath, Permissions: "rw"})
	}
	return specs
}

// BuildIMEXCDISpec returns the CDI spec of the channels (kind
// k8s.device-plugin.nvidia.com/imex-channel, one device per channel named by
// its ID), or nil when there are none.
func BuildIMEXCDISpec(channels []IMEXChannel) (*cdispec.Spec, error) {
	if len(channels) == 0 {
		return nil, nil
	}
	spec := &cdispec.Spec{Version: cdispec.CurrentVersion, Kind: CDIVendor + "/" + CDIIMEXClass}
	for _, c := range channels {
		spec.Devices = append(spec.Devices, cdispec.Device{Name: c.ID, ContainerEdits: cdispec.ContainerEdits{
			DeviceNodes: []*cdispec.DeviceNode{{Path: c.Path, HostPath: c.HostPath}}}})
	}
	v, err := cdi.MinimumRequiredVersion(spec)
	if err != nil {
		return nil, fmt.Errorf("IMEX CDI spec version: %w", err)
	}
	spec.Version = v
	return spec, nil
}
