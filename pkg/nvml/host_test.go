package nvml_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	path := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestReadMachineType(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, nvml.DefaultMachineTypeFile, "  PowerEdge XE9680 \n")
	got, err := nvml.ReadMachineType(root, nvml.DefaultMachineTypeFile)
	require.NoError(t, err)
	require.Equal(t, "PowerEdge XE9680", got)
	_, err = nvml.ReadMachineType(t.TempDir(), nvml.DefaultMachineTypeFile)
	require.ErrorIs(t, err, os.ErrNotExist)
	writeFile(t, root, "big", string(make([]byte, 5000)))
	_, err = nvml.ReadMachineType(root, "big")
	require.Error(t, err, "not a sysfs attribute")
}

func TestReadPCIClass(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(nvml.PCIDevicesDir, "0000:07:00.0")
	for content, want := range map[string]uint32{"0x030200\n": nvml.PCIClass3D, "0x030000": nvml.PCIClassVGA, "0X038000\n": 0x038000} {
		writeFile(t, root, filepath.Join(dir, "class"), content)
		got, err := nvml.ReadPCIClass(root, "0000:07:00.0")
		require.NoError(t, err, content)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"", "030200", "0x", "0xzz", "0x1000000", "class"} {
		writeFile(t, root, filepath.Join(dir, "class"), bad)
		_, err := nvml.ReadPCIClass(root, "0000:07:00.0")
		require.Error(t, err, "%q", bad)
	}
	for _, bus := range []string{"", "..", "../../etc", "0000:07:00.0/../x"} {
		_, err := nvml.ReadPCIClass(root, bus)
		require.Error(t, err, "%q", bus)
	}
	_, err := nvml.ReadPCIClass(root, "0000:99:00.0")
	require.ErrorIs(t, err, os.ErrNotExist)
}

// GFDNode reads the inventory and the host files: a fake machine's files
// give its DMI name and compute-mode classes; no host root reads nothing;
// a missing file is an error and leaves the value unknown.
func TestGFDNode(t *testing.T) {
	m, _, inv := discover(t, fake.DGXA100, fake.WithMIG(map[int][]string{1: {"1g.5gb+me"}}))
	root := t.TempDir()
	require.NoError(t, m.WriteHostFiles(root))
	n, errs := inv.GFDNode(root, "")
	require.Empty(t, errs)
	require.Equal(t, "DGXA100 920-23687-2530-000", n.MachineType)
	require.Equal(t, "550.54.15", n.DriverVersion)
	require.Equal(t, "12.4", n.CUDADriverVersion)
	require.Len(t, n.GPUs, 8)
	for _, g := range n.GPUs {
		require.Equal(t, nvml.PCIClass3D, g.PCIClass)
		require.Equal(t, "8.0", g.ComputeCapability)
	}
	require.True(t, n.GPUs[1].MIGEnabled)
	require.Len(t, n.MIG, 1)
	require.Equal(t, 1, n.MIG[0].Parent)
	require.Equal(t, "1g.5gb+me", n.MIG[0].Profile)

	n, errs = inv.GFDNode("", "")
	require.Empty(t, errs)
	require.Empty(t, n.MachineType)
	require.Zero(t, n.GPUs[0].PCIClass)

	n, errs = inv.GFDNode(t.TempDir(), "/etc/machine-type")
	require.Len(t, errs, 9, "the machine type and 8 PCI classes")
	require.Empty(t, n.MachineType)
}
