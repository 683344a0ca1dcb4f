package nvml_test

import (
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestDiscoverNUMAAffinity: a GPU's NUMA node is the node of the CPUs and
// memory closest to it (what the kubelet's Topology Manager aligns CPUs
// with), as NVML's memory affinity names it, never nvmlDeviceGetNumaNodeId:
// that is the GPU's own node, only where the GPU is one (Grace), and
// NOT_SUPPORTED on x86. Before, x86 GPUs were published without a NUMA
// node (-1) and Grace GPUs with their memory's node (GB200: 2, 10, 18, 26),
// which has no CPU.
func TestDiscoverNUMAAffinity(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		break_  func(m *fake.Machine)
		want    []int // per GPU
	}{
		{
			// x86: GetNumaNodeId answers NOT_SUPPORTED; GPUs 0-3 sit on
			// socket 0, 4-7 on socket 1.
			name: "dgx h100, x86", machine: fake.DGXH100,
			want: []int{0, 0, 0, 0, 1, 1, 1, 1},
		},
		{
			// NPS4: the GPU pairs on nodes 3, 1, 7, 5.
			name: "dgx a100, 8 NUMA nodes", machine: fake.DGXA100,
			want: []int{3, 3, 1, 1, 7, 7, 5, 5},
		},
		{
			// Two Graces (0, 1), two Blackwells each; the GPUs' own
			// nodes 2, 10, 18, 26 have no CPU.
			name: "gb200 tray", machine: fake.GB2004GPU,
			want: []int{0, 0, 1, 1},
		},
		{
			// Four Graces (0..3), one Hopper each (own nodes 4, 12, 20, 28).
			name: "4 gh200", machine: fake.GH2004GPU,
			want: []int{0, 1, 2, 3},
		},
		{
			// A vGPU guest or WSL: no affinity known.
			name: "memory affinity not supported", machine: fake.DGXH100,
			break_: func(m *fake.Machine) {
				for i := range m.NumGPUs() {
					m.Device(i).GetMemoryAffinityFunc = func(int, gonvml.AffinityScope) ([]uint, gonvml.Return) {
						return nil, gonvml.ERROR_NOT_SUPPORTED
					}
				}
			},
			want: []int{-1, -1, -1, -1, -1, -1, -1, -1},
		},
		{
			// A driver without the call: the same.
			name: "memory affinity symbol missing", machine: fake.GH2004GPU,
			break_: func(m *fake.Machine) {
				m.Server().LookupSymbolFunc = func(sym string) error {
					if sym == "nvmlDeviceGetMemoryAffinity" {
						return gonvml.ERROR_FUNCTION_NOT_FOUND
					}
					return nil
				}
			},
			want: []int{-1, -1, -1, -1},
		},
		{
			// GPU 1 close to nodes 0 and 1 alike (bits 0 and 1: 0b11), GPU 2
			// to none (0), GPU 3 to node 65 only (word 1, bit 1): one node
			// or none.
			name: "several nodes or none", machine: fake.GH2004GPU,
			break_: func(m *fake.Machine) {
				mask := map[int][]uint{1: {0b11}, 2: {0}, 3: {0, 0b10}}
				for i, set := range mask {
					m.Device(i).GetMemoryAffinityFunc = func(int, gonvml.AffinityScope) ([]uint, gonvml.Return) {
						return set, gonvml.SUCCESS
					}
				}
			},
			want: []int{0, -1, -1, 65},
		},
		{
			// A driver or hypervisor answering another error (a VM whose
			// NVML cannot read the affinity): the NUMA node is advice to
			// the kubelet, so GPU 2 is served without one, not kept out.
			// Before, every GPU answering so was degraded.
			name: "memory affinity fails otherwise", machine: fake.DGXH100,
			break_: func(m *fake.Machine) {
				m.Device(2).GetMemoryAffinityFunc = func(int, gonvml.AffinityScope) ([]uint, gonvml.Return) {
					return nil, gonvml.ERROR_UNKNOWN
				}
			},
			want: []int{0, 0, -1, 0, 1, 1, 1, 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(tc.machine)
			require.NoError(t, err)
			if tc.break_ != nil {
				tc.break_(m)
			}
			lib := nvml.New(m.Interface())
			require.NoError(t, lib.Init())
			t.Cleanup(func() { require.NoError(t, lib.Shutdown()) })
			inv, err := lib.Discover()
			require.NoError(t, err)
			require.Len(t, inv.GPUs, len(tc.want))
			for i, g := range inv.GPUs {
				require.NoError(t, g.Degraded, "GPU %d", i)
				require.Equal(t, tc.want[i], g.NUMANode, "GPU %d", i)
			}
			require.NoError(t, inv.Topology().Validate())
		})
	}
}

// TestRecheckGPUsReadsWhatDegradedTheGPU: RecheckGPUs reads a GPU as
// Discover does, so it fails while a fault that made discovery degrade the
// GPU lasts, wherever discovery met it: its identity, its MIG devices, or
// its NVLink walk and PCIe ancestors. Before, it read the identity only and
// passed at once for a GPU degraded by its links or MIG devices: every
// recovery probe then asked for a rediscovery that degraded the GPU again,
// a rebuild of the plugin every probe interval for as long as the fault
// lasted. Once the fault is gone it passes.
func TestRecheckGPUsReadsWhatDegradedTheGPU(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		mig     map[int][]string
		gpu     int
		break_  func(m *fake.Machine) (heal func())
	}{
		{
			name: "NVLink state error", machine: fake.DGX1V100, gpu: 7,
			break_: func(m *fake.Machine) func() {
				d := m.Device(7)
				orig := d.GetNvLinkStateFunc
				d.GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
				return func() { d.GetNvLinkStateFunc = orig }
			},
		},
		{
			name: "NVLink version garbage", machine: fake.DGXH100, gpu: 5,
			break_: func(m *fake.Machine) func() {
				d := m.Device(5)
				orig := d.GetNvLinkVersionFunc
				d.GetNvLinkVersionFunc = func(int) (uint32, gonvml.Return) { return 99, gonvml.SUCCESS }
				return func() { d.GetNvLinkVersionFunc = orig }
			},
		},
		{
			name: "remote device type error", machine: fake.DGXA100, gpu: 1,
			break_: func(m *fake.Machine) func() {
				d := m.Device(1)
				orig := d.GetNvLinkRemoteDeviceTypeFunc
				d.GetNvLinkRemoteDeviceTypeFunc = func(int) (gonvml.IntNvLinkDeviceType, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
				return func() { d.GetNvLinkRemoteDeviceTypeFunc = orig }
			},
		},
		{
			// GPU 3's question about GPU 4 (the first pair it is asked
			// about past its lower peers) fails.
			name: "PCIe ancestor error", machine: fake.DGX1V100, gpu: 3,
			break_: func(m *fake.Machine) func() {
				d := m.Device(3)
				orig := d.GetTopologyCommonAncestorFunc
				d.GetTopologyCommonAncestorFunc = func(gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
				return func() { d.GetTopologyCommonAncestorFunc = orig }
			},
		},
		{
			name: "MIG device handle error", machine: fake.DGXA100, mig: map[int][]string{2: {"1g.5gb"}}, gpu: 2,
			break_: func(m *fake.Machine) func() {
				d := m.Device(2)
				orig := d.GetMigDeviceHandleByIndexFunc
				d.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.ERROR_UNKNOWN }
				return func() { d.GetMigDeviceHandleByIndexFunc = orig }
			},
		},
		{
			// The MIG device's instance is not found while it is listed
			// (destroyed between the two calls, or a driver that keeps
			// answering so).
			name: "MIG instance missing", machine: fake.DGXA100, mig: map[int][]string{0: {"3g.20gb", "1g.5gb"}}, gpu: 0,
			break_: func(m *fake.Machine) func() {
				d := m.Device(0)
				orig := d.GetGpuInstanceByIdFunc
				d.GetGpuInstanceByIdFunc = func(int) (gonvml.GpuInstance, gonvml.Return) { return nil, gonvml.ERROR_NOT_FOUND }
				return func() { d.GetGpuInstanceByIdFunc = orig }
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(tc.machine, fake.WithMIG(tc.mig))
			require.NoError(t, err)
			heal := tc.break_(m)
			lib := nvml.New(m.Interface())
			require.NoError(t, lib.Init())
			t.Cleanup(func() { require.NoError(t, lib.Shutdown()) })
			inv, err := lib.Discover()
			require.NoError(t, err)
			require.Error(t, inv.GPUs[tc.gpu].Degraded, "GPU %d", tc.gpu)
			// The fault lasts: the GPU would be degraded again.
			earlier := refs(inv)
			require.Error(t, lib.RecheckGPUs(earlier, []int{tc.gpu})[0])
			again, err := lib.Discover()
			require.NoError(t, err)
			require.Error(t, again.GPUs[tc.gpu].Degraded)
			// Gone: the GPU reads in full, and so does discovery.
			heal()
			require.NoError(t, lib.RecheckGPUs(earlier, []int{tc.gpu})[0])
			healed, err := lib.Discover()
			require.NoError(t, err)
			require.NoError(t, healed.GPUs[tc.gpu].Degraded)
		})
	}
}

// TestDiscoverCPUEndsWithoutRemoteType: on an IBM AC922 each V100 has 3
// NVLink lanes to its peer and 3 to its POWER9 CPU (an NPU, vendor IBM).
// A driver that cannot say what a link's remote end is (no
// nvmlDeviceGetNvLinkRemoteDeviceType, or NOT_SUPPORTED for the link)
// leaves the PCI identity of the remote end: a non-NVIDIA device is no
// NVSwitch. Before, every end that was no GPU of the node counted as an
// NVSwitch lane, so each GPU had "3 lanes into a fabric" and the pairs
// across sockets were published NS3 (min(3, 3)) instead of SYS.
func TestDiscoverCPUEndsWithoutRemoteType(t *testing.T) {
	const want = `
X   NV3 SYS SYS
NV3 X   SYS SYS
SYS SYS X   NV3
SYS SYS NV3 X`
	tests := []struct {
		name   string
		break_ func(m *fake.Machine)
	}{
		{name: "remote type known"},
		{
			name: "driver without the remote-type call",
			break_: func(m *fake.Machine) {
				m.Server().LookupSymbolFunc = func(sym string) error {
					if sym == "nvmlDeviceGetNvLinkRemoteDeviceType" {
						return gonvml.ERROR_FUNCTION_NOT_FOUND
					}
					return nil
				}
			},
		},
		{
			name: "remote type not supported per link",
			break_: func(m *fake.Machine) {
				for i := range m.NumGPUs() {
					m.Device(i).GetNvLinkRemoteDeviceTypeFunc = func(int) (gonvml.IntNvLinkDeviceType, gonvml.Return) {
						return gonvml.NVLINK_DEVICE_TYPE_UNKNOWN, gonvml.ERROR_NOT_SUPPORTED
					}
				}
			},
		},
		{
			name: "remote type answered unknown",
			break_: func(m *fake.Machine) {
				for i := range m.NumGPUs() {
					m.Device(i).GetNvLinkRemoteDeviceTypeFunc = func(int) (gonvml.IntNvLinkDeviceType, gonvml.Return) {
						return gonvml.NVLINK_DEVICE_TYPE_UNKNOWN, gonvml.SUCCESS
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.AC9224GPU)
			require.NoError(t, err)
			if tc.break_ != nil {
				tc.break_(m)
			}
			_, _, inv := discoverMachine(t, m)
			requireMatrix(t, inv, want)
			for i, g := range inv.GPUs {
				require.NoError(t, g.Degraded, "GPU %d", i)
				require.Equal(t, 2, g.NVLinkVersion, "GPU %d", i)
			}
		})
	}
}
