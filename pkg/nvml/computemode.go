package nvml

import (
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ComputeModeSetter sets a GPU's compute mode; the Lib New returns
// implements it. MPS wants EXCLUSIVE_PROCESS (only the MPS server opens the
// GPU), as NVIDIA's MPS control daemon sets it, and DEFAULT back after.
type ComputeModeSetter interface {
	SetExclusiveProcess(uuid string, exclusive bool) error
}

var _ ComputeModeSetter = (*lib)(nil)

// SetExclusiveProcess sets GPU uuid's compute mode to EXCLUSIVE_PROCESS
// (exclusive) or DEFAULT. NVML needs root privileges for it.
func (l *lib) SetExclusiveProcess(uuid string, exclusive bool) error {
	return l.withSession(l.logger, func() error { return l.setExclusiveProcess(uuid, exclusive) })
}

func (l *lib) setExclusiveProcess(uuid string, exclusive bool) error {
	dev, ret := l.iface.DeviceGetHandleByUUID(uuid)
	if ret != gonvml.SUCCESS {
		return callError(uuid, "DeviceGetHandleByUUID", ret)
	}
	mode := gonvml.COMPUTEMODE_DEFAULT
	if exclusive {
		mode = gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS
	}
	if ret := dev.SetComputeMode(mode); ret != gonvml.SUCCESS {
		return callError(uuid, "SetComputeMode", ret)
	}
	return nil
}
