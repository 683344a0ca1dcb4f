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
	for _, s := range m.spec.slots {
		if err := write(filepath.Join(nvml.PCIDevicesDir, s.bus, "class"), fmt.Sprintf("0x%06x\n", nvml.PCIClass3D)); err != nil {
			return err
		}
	}
	return nil
}
