package nvml_test

import (
	"errors"
	"slices"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// Bad NVML answers give a clear error naming the GPU and the call, never a
// panic.
func TestDiscoverBadAnswers(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		break_  func(m *fake.Machine)
		want    []string // substrings of the error
		lost    bool
		// degraded lists the GPUs the error degrades; none: discovery fails.
		degraded []int
	}{
		{
			name: "negative GPU count", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) { return -1, gonvml.SUCCESS }
			},
			want: []string{"DeviceGetCount", "implausible GPU count -1"},
		},
		{
			name: "GPU count error", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
			},
			want: []string{"DeviceGetCount", "ERROR_UNKNOWN"},
		},
		{
			name: "nil handle", machine: fake.DGXH100,
			break_: func(m *fake.Machine) {
				m.Server().DeviceGetHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.SUCCESS }
			},
			want: []string{"no handle"}, degraded: []int{0, 1, 2, 3, 4, 5, 6, 7},
		},
		{
			name: "UUID error", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				m.Device(2).GetUUIDFunc = func() (string, gonvml.Return) { return "", gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPU 2", "GetUUID", "ERROR_UNKNOWN"}, degraded: []int{2},
		},
		{
			name: "duplicate UUID", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				id := m.UUID(0)
				m.Device(5).GetUUIDFunc = func() (string, gonvml.Return) { return id, gonvml.SUCCESS }
			},
			want: []string{"GPUs 0 and 5", "same UUID"},
		},
		{
			// GPU 0 is degraded after its UUID (no bus ID read): its UUID
			// still names its devices, so a second GPU with it is a
			// duplicate. Was missed when the degraded GPU came first.
			name: "duplicate UUID of a GPU degraded before its bus ID", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				id := m.UUID(0)
				m.Device(0).GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) { return gonvml.Memory{}, gonvml.ERROR_UNKNOWN }
				m.Device(5).GetUUIDFunc = func() (string, gonvml.Return) { return id, gonvml.SUCCESS }
			},
			want: []string{"GPUs 0 and 5", "same UUID"},
		},
		{
			name: "duplicate UUID, the later GPU degraded before its bus ID", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				id := m.UUID(0)
				m.Device(5).GetUUIDFunc = func() (string, gonvml.Return) { return id, gonvml.SUCCESS }
				m.Device(5).GetMinorNumberFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPUs 0 and 5", "same UUID"},
		},
		{
			name: "duplicate UUID, both degraded before their bus IDs", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				id := m.UUID(2)
				m.Device(2).GetNameFunc = func() (string, gonvml.Return) { return "", gonvml.ERROR_UNKNOWN }
				m.Device(6).GetUUIDFunc = func() (string, gonvml.Return) { return id, gonvml.SUCCESS }
				m.Device(6).GetNameFunc = func() (string, gonvml.Return) { return "", gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPUs 2 and 6", "same UUID"},
		},
		{
			name: "GPU lost during discovery", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Device(4).GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) { return gonvml.Memory{}, gonvml.ERROR_GPU_IS_LOST }
			},
			want: []string{"GPU 4", "GetMemoryInfo"}, lost: true, degraded: []int{4},
		},
		{
			name: "empty PCI bus ID", machine: fake.PCIe4GPU2Socket,
			break_: func(m *fake.Machine) {
				m.Device(1).GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) { return gonvml.PciInfo{}, gonvml.SUCCESS }
			},
			want: []string{"GPU 1", "GetPciInfo", "malformed PCI bus ID"}, degraded: []int{1},
		},
		{
			name: "MIG mode error", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Device(3).GetMigModeFunc = func() (int, int, gonvml.Return) { return 0, 0, gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPU 3", "GetMigMode"}, degraded: []int{3},
		},
		{
			// Other errors of the NUMA read leave the node unknown and the
			// GPU served (TestDiscoverNUMAAffinity); a lost GPU or one that
			// needs a reset is degraded.
			name: "NUMA read of a lost GPU", machine: fake.DGXH100,
			break_: func(m *fake.Machine) {
				m.Device(6).GetMemoryAffinityFunc = func(int, gonvml.AffinityScope) ([]uint, gonvml.Return) {
					return nil, gonvml.ERROR_GPU_IS_LOST
				}
			},
			want: []string{"GPU 6", "GetMemoryAffinity"}, lost: true, degraded: []int{6},
		},
		{
			name: "NUMA read of a GPU that needs a reset", machine: fake.DGXH100,
			break_: func(m *fake.Machine) {
				m.Device(6).GetMemoryAffinityFunc = func(int, gonvml.AffinityScope) ([]uint, gonvml.Return) {
					return nil, gonvml.ERROR_RESET_REQUIRED
				}
			},
			want: []string{"GPU 6", "GetMemoryAffinity", "GPU reset required"}, degraded: []int{6},
		},
		{
			name: "fabric error", machine: fake.GB2004GPU,
			break_: func(m *fake.Machine) {
				m.Device(0).GetGpuFabricInfoFunc = func() (gonvml.GpuFabricInfo, gonvml.Return) {
					return gonvml.GpuFabricInfo{}, gonvml.ERROR_UNKNOWN
				}
			},
			want: []string{"GPU 0", "GetGpuFabricInfo"}, degraded: []int{0},
		},
		{
			name: "negative CUDA version", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Server().SystemGetCudaDriverVersionFunc = func() (int, gonvml.Return) { return -12040, gonvml.SUCCESS }
			},
			want: []string{"SystemGetCudaDriverVersion", "implausible"},
		},
		{
			name: "unknown topology level", machine: fake.PCIe4GPU2Socket,
			break_: func(m *fake.Machine) {
				m.Device(0).GetTopologyCommonAncestorFunc = func(gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) { return 77, gonvml.SUCCESS }
			},
			want: []string{"GPU 0", "GetTopologyCommonAncestor(GPU 1)", "unknown level 77"}, degraded: []int{0},
		},
		{
			name: "topology error", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				m.Device(3).GetTopologyCommonAncestorFunc = func(gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
					return 0, gonvml.ERROR_UNKNOWN
				}
			},
			want: []string{"GPU 3", "GetTopologyCommonAncestor(GPU 4)", "ERROR_UNKNOWN"}, degraded: []int{3},
		},
		{
			// GPU 7 falls off the bus after it was read, before the links
			// are: its peers' pairwise question about it fails too. Only
			// GPU 7 is degraded; before, every GPU asked about it was.
			name: "GPU lost before its links are read", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				seven := m.UUID(7)
				for i := range m.NumGPUs() {
					d := m.Device(i)
					orig := d.GetTopologyCommonAncestorFunc
					d.GetTopologyCommonAncestorFunc = func(other gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
						if id, ret := other.GetUUID(); i == 7 || id == seven || ret == gonvml.ERROR_GPU_IS_LOST {
							m.LoseGPU(7)
							return 0, gonvml.ERROR_GPU_IS_LOST
						}
						return orig(other)
					}
				}
			},
			want: []string{"GPU 7", "GetTopologyCommonAncestor", "ERROR_GPU_IS_LOST"}, lost: true, degraded: []int{7},
		},
		{
			name: "NVLink state error", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				m.Device(7).GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPU 7", "GetNvLinkState(link 0)"}, degraded: []int{7},
		},
		{
			name: "NVLink remote bus garbage", machine: fake.A100PCIeBridge,
			break_: func(m *fake.Machine) {
				m.Device(2).GetNvLinkRemotePciInfoFunc = func(int) (gonvml.PciInfo, gonvml.Return) {
					var p gonvml.PciInfo
					copy(p.BusId[:], []int8{'z', 'z', 'z'})
					return p, gonvml.SUCCESS
				}
			},
			want: []string{"GPU 2", "GetNvLinkRemotePciInfo(link 0)", "malformed PCI bus ID"}, degraded: []int{2},
		},
		{
			name: "NVLink loops back", machine: fake.A100PCIeBridge,
			break_: func(m *fake.Machine) {
				bus := m.BusID(4)
				m.Device(4).GetNvLinkRemotePciInfoFunc = func(int) (gonvml.PciInfo, gonvml.Return) {
					return fake.PciInfo(bus, 0), gonvml.SUCCESS
				}
			},
			want: []string{"GPU 4", "loops back"}, degraded: []int{4},
		},
		{
			name: "NVLink version garbage", machine: fake.DGXH100,
			break_: func(m *fake.Machine) {
				m.Device(5).GetNvLinkVersionFunc = func(int) (uint32, gonvml.Return) { return 99, gonvml.SUCCESS }
			},
			want: []string{"GPU 5", "GetNvLinkVersion(link 0)", "unknown version 99"}, degraded: []int{5},
		},
		{
			name: "remote device type error", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Device(1).GetNvLinkRemoteDeviceTypeFunc = func(int) (gonvml.IntNvLinkDeviceType, gonvml.Return) {
					return 0, gonvml.ERROR_UNKNOWN
				}
			},
			want: []string{"GPU 1", "GetNvLinkRemoteDeviceType(link 0)"}, degraded: []int{1},
		},
		{
			name: "negative MIG device count", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Device(0).GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) { return -5, gonvml.SUCCESS }
			},
			want: []string{"GPU 0", "GetMaxMigDeviceCount", "implausible count -5"}, degraded: []int{0},
		},
		{
			name: "MIG handle error", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Device(0).GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPU 0", "GetMigDeviceHandleByIndex(0)"}, degraded: []int{0},
		},
		{
			name: "MIG instance missing", machine: fake.DGXA100,
			break_: func(m *fake.Machine) {
				m.Device(0).GetGpuInstanceByIdFunc = func(int) (gonvml.GpuInstance, gonvml.Return) { return nil, gonvml.ERROR_NOT_FOUND }
			},
			want: []string{"GPU 0", "MIG device 0", "GetGpuInstanceById(0)", "ERROR_NOT_FOUND"}, degraded: []int{0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(tc.machine, fake.WithMIG(migFor(tc.machine)))
			require.NoError(t, err)
			tc.break_(m)
			lib := nvml.New(m.Interface())
			require.NoError(t, lib.Init())
			var inv *nvml.Inventory
			require.NotPanics(t, func() { inv, err = lib.Discover() })
			if len(tc.degraded) == 0 {
				require.Error(t, err)
				requireDiscoveryError(t, err, tc.want, tc.lost)
				return
			}
			// An error about one GPU degrades that GPU only: it stays
			// listed and every other GPU is read in full.
			require.NoError(t, err)
			require.Len(t, inv.GPUs, m.NumGPUs())
			for _, g := range inv.GPUs {
				if !slices.Contains(tc.degraded, g.Index) {
					require.NoError(t, g.Degraded, "GPU %d", g.Index)
					require.Equal(t, m.UUID(g.Index), g.UUID)
					continue
				}
				require.Error(t, g.Degraded, "GPU %d", g.Index)
				requireDiscoveryError(t, g.Degraded, tc.want, tc.lost)
				for j, l := range inv.Links[g.Index] {
					require.Zero(t, l.NVLinks, "link %d-%d of a degraded GPU", g.Index, j)
				}
			}
		})
	}
}

func requireDiscoveryError(t *testing.T, err error, want []string, lost bool) {
	t.Helper()
	for _, w := range want {
		require.Contains(t, err.Error(), w)
	}
	if lost {
		require.ErrorIs(t, err, nvml.ErrGPULost)
	} else {
		require.NotErrorIs(t, err, nvml.ErrGPULost)
	}
}

// migFor puts a MIG device on GPU 0 of MIG-capable machines so the MIG path runs.
func migFor(machine string) map[int][]string {
	if machine == fake.DGXA100 {
		return map[int][]string{0: {"1g.5gb"}}
	}
	return nil
}

// NOT_SUPPORTED answers are "no such feature", not errors.
func TestDiscoverNotSupported(t *testing.T) {
	m, err := fake.New(fake.DGX1V100)
	require.NoError(t, err)
	for i := range m.NumGPUs() {
		d := m.Device(i)
		d.GetMemoryAffinityFunc = func(int, gonvml.AffinityScope) ([]uint, gonvml.Return) { return nil, gonvml.ERROR_NOT_SUPPORTED }
		d.GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
		d.GetTopologyCommonAncestorFunc = func(gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
			return 0, gonvml.ERROR_NOT_SUPPORTED
		}
	}
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	inv, err := lib.Discover()
	require.NoError(t, err)
	for i, g := range inv.GPUs {
		require.Equal(t, -1, g.NUMANode)
		require.Zero(t, g.NVLinkVersion)
		for j := range inv.GPUs {
			require.Equal(t, nvml.Link{}, inv.Links[i][j])
		}
	}
}

// Old drivers lack nvmlDeviceGetNvLinkRemoteDeviceType: a remote end that is
// no GPU of the node is then taken for an NVSwitch.
func TestDiscoverWithoutRemoteType(t *testing.T) {
	m, err := fake.New(fake.NVSwitch16GPU)
	require.NoError(t, err)
	m.Server().LookupSymbolFunc = func(sym string) error {
		if sym == "nvmlDeviceGetNvLinkRemoteDeviceType" {
			return gonvml.ERROR_FUNCTION_NOT_FOUND
		}
		return nil
	}
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	inv, err := lib.Discover()
	require.NoError(t, err)
	// 16 GPUs x 6 lanes into the switches: every pair NS6.
	for i := range inv.GPUs {
		for j := range inv.GPUs {
			if i != j {
				require.Equal(t, nvml.Link{Level: inv.Links[i][j].Level, NVLinks: 6, NVSwitch: true}, inv.Links[i][j])
			}
		}
	}
}

// A GPU that NVML no longer lists (fallen off the bus before the plugin
// started) takes only itself out: its peers' lanes to it are dropped and the
// other seven GPUs are discovered with their links.
func TestDiscoverWithAnUnlistedGPU(t *testing.T) {
	m, err := fake.New(fake.DGX1V100)
	require.NoError(t, err)
	m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) { return 7, gonvml.SUCCESS } // GPU 7 gone
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	inv, err := lib.Discover()
	require.NoError(t, err)
	require.Len(t, inv.GPUs, 7)
	// DGX-1 V100: 3-7 was NV1 (now gone), 0-3 NV2 and 2-3 NV2 remain.
	require.Equal(t, "NV2", inv.Links[0][3].String())
	require.Equal(t, "NV2", inv.Links[2][3].String())
	// 4-7 was NV2; 4 keeps 0-4 NV2, 4-5 NV1, 4-6 NV1.
	require.Equal(t, "NV1", inv.Links[4][5].String())
	require.Equal(t, "NV2", inv.Links[0][4].String())
}

// TestDiscoverDegradesOneGPU is the field report: on a DGX-1 V100, GPU 3
// answers ERROR_GPU_IS_LOST to DeviceGetHandleByIndex before the plugin
// starts. Discovery lists all 8 GPUs, GPU 3 degraded (lost, placeholder
// UUID, links unknown), the other 7 in full with their NVLinks; once GPU 3
// answers again RecheckGPUs passes.
func TestDiscoverDegradesOneGPU(t *testing.T) {
	for _, ret := range []gonvml.Return{gonvml.ERROR_GPU_IS_LOST, gonvml.ERROR_UNKNOWN, gonvml.ERROR_NO_PERMISSION} {
		t.Run(ret.String(), func(t *testing.T) {
			m, err := fake.New(fake.DGX1V100)
			require.NoError(t, err)
			require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, ret))
			lib := nvml.New(m.Interface())
			require.NoError(t, lib.Init())
			inv, err := lib.Discover()
			require.NoError(t, err)
			require.Len(t, inv.GPUs, 8)
			g := inv.GPUs[3]
			require.ErrorIs(t, g.Degraded, ret)
			require.Equal(t, ret == gonvml.ERROR_GPU_IS_LOST, errors.Is(g.Degraded, nvml.ErrGPULost))
			require.Equal(t, nvml.PlaceholderUUID(3), g.UUID)
			require.True(t, nvml.IsPlaceholderUUID(g.UUID))
			for i, l := range inv.Links[3] {
				require.Equal(t, nvml.Link{}, l, "link 3-%d", i)
			}
			for i, g := range inv.GPUs {
				if i != 3 {
					require.NoError(t, g.Degraded)
					require.Equal(t, m.UUID(i), g.UUID)
				}
			}
			// DGX-1 V100 hybrid cube-mesh: 0-1 NV1, 0-4 NV2, 4-7 NV2 remain.
			require.Equal(t, "NV1", inv.Links[0][1].String())
			require.Equal(t, "NV2", inv.Links[0][4].String())
			require.Equal(t, "NV2", inv.Links[4][7].String())
			earlier := refs(inv)
			require.Error(t, lib.RecheckGPUs(earlier, []int{3})[0])
			require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.SUCCESS))
			require.NoError(t, lib.RecheckGPUs(earlier, []int{3})[0])
		})
	}
}

// A library-wide error on every GPU still fails discovery: it is no one
// GPU's fault.
func TestDiscoverGlobalErrorFails(t *testing.T) {
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	m.Server().DeviceGetHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.ERROR_UNINITIALIZED }
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	_, err = lib.Discover()
	require.ErrorIs(t, err, gonvml.ERROR_UNINITIALIZED)
}

// uuidAs is a MIG device handle that reports another device's UUID.
type uuidAs struct {
	gonvml.Device
	id string
}

func (d uuidAs) GetUUID() (string, gonvml.Return) { return d.id, gonvml.SUCCESS }

// A MIG device reporting a UUID another device of the node has (a MIG
// device of the same or another GPU, or a GPU) fails discovery, as two GPUs
// with one UUID do: the UUID is the device ID the kubelet and the scheduler
// know it by, and the node's topology could never be published.
func TestDiscoverDuplicateMIGUUID(t *testing.T) {
	tests := []struct {
		name string
		// gpu's MIG device k reports the UUID of (of) in the inventory
		// discovered without the fault: a MIG device's index, or -1 for
		// GPU 0 itself.
		gpu, k, of int
		want       []string
	}{
		// GPU 0 has 1g.5gb x2 (MIG 0, 1), GPU 1 one 1g.5gb (MIG 2).
		{name: "two MIG devices of one GPU", gpu: 0, k: 1, of: 0, want: []string{"MIG device (GI", "same UUID"}},
		{name: "MIG devices of two GPUs", gpu: 1, k: 0, of: 0, want: []string{"MIG device (GI", "same UUID"}},
		{name: "a MIG device and a GPU", gpu: 1, k: 0, of: -1, want: []string{"GPU 0 and GPU 1 MIG device", "same UUID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb"}, 1: {"1g.5gb"}}))
			require.NoError(t, err)
			lib := nvml.New(m.Interface())
			require.NoError(t, lib.Init())
			clean, err := lib.Discover()
			require.NoError(t, err)
			require.Len(t, clean.MIG, 3)
			id := m.UUID(0)
			if tc.of >= 0 {
				id = clean.MIG[tc.of].UUID
			}
			d := m.Device(tc.gpu)
			orig := d.GetMigDeviceHandleByIndexFunc
			d.GetMigDeviceHandleByIndexFunc = func(k int) (gonvml.Device, gonvml.Return) {
				h, ret := orig(k)
				if k == tc.k && ret == gonvml.SUCCESS {
					return uuidAs{Device: h, id: id}, ret
				}
				return h, ret
			}
			var inv *nvml.Inventory
			require.NotPanics(t, func() { inv, err = lib.Discover() })
			require.Error(t, err, "inventory: %+v", inv)
			requireDiscoveryError(t, err, tc.want, false)
		})
	}
}
