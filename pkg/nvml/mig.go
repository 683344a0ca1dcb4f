package nvml

import (
	"fmt"

	nvlibdevice "github.com/NVIDIA/go-nvlib/pkg/nvlib/device"
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpupack/gpupack/pkg/deviceid"
)

// maxMIGDevices bounds GetMaxMigDeviceCount (7 on A100/H100/B200).
const maxMIGDevices = 64

// readMIG lists the MIG devices of one MIG-enabled GPU.
func (l *lib) readMIG(g *GPU, parent gonvml.Device) ([]MIGDevice, error) {
	name := gpuName(g.Index, g.UUID)
	count, ret := parent.GetMaxMigDeviceCount()
	if ret != gonvml.SUCCESS {
		return nil, callError(name, "GetMaxMigDeviceCount", ret)
	}
	if count < 0 || count > maxMIGDevices {
		return nil, fmt.Errorf("GPU %s: GetMaxMigDeviceCount: implausible count %d", name, count)
	}
	var out []MIGDevice
	for k := range count {
		mig, ret := parent.GetMigDeviceHandleByIndex(k)
		if ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INVALID_ARGUMENT {
			continue // an empty slot
		}
		if ret != gonvml.SUCCESS {
			return nil, callError(name, fmt.Sprintf("GetMigDeviceHandleByIndex(%d)", k), ret)
		}
		if mig == nil {
			return nil, fmt.Errorf("GPU %s: GetMigDeviceHandleByIndex(%d) returned no handle", name, k)
		}
		d, err := l.readMIGDevice(g, parent, mig, k)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// readMIGDevice reads one MIG device: identity, instance ids, placement and
// the NVIDIA profile name.
func (l *lib) readMIGDevice(g *GPU, parent, mig gonvml.Device, k int) (MIGDevice, error) {
	name := fmt.Sprintf("%s MIG device %d", gpuName(g.Index, g.UUID), k)
	d := MIGDevice{ParentIndex: g.Index, ParentUUID: g.UUID}
	var ret gonvml.Return
	if d.UUID, ret = mig.GetUUID(); ret != gonvml.SUCCESS {
		return d, callError(name, "GetUUID", ret)
	}
	if err := deviceid.ValidateUUID(d.UUID); err != nil {
		// It would name the device to the kubelet: its GPU is degraded.
		return d, fmt.Errorf("%s: GetUUID: %w", name, err)
	}
	if d.GIID, ret = mig.GetGpuInstanceId(); ret != gonvml.SUCCESS {
		return d, callError(name, "GetGpuInstanceId", ret)
	}
	if d.CIID, ret = mig.GetComputeInstanceId(); ret != gonvml.SUCCESS {
		return d, callError(name, "GetComputeInstanceId", ret)
	}
	attrs, ret := mig.GetAttributes()
	if ret != gonvml.SUCCESS {
		return d, callError(name, "GetAttributes", ret)
	}
	d.MemoryMiB = attrs.MemorySizeMB
	d.Attributes = MIGAttributes{
		Multiprocessors: attrs.MultiprocessorCount,
		CopyEngines:     attrs.SharedCopyEngineCount,
		Decoders:        attrs.SharedDecoderCount,
		Encoders:        attrs.SharedEncoderCount,
		JPEGs:           attrs.SharedJpegCount,
		OFAs:            attrs.SharedOfaCount,
		GISlices:        attrs.GpuInstanceSliceCount,
		CISlices:        attrs.ComputeInstanceSliceCount,
	}
	gi, ret := parent.GetGpuInstanceById(d.GIID)
	if ret != gonvml.SUCCESS {
		return d, callError(name, fmt.Sprintf("GetGpuInstanceById(%d)", d.GIID), ret)
	}
	giInfo, ret := gi.GetInfo()
	if ret != gonvml.SUCCESS {
		return d, callError(name, "GpuInstance.GetInfo", ret)
	}
	ci, ret := gi.GetComputeInstanceById(d.CIID)
	if ret != gonvml.SUCCESS {
		return d, callError(name, fmt.Sprintf("GetComputeInstanceById(%d)", d.CIID), ret)
	}
	ciInfo, ret := ci.GetInfo()
	if ret != gonvml.SUCCESS {
		return d, callError(name, "ComputeInstance.GetInfo", ret)
	}
	d.Start, d.Size = int(giInfo.Placement.Start), int(giInfo.Placement.Size)
	profile, err := ProfileName(int(giInfo.ProfileId), int(ciInfo.ProfileId), attrs.MemorySizeMB, g.MemoryMiB)
	if err != nil {
		return d, fmt.Errorf("%s: %w", name, err)
	}
	d.Profile = profile
	return d, nil
}

// ProfileName is NVIDIA's name of a MIG profile ("1g.5gb", "1c.2g.10gb",
// "1g.5gb+me"), computed by go-nvlib from the GPU and compute instance
// profile IDs, the instance's memory and the parent's memory.
func ProfileName(giProfileID, ciProfileID int, migMemoryMiB, parentMemoryMiB uint64) (string, error) {
	if parentMemoryMiB == 0 {
		return "", fmt.Errorf("MIG profile: parent memory size is 0")
	}
	p, err := nvlibdevice.New(nil).NewMigProfile(giProfileID, ciProfileID,
		gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, migMemoryMiB, parentMemoryMiB*1024*1024)
	if err != nil {
		return "", fmt.Errorf("MIG profile (GI profile %d, CI profile %d): %w", giProfileID, ciProfileID, err)
	}
	return p.String(), nil
}
