package nvml

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// VGPU is what a vGPU guest's NVIDIA device says of the vGPU manager on
// its hypervisor (GPU Feature Discovery's nvidia.com/vgpu.* labels).
type VGPU struct {
	// Address is the device's PCI bus ID.
	Address string
	// HostDriverVersion ("460.16") and HostDriverBranch ("r460_00") are
	// empty when the device's capability holds no driver record.
	HostDriverVersion, HostDriverBranch string
}

// PCI configuration space layout (PCI Local Bus Specification 3.0, 6.7)
// and NVIDIA's vGPU vendor-specific capability.
const (
	pciVendorNVIDIA         = "0x10de"
	pciConfigFullBytes      = 256  // what root reads; others get the first 64
	pciStatus               = 0x06 // status register (low byte)
	pciStatusCapList        = 0x10 // it has a capability list
	pciCapPointer           = 0x34 // offset of the first capability
	pciCapVendorSpecific    = 0x09
	vgpuSignature           = "VF" // bytes 3 and 4 of NVIDIA's vGPU capability
	vgpuRecordsStart        = 5    // first record: id, length, data
	vgpuDriverRecordID      = 0
	vgpuVersionBytes        = 10
	vgpuBranchBytes         = 10
	maxPCIConfigSpaceToRead = 4096 // PCIe extended configuration space
)

// ErrPCIConfigUnreadable is wrapped when a device's configuration space
// can be read only in part (an unprivileged container gets 64 bytes):
// whether it is a vGPU cannot be told.
var ErrPCIConfigUnreadable = errors.New("the PCI configuration space cannot be read in full (the vGPU capability needs root)")

// ReadVGPUs lists the NVIDIA PCI devices under hostRoot's PCIDevicesDir
// that carry NVIDIA's vGPU capability, as GFD does: a bare-metal node has
// none. A device whose configuration cannot be read in full is an error
// (wrapping ErrPCIConfigUnreadable), and the others are still listed.
func ReadVGPUs(hostRoot string) ([]VGPU, error) {
	dir := filepath.Join(hostRoot, PCIDevicesDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing PCI devices: %w", err)
	}
	var out []VGPU
	var errs []error
	for _, e := range entries {
		vendor, err := readHostFile(filepath.Join(dir, e.Name(), "vendor"))
		if err != nil || strings.TrimSpace(string(vendor)) != pciVendorNVIDIA {
			continue
		}
		config, err := readConfigSpace(filepath.Join(dir, e.Name(), "config"))
		if err != nil {
			errs = append(errs, fmt.Errorf("PCI device %s: %w", e.Name(), err))
			continue
		}
		if len(config) < pciConfigFullBytes {
			errs = append(errs, fmt.Errorf("PCI device %s: %w", e.Name(), ErrPCIConfigUnreadable))
			continue
		}
		capability := vendorCapability(config)
		if !isVGPU(capability) {
			continue
		}
		v := VGPU{Address: e.Name()}
		v.HostDriverVersion, v.HostDriverBranch = vgpuDriver(capability)
		out = append(out, v)
	}
	return out, errors.Join(errs...)
}

func readConfigSpace(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return io.ReadAll(io.LimitReader(f, maxPCIConfigSpaceToRead))
}

// vendorCapability walks the capability list of a configuration space to
// the first vendor-specific capability (nil when there is none, the list
// loops or leaves the space).
func vendorCapability(config []byte) []byte {
	if len(config) <= pciCapPointer || config[pciStatus]&pciStatusCapList == 0 {
		return nil
	}
	seen := map[int]bool{}
	for pos := int(config[pciCapPointer]); pos != 0 && !seen[pos]; {
		seen[pos] = true
		if pos+2 >= len(config) {
			return nil
		}
		id, next, length := config[pos], int(config[pos+1]), int(config[pos+2])
		if id == 0xff {
			return nil
		}
		if id == pciCapVendorSpecific {
			if pos+length > len(config) {
				return nil
			}
			return config[pos : pos+length]
		}
		pos = next
	}
	return nil
}

// isVGPU reports whether a vendor-specific capability is NVIDIA's vGPU one.
func isVGPU(capability []byte) bool {
	return len(capability) >= vgpuRecordsStart && string(capability[3:5]) == vgpuSignature
}

// vgpuDriver reads the host driver record (id 0) of a vGPU capability:
// records are id, length, data, from vgpuRecordsStart; the driver record's
// data is 10 bytes of version and 10 of branch, NUL-padded. Empty when
// there is no such record.
func vgpuDriver(capability []byte) (version, branch string) {
	pos := vgpuRecordsStart
	for pos+1 < len(capability) && capability[pos] != vgpuDriverRecordID {
		length := int(capability[pos+1])
		if length == 0 {
			return "", "" // a record that does not advance: malformed
		}
		pos += length
	}
	data := pos + 2
	if pos >= len(capability) || data+vgpuVersionBytes+vgpuBranchBytes > len(capability) {
		return "", ""
	}
	version = strings.Trim(string(capability[data:data+vgpuVersionBytes]), "\x00")
	branch = strings.Trim(string(capability[data+vgpuVersionBytes:data+vgpuVersionBytes+vgpuBranchBytes]), "\x00")
	return version, branch
}
