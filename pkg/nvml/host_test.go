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
	require.Len(t, errs, 10, "the machine type, the PCI device list and 8 PCI classes")
	require.Empty(t, n.MachineType)
}

// vgpuConfig is a vGPU guest's 256-byte configuration space: a capability
// list of MSI (0x68) then NVIDIA's vendor-specific capability (0xd4) with
// the "VF" signature, one record of another id, then the host driver
// record (id 0): 10 bytes of version, 10 of branch, NUL-padded.
func vgpuConfig(version, branch string) []byte {
	c := make([]byte, 256)
	c[0], c[1] = 0xde, 0x10
	c[0x06] = 0x10
	c[0x34] = 0x68
	c[0x68], c[0x69] = 0x05, 0xd4
	capability := []byte{0x09, 0x00, 0, 'V', 'F', 0x07, 3, 0xaa, 0x00, 22}
	capability = append(capability, []byte(version+string(make([]byte, 10-len(version))))...)
	capability = append(capability, []byte(branch+string(make([]byte, 10-len(branch))))...)
	capability[2] = byte(len(capability))
	copy(c[0xd4:], capability)
	return c
}

func writePCIDevice(t *testing.T, root, bus, vendor string, config []byte) {
	t.Helper()
	dir := filepath.Join(nvml.PCIDevicesDir, bus)
	writeFile(t, root, filepath.Join(dir, "vendor"), vendor+"\n")
	writeFile(t, root, filepath.Join(dir, "config"), string(config))
}

// GFD's vGPU detection: NVIDIA devices whose vendor-specific capability
// says "VF", with the host driver record read; bare-metal GPUs, other
// vendors and broken capability lists are not vGPUs; a configuration
// space read only in part (no root) is an error for that device.
func TestReadVGPUs(t *testing.T) {
	root := t.TempDir()
	writePCIDevice(t, root, "0000:02:00.0", "0x10de", vgpuConfig("460.16", "r460_00"))
	writePCIDevice(t, root, "0000:03:00.0", "0x8086", vgpuConfig("1.0", "x")) // not NVIDIA
	m, err := fake.New(fake.PCIe4GPU2Socket)
	require.NoError(t, err)
	require.NoError(t, m.WriteHostFiles(root)) // 4 bare-metal T4s
	got, err := nvml.ReadVGPUs(root)
	require.NoError(t, err)
	require.Equal(t, []nvml.VGPU{{Address: "0000:02:00.0", HostDriverVersion: "460.16", HostDriverBranch: "r460_00"}}, got)

	broken := vgpuConfig("460.16", "r460_00")
	broken[0xd4+5] = 0x07 // the other record...
	broken[0xd4+6] = 0    // ...does not advance: no driver record
	looped := vgpuConfig("460.16", "r460_00")
	looped[0x69] = 0x68 // MSI points at itself
	for name, tc := range map[string]struct {
		config []byte
		want   []nvml.VGPU
		err    bool
	}{
		"no driver record":          {broken, []nvml.VGPU{{Address: "0000:02:00.0"}}, false},
		"looped capability list":    {looped, nil, false},
		"64 bytes (no root)":        {vgpuConfig("460.16", "r460_00")[:64], nil, true},
		"capability past the end":   {func() []byte { c := vgpuConfig("1", "2"); c[0xd4+2] = 0xff; return c }(), nil, false},
		"signature cut":             {append(vgpuConfig("460.16", "r460_00")[:0xd8:0xd8], make([]byte, 40)...), nil, false},
		"capability list bit unset": {func() []byte { c := vgpuConfig("1", "2"); c[0x06] = 0; return c }(), nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writePCIDevice(t, root, "0000:02:00.0", "0x10de", tc.config)
			got, err := nvml.ReadVGPUs(root)
			if tc.err {
				require.ErrorIs(t, err, nvml.ErrPCIConfigUnreadable)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, got)
		})
	}
	_, err = nvml.ReadVGPUs(t.TempDir())
	require.Error(t, err, "no PCI devices directory")
}
