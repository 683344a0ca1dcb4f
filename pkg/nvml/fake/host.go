package fake

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gpupack/gpupack/pkg/nvml"
)

// ProductName is the machine's DMI product name, as its firmware writes it
// to /sys/class/dmi/id/product_name.
func (m *Machine) ProductName() string { return m.spec.product }

// WriteHostFiles writes under root the host files GPU Feature Discovery
// reads besides NVML: the DMI product name (nvml.DefaultMachineTypeFile)
// and each GPU's PCI class (a 3D controller: data-center GPUs run in
// compute mode) under nvml.PCIDevicesDir.
func (m *Machine) WriteHostFiles(root string) error {
	write := func(rel, content string) error {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("fake: %w", err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("fake: %w", err)
		}
		return nil
	}
	if err := write(nvml.DefaultMachineTypeFile, m.spec.product+"\n"); err != nil {
		return err
	}
	for i, s := range m.spec.slots {
		dir := filepath.Join(nvml.PCIDevicesDir, s.bus)
		if err := write(filepath.Join(dir, "class"), fmt.Sprintf("0x%06x\n", nvml.PCIClass3D)); err != nil {
			return err
		}
		if err := write(filepath.Join(dir, "vendor"), "0x10de\n"); err != nil {
			return err
		}
		if err := write(filepath.Join(dir, "config"), string(bareMetalConfig(m.spec.gpuAt(i).PciDeviceId))); err != nil {
			return err
		}
	}
	return nil
}

// bareMetalConfig is a GPU's 256-byte PCI configuration space on bare
// metal: NVIDIA's vendor and the device ID, a capability list of power
// management (0x60) and MSI (0x68), no vendor-specific (vGPU) capability.
func bareMetalConfig(pciDeviceID uint32) []byte {
	c := make([]byte, 256)
	c[0], c[1] = 0xde, 0x10 // vendor 0x10de, little endian
	c[2], c[3] = byte(pciDeviceID>>16), byte(pciDeviceID>>24)
	c[0x06] = 0x10                // status: capability list
	c[0x0a], c[0x0b] = 0x02, 0x03 // class 0x0302: 3D controller
	c[0x34] = 0x60
	c[0x60], c[0x61] = 0x01, 0x68 // power management, next MSI
	c[0x68], c[0x69] = 0x05, 0x00 // MSI, end of list
	return c
}
