package nvml

import (
	"errors"
	"fmt"
	"slices"

	nvlibdevice "github.com/NVIDIA/go-nvlib/pkg/nvlib/device"
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpupack/gpupack/pkg/deviceid"
)

// maxMIGDevices bounds GetMaxMigDeviceCount (7 on A100/H100/B200).
const maxMIGDevices = 64

// readMIG lists the MIG devices of one MIG-enabled GPU.
func (l *lib) readMIG(g *GPU, parent gonvml.Device) ([]MIGDevice, error) {
	name := gpuName(g.Index, g.UUID)
	var out []MIGDevice
	err := eachMIG(name, parent, func(k int, mig gonvml.Device) error {
		d, err := l.readMIGDevice(g, parent, mig, k)
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// eachMIG calls f with each MIG device handle of a MIG-enabled GPU (name
// for errors) and its slot, skipping empty slots, until f fails.
func eachMIG(name string, parent gonvml.Device, f func(k int, mig gonvml.Device) error) error {
	count, ret := parent.GetMaxMigDeviceCount()
	if ret != gonvml.SUCCESS {
		return callError(name, "GetMaxMigDeviceCount", ret)
	}
	if count < 0 || count > maxMIGDevices {
		return fmt.Errorf("GPU %s: GetMaxMigDeviceCount: implausible count %d", name, count)
	}
	for k := range count {
		mig, ret := parent.GetMigDeviceHandleByIndex(k)
		if ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INVALID_ARGUMENT {
			continue // an empty slot
		}
		if ret != gonvml.SUCCESS {
			return callError(name, fmt.Sprintf("GetMigDeviceHandleByIndex(%d)", k), ret)
		}
		if mig == nil {
			return fmt.Errorf("GPU %s: GetMigDeviceHandleByIndex(%d) returned no handle", name, k)
		}
		if err := f(k, mig); err != nil {
			return err
		}
	}
	return nil
}

// ErrMIGChanged is wrapped by CheckMIG's error when a GPU's MIG mode or MIG
// devices are no longer those discovery read.
var ErrMIGChanged = errors.New("MIG devices changed since discovery")

// MIGChange is CheckMIG's error for a GPU whose MIG mode or MIG devices
// changed; it wraps ErrMIGChanged. Gone are the UUIDs of the GPU's MIG
// devices as discovered that it no longer has: every one of them when its
// MIG mode changed. Mode is set when its MIG mode changed: the GPU is no
// longer usable as discovered (served whole, it is now in MIG mode).
type MIGChange struct {
	GPU  int
	Gone []string
	Mode bool
	msg  string
}

func (e *MIGChange) Error() string { return e.msg }
func (e *MIGChange) Unwrap() error { return ErrMIGChanged }

// migChange is the MIGChange of GPU g, described by what (with the GPU's name first).
func migChange(g *GPU, gone []string, what string) *MIGChange {
	return &MIGChange{GPU: g.Index, Gone: gone, msg: fmt.Sprintf("GPU %s: %s: %v", gpuName(g.Index, g.UUID), what, ErrMIGChanged)}
}

// CheckMIG compares the MIG mode and the MIG device UUIDs of inv's
// MIG-capable GPUs (those read in full) with the driver's now. It returns
// nil when every GPU is as discovered; when some differ, a *MIGChange for
// each of them (its MIG mode, or the MIG UUIDs gone and new), joined: every
// GPU's, so that the devices gone from all of them are known (MIGChanges);
// else the NVML errors that kept it from reading GPUs (a lost GPU:
// ErrGPULost), joined.
func (l *lib) CheckMIG(inv *Inventory) error {
	return l.withSession(l.logger, func() error { return l.checkMIG(inv) })
}

// checkMIG is CheckMIG on the session held.
func (l *lib) checkMIG(inv *Inventory) error {
	var changes, errs []error
	for i := range inv.GPUs {
		g := &inv.GPUs[i]
		if g.Degraded != nil || !g.MIGCapable {
			continue
		}
		err := l.checkMIGOf(g, inv.MIG)
		switch {
		case errors.Is(err, ErrMIGChanged):
			changes = append(changes, err)
		case err != nil:
			errs = append(errs, err)
		}
	}
	if len(changes) > 0 {
		return errors.Join(changes...)
	}
	return errors.Join(errs...)
}

// MIGChanges are the MIGChanges that err holds (CheckMIG joins one per GPU
// that changed).
func MIGChanges(err error) []*MIGChange {
	switch e := err.(type) {
	case *MIGChange:
		return []*MIGChange{e}
	case interface{ Unwrap() []error }:
		var out []*MIGChange
		for _, inner := range e.Unwrap() {
			out = append(out, MIGChanges(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		return MIGChanges(e.Unwrap())
	}
	return nil
}

// checkMIGOf is CheckMIG for one GPU g; discovered are the node's MIG
// devices as discovery read them.
func (l *lib) checkMIGOf(g *GPU, discovered []MIGDevice) error {
	name := gpuName(g.Index, g.UUID)
	dev, ret := l.iface.DeviceGetHandleByUUID(g.UUID)
	if ret != gonvml.SUCCESS {
		return callError(name, "DeviceGetHandleByUUID", ret)
	}
	if dev == nil {
		return fmt.Errorf("GPU %s: DeviceGetHandleByUUID returned no handle", name)
	}
	current, _, ret := dev.GetMigMode()
	if ret != gonvml.SUCCESS {
		return callError(name, "GetMigMode", ret)
	}
	if enabled := current == gonvml.DEVICE_MIG_ENABLE; enabled != g.MIGEnabled {
		change := migChange(g, migUUIDsOf(g.Index, discovered), "MIG mode is now "+map[bool]string{true: "enabled", false: "disabled"}[enabled])
		change.Mode = true
		return change
	}
	if !g.MIGEnabled {
		return nil
	}
	var now []string
	err := eachMIG(name, dev, func(k int, mig gonvml.Device) error {
		id, ret := mig.GetUUID()
		if ret != gonvml.SUCCESS {
			return callError(fmt.Sprintf("%s MIG device %d", name, k), "GetUUID", ret)
		}
		now = append(now, id)
		return nil
	})
	if err != nil {
		return err
	}
	was := migUUIDsOf(g.Index, discovered)
	gone := slices.DeleteFunc(slices.Clone(was), func(id string) bool { return slices.Contains(now, id) })
	added := slices.DeleteFunc(slices.Clone(now), func(id string) bool { return slices.Contains(was, id) })
	if len(gone) > 0 || len(added) > 0 {
		slices.Sort(gone)
		slices.Sort(added)
		return migChange(g, gone, fmt.Sprintf("MIG devices gone %v, new %v", gone, added))
	}
	return nil
}

// migUUIDsOf are the UUIDs of GPU gpu's MIG devices among migs.
func migUUIDsOf(gpu int, migs []MIGDevice) []string {
	var out []string
	for i := range migs {
		if migs[i].ParentIndex == gpu {
			out = append(out, migs[i].UUID)
		}
	}
	return out
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
