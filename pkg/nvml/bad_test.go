package nvml_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
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
			name: "NUMA error", machine: fake.DGXH100,
			break_: func(m *fake.Machine) {
				m.Device(6).GetNumaNodeIdFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPU 6", "GetNumaNodeId"}, degraded: []int{6},
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
			name: "NVLink state error", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				m.Device(7).GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
			},
			want: []string{"GPU 7", "GetNvLinkState(link 0)"}, degraded: []int{7},
		},
		{
			name: "NVLink to an unknown GPU", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				m.Device(0).GetNvLinkRemotePciInfoFunc = func(int) (gonvml.PciInfo, gonvml.Return) {
					return fake.PciInfo("0000:ee:00.0", 0), gonvml.SUCCESS
				}
			},
			// GPU 0's lanes to unlisted GPUs are dropped; its peers still
			// count lanes to GPU 0, so the two ends disagree.
			want: []string{"disagree on their NVLink lanes"},
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
			// GPU 0 claims its 2 lanes to GPU 3 go to GPU 1: the two ends
			// disagree (GPU 0 sees 1+2 = 3 lanes to GPU 1, GPU 1 sees 1).
			name: "asymmetric lanes", machine: fake.DGX1V100,
			break_: func(m *fake.Machine) {
				d := m.Device(0)
				orig := d.GetNvLinkRemotePciInfoFunc
				bus1 := m.BusID(1)
				d.GetNvLinkRemotePciInfoFunc = func(link int) (gonvml.PciInfo, gonvml.Return) {
					if link == 2 || link == 3 { // GPU 0's links: 0->1, 1->2, 2,3->3, 4,5->4
						return fake.PciInfo(bus1, 0), gonvml.SUCCESS
					}
					return orig(link)
				}
			},
			want: []string{"GPUs 0", "and 1", "disagree", "3 vs 1"},
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
		d.GetNumaNodeIdFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
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

// Wait answering GPU_IS_LOST (the real driver does when a GPU of the set
// falls off) makes WatchEvents check each GPU and report only the lost one.
func TestWatchEventsWaitGPULost(t *testing.T) {
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	create := m.Server().EventSetCreateFunc
	m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		set, ret := create()
		inner := set.(*mock.EventSet)
		wait := inner.WaitFunc
		first := true
		inner.WaitFunc = func(ms uint32) (gonvml.EventData, gonvml.Return) {
			if first {
				first = false
				m.LoseGPU(6) // queues an XID 79 too, consumed after this answer
				return gonvml.EventData{}, gonvml.ERROR_GPU_IS_LOST
			}
			return wait(ms)
		}
		return set, ret
	}
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	uuids := make([]string, m.NumGPUs())
	for i := range uuids {
		uuids[i] = m.UUID(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := lib.WatchEvents(ctx, uuids)
	require.NoError(t, err)
	// Each GPU has its own event set, watched concurrently: GPU 6 may be
	// lost before its own set is registered, and then the loss is reported
	// by the registration path, which names the GPU by UUID only (index -1;
	// the device plugin resolves events by UUID first) and never sees the
	// queued XID 79. Lost while registered, the set's Wait reports it, then
	// the XID.
	first := next(t, ch)
	require.Contains(t, []int{6, -1}, first.GPUIndex)
	require.Equal(t, nvml.Event{GPUIndex: first.GPUIndex, UUID: uuids[6], Kind: nvml.EventGPULost, GIID: -1, CIID: -1}, first)
	if first.GPUIndex == 6 {
		require.Equal(t, nvml.Event{GPUIndex: 6, UUID: uuids[6], Kind: nvml.EventGPULost, XID: 79, GIID: -1, CIID: -1}, next(t, ch))
	}
	cancel()
	requireClosed(t, ch)
}

// A Wait that keeps failing neither spins nor stops the watch; cancel ends it.
func TestWatchEventsWaitErrors(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(uint32) (gonvml.EventData, gonvml.Return) { return gonvml.EventData{}, gonvml.ERROR_UNKNOWN },
			FreeFunc: func() gonvml.Return { return gonvml.SUCCESS },
		}, gonvml.SUCCESS
	}
	for i := range m.NumGPUs() {
		m.Device(i).RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.SUCCESS }
	}
	lib := nvml.New(m.Interface(), nvml.WithEventTimeout(eventTimeout))
	require.NoError(t, lib.Init())
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := lib.WatchEvents(ctx, []string{m.UUID(0)})
	require.NoError(t, err)
	cancel()
	requireClosed(t, ch)
}

// TestWatchEventsSetupErrors: a GPU whose registration for events fails
// does not blind the other GPUs (their events arrive at once) and is
// registered again, with backoff, once the fault is gone.
func TestWatchEventsSetupErrors(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(m *fake.Machine)
		heal   func(m *fake.Machine)
		// lost: a GPUlost event for GPU 1 comes first.
		lost bool
	}{
		{name: "register fails", break_: func(m *fake.Machine) {
			require.NoError(t, m.Fail(1, fake.CallRegisterEvents, gonvml.ERROR_UNKNOWN))
		}, heal: func(m *fake.Machine) { m.Heal(1) }},
		{name: "handle fails", break_: func(m *fake.Machine) {
			require.NoError(t, m.Fail(1, fake.CallDeviceGetHandleByUUID, gonvml.ERROR_UNKNOWN))
		}, heal: func(m *fake.Machine) { m.Heal(1) }},
		{name: "create fails", break_: func(m *fake.Machine) {
			create := m.Server().EventSetCreateFunc
			fails := 0
			m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
				if fails < 3 { // GPU 0 registers, GPU 1 fails its first tries
					fails++
					if fails > 1 {
						return nil, gonvml.ERROR_UNKNOWN
					}
				}
				return create()
			}
		}, heal: func(*fake.Machine) {}},
		{name: "nil set", break_: func(m *fake.Machine) {
			create := m.Server().EventSetCreateFunc
			calls := 0
			m.Server().EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
				if calls++; calls == 2 { // GPU 1's first try
					return nil, gonvml.SUCCESS
				}
				return create()
			}
		}, heal: func(*fake.Machine) {}},
		{name: "lost GPU", break_: func(m *fake.Machine) { m.LoseGPU(1) }, heal: func(m *fake.Machine) { m.RestoreGPU(1) }, lost: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(fake.DGXA100)
			require.NoError(t, err)
			tc.break_(m)
			lib := nvml.New(m.Interface(), nvml.WithEventTimeout(10*time.Millisecond))
			require.NoError(t, lib.Init())
			ctx, cancel := context.WithCancel(context.Background())
			var ch <-chan nvml.Event
			require.NotPanics(t, func() { ch, err = lib.WatchEvents(ctx, []string{m.UUID(0), m.UUID(1)}) })
			require.NoError(t, err)
			if tc.lost {
				require.Equal(t, nvml.Event{GPUIndex: -1, UUID: m.UUID(1), Kind: nvml.EventGPULost, GIID: -1, CIID: -1}, next(t, ch))
			}
			// GPU 0 is watched although GPU 1 failed.
			m.InjectXID(0, 48)
			require.Equal(t, nvml.Event{GPUIndex: 0, UUID: m.UUID(0), Kind: nvml.EventXID, XID: 48, GIID: -1, CIID: -1}, next(t, ch))
			// GPU 1 is registered again once it can be: keep injecting
			// until the retry (backoff 10, 20, 40 ms ...) has registered it.
			tc.heal(m)
			got := make(chan nvml.Event, 1)
			go func() { got <- next(t, ch) }()
			deadline := time.After(10 * time.Second)
			for done := false; !done; {
				m.InjectXID(1, 94)
				select {
				case ev := <-got:
					require.Equal(t, nvml.Event{GPUIndex: 1, UUID: m.UUID(1), Kind: nvml.EventXID, XID: 94, GIID: -1, CIID: -1}, ev)
					done = true
				case <-time.After(20 * time.Millisecond):
				case <-deadline:
					require.FailNow(t, "GPU 1 never registered again")
				}
			}
			cancel()
			requireClosed(t, ch)
		})
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
// answers again CheckGPUAt passes.
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
			require.Error(t, lib.CheckGPUAt(3))
			require.NoError(t, m.Fail(3, fake.CallDeviceGetHandleByIndex, gonvml.SUCCESS))
			require.NoError(t, lib.CheckGPUAt(3))
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
