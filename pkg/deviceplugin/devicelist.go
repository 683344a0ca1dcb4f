package deviceplugin

import (
	"maps"
	"path"
	"slices"
	"strconv"

	"github.com/google/uuid"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// The device list strategies, as NVIDIA's device plugin defines them.
const (
	// VolumeMountsRoot is where the volume-mounts strategy lists devices in
	// the container: one /dev/null mount per device, named by its ID.
	VolumeMountsRoot = "/var/run/nvidia-container-devices"
	// volumeMountsHostPath is what each of those mounts shows.
	volumeMountsHostPath = "/dev/null"
	// CDIVendor and CDIClass name the devices of the spec the plugin writes
	// (NVIDIA's plugin uses the same, so pods and runtimes see no change).
	CDIVendor = "k8s.device-plugin.nvidia.com"
	CDIClass  = "gpu"
	// cdiAnnotationPlugin is the plugin name in cdi-annotations keys.
	cdiAnnotationPlugin = "nvidia-device-plugin"
)

// runtimeID is the name of d for the container runtime under the device ID
// strategy: its UUID (a replica's GPU or MIG UUID) or its index ("<gpu>"
// for a GPU, "<gpu>:<mig>" for a MIG device).
func runtimeID(d *sharing.Device, strategy string) string {
	if strategy != configv1.DeviceIDStrategyIndex {
		return d.UUID
	}
	if d.MIG {
		return strconv.Itoa(d.GPUIndex) + ":" + strconv.Itoa(d.MIGIndex)
	}
	return strconv.Itoa(d.GPUIndex)
}

// CDIDeviceName is the fully qualified CDI name of a device named id.
func CDIDeviceName(id string) string { return parser.QualifiedName(CDIVendor, CDIClass, id) }

// deviceList fills resp with the device list per the strategies: the
// NVIDIA_VISIBLE_DEVICES variable (envvar), /dev/null mounts named by ID
// (volume-mounts), CDI annotations (cdi-annotations) or CDI device names
// in the response (cdi-cri); several strategies can be in force together.
func (p *Plugin) deviceList(resp *pluginapi.ContainerAllocateResponse, devs []*sharing.Device) error {
	ids := make([]string, 0, len(devs))
	for _, d := range devs {
		if id := runtimeID(d, p.opts.DeviceIDStrategy); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	strategies := p.opts.DeviceListStrategies
	if len(strategies) == 0 {
		strategies = []string{configv1.DeviceListStrategyEnvvar}
	}
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		names = append(names, CDIDeviceName(id))
	}
	names = append(names, imexCDINames(p.opts.IMEXChannels)...)
	// In NVIDIA's order, whatever the list's: volume-mounts replaces the
	// variable envvar sets.
	for _, s := range []string{configv1.DeviceListStrategyCDIAnnotations, configv1.DeviceListStrategyCDICRI,
		configv1.DeviceListStrategyEnvvar, configv1.DeviceListStrategyVolumeMounts} {
		if !slices.Contains(strategies, s) {
			continue
		}
		switch s {
		case configv1.DeviceListStrategyEnvvar:
			setEnv(resp, EnvVisibleDevices, joinIDs(ids))
			imexEnv(resp, p.opts.IMEXChannels)
		case configv1.DeviceListStrategyVolumeMounts:
			setEnv(resp, EnvVisibleDevices, VolumeMountsRoot)
			for _, id := range ids {
				resp.Mounts = append(resp.Mounts, &pluginapi.Mount{
					ContainerPath: path.Join(VolumeMountsRoot, id), HostPath: volumeMountsHostPath})
			}
			imexMounts(resp, p.opts.IMEXChannels)
		case configv1.DeviceListStrategyCDIAnnotations:
			ann, err := cdi.UpdateAnnotations(map[string]string{}, cdiAnnotationPlugin, uuid.NewString(), names)
			if err != nil {
				return err
			}
			prefix := p.opts.CDIAnnotationPrefix
			if resp.Annotations == nil {
				resp.Annotations = map[string]string{}
			}
			for k, v := range ann {
				if prefix != "" && prefix != cdi.AnnotationPrefix {
					k = prefix + k[len(cdi.AnnotationPrefix):]
				}
				resp.Annotations[k] = v
			}
		case configv1.DeviceListStrategyCDICRI:
			for _, n := range names {
				resp.CdiDevices = append(resp.CdiDevices, &pluginapi.CDIDevice{Name: n})
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.opts.Envs)) {
		setEnv(resp, k, p.opts.Envs[k])
	}
	return nil
}

func setEnv(resp *pluginapi.ContainerAllocateResponse, k, v string) {
	if resp.Envs == nil {
		resp.Envs = map[string]string{}
	}
	resp.Envs[k] = v
}

func joinIDs(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += id
	}
	return out
}
