package nvml

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Host files GPU Feature Discovery reads besides NVML, relative to the host
// root.
const (
	// DefaultMachineTypeFile is the DMI product name of the machine
	// (GFD's --machine-type-file default).
	DefaultMachineTypeFile = "/sys/class/dmi/id/product_name"
	// PCIDevicesDir holds one directory per PCI function, named by its
	// bus ID ("0000:07:00.0"), with the function's class code in "class".
	PCIDevicesDir = "/sys/bus/pci/devices"
)

// PCI class codes of NVIDIA GPUs (base class 0x03, display controller):
// a VGA controller is a GPU in graphics mode, a 3D controller one in
// compute mode.
const (
	PCIClassVGA uint32 = 0x030000
	PCIClass3D  uint32 = 0x030200
)

// maxHostFileBytes bounds what is read of a sysfs attribute (they are a
// page at most).
const maxHostFileBytes = 4096

// ReadMachineType reads the machine type (the DMI product name) from path
// under hostRoot, trimmed of surrounding blanks.
func ReadMachineType(hostRoot, path string) (string, error) {
	b, err := readHostFile(filepath.Join(hostRoot, path))
	if err != nil {
		return "", fmt.Errorf("reading the machine type: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadPCIClass reads the PCI class code ("0x030200") of the function at
// busID (sysfs form, "0000:07:00.0") under hostRoot.
func ReadPCIClass(hostRoot, busID string) (uint32, error) {
	if busID == "" || strings.ContainsAny(busID, `/\`) || busID == "." || busID == ".." {
		return 0, fmt.Errorf("reading the PCI class: bad bus ID %q", busID)
	}
	path := filepath.Join(hostRoot, PCIDevicesDir, busID, "class")
	b, err := readHostFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading the PCI class: %w", err)
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
	if err != nil || !strings.HasPrefix(strings.ToLower(s), "0x") || v > 0xffffff {
		return 0, fmt.Errorf("reading the PCI class: %s: %q is not a 24-bit class code such as 0x030200", path, s)
	}
	return uint32(v), nil
}

func readHostFile(path string) ([]byte, error) {
	b, err := readBounded(path, maxHostFileBytes)
	if errors.Is(err, errTooLarge) {
		return nil, errors.New(path + ": larger than a sysfs attribute")
	}
	return b, err
}

// errTooLarge is readBounded's error for a file over its limit.
var errTooLarge = errors.New("file too large")

// readBounded reads the file at path, at most limit bytes: a longer file
// fails with errTooLarge (wrapped), a read error names the path; an open
// error is os.Open's.
func readBounded(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("reading %s: larger than %d bytes: %w", path, limit, errTooLarge)
	}
	return b, nil
}
