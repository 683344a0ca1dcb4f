package nvml_test

import (
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// requireMatrix checks a discovered link matrix against a written one
// (nvidia-smi topo -m labels, "X" on the diagonal) and its symmetry.
func requireMatrix(t *testing.T, inv *nvml.Inventory, topo string) {
	t.Helper()
	rows := strings.Split(strings.TrimSpace(topo), "\n")
	require.Len(t, inv.Links, len(rows))
	for i, line := range rows {
		cells := strings.Fields(line)
		require.Len(t, cells, len(rows), "row %d", i)
		for j, cell := range cells {
			if i == j {
				require.Equal(t, nvml.Link{}, inv.Links[i][j])
				continue
			}
			require.Equal(t, cell, inv.Links[i][j].String(), "GPU%d-GPU%d", i, j)
			require.Equal(t, inv.Links[i][j], inv.Links[j][i], "symmetry GPU%d-GPU%d", i, j)
		}
	}
}

// TestDiscoverShapes discovers the machine shapes beyond the catalog
// (fake.ShapeNames) as the device plugin does and checks their link maps,
// models and NVLink generations.
func TestDiscoverShapes(t *testing.T) {
	tests := []struct {
		machine string
		models  []string // per GPU
		nvlink  int
		topo    string
	}{
		{
			// 18 NVLink4 lanes per GPU into 4 NVSwitch chips: every pair NS18.
			machine: fake.HGXH200, models: repeat("NVIDIA H200 141GB HBM3e", 8), nvlink: 4,
			topo: `
X    NS18 NS18 NS18 NS18 NS18 NS18 NS18
NS18 X    NS18 NS18 NS18 NS18 NS18 NS18
NS18 NS18 X    NS18 NS18 NS18 NS18 NS18
NS18 NS18 NS18 X    NS18 NS18 NS18 NS18
NS18 NS18 NS18 NS18 X    NS18 NS18 NS18
NS18 NS18 NS18 NS18 NS18 X    NS18 NS18
NS18 NS18 NS18 NS18 NS18 NS18 X    NS18
NS18 NS18 NS18 NS18 NS18 NS18 NS18 X`,
		},
		{
			// 12 lanes per GPU, 2 to each of 6 NVSwitches.
			machine: fake.DGXA10080GB, models: repeat("NVIDIA A100-SXM4-80GB", 8), nvlink: 3,
			topo: `
X    NS12 NS12 NS12 NS12 NS12 NS12 NS12
NS12 X    NS12 NS12 NS12 NS12 NS12 NS12
NS12 NS12 X    NS12 NS12 NS12 NS12 NS12
NS12 NS12 NS12 X    NS12 NS12 NS12 NS12
NS12 NS12 NS12 NS12 X    NS12 NS12 NS12
NS12 NS12 NS12 NS12 NS12 X    NS12 NS12
NS12 NS12 NS12 NS12 NS12 NS12 X    NS12
NS12 NS12 NS12 NS12 NS12 NS12 NS12 X`,
		},
		{
			// 12 direct lanes per GPU, 4 to each of its 3 peers.
			machine: fake.HGXA1004GPU, models: repeat("NVIDIA A100-SXM4-40GB", 4), nvlink: 3,
			topo: `
X   NV4 NV4 NV4
NV4 X   NV4 NV4
NV4 NV4 X   NV4
NV4 NV4 NV4 X`,
		},
		{
			// NV4 bridges join 0-1, 2-3, 4-5, 6-7; the PCIe switches hold
			// 0+2 and 1+3 (PIX), one tree per socket (PXB), SYS across.
			machine: fake.A6000NVBridge, models: repeat("NVIDIA RTX A6000", 8), nvlink: 3,
			topo: `
X   NV4 PIX PXB SYS SYS SYS SYS
NV4 X   PXB PIX SYS SYS SYS SYS
PIX PXB X   NV4 SYS SYS SYS SYS
PXB PIX NV4 X   SYS SYS SYS SYS
SYS SYS SYS SYS X   NV4 PIX PXB
SYS SYS SYS SYS NV4 X   PXB PIX
SYS SYS SYS SYS PIX PXB X   NV4
SYS SYS SYS SYS PXB PIX NV4 X`,
		},
		{
			machine: fake.PCIe4GPU2Switch, models: repeat("Tesla T4", 4),
			topo: `
X   PIX SYS SYS
PIX X   SYS SYS
SYS SYS X   PIX
SYS SYS PIX X`,
		},
		{
			// Two A100 PCIe bridged (NV12) and two T4 without NVLink.
			machine: fake.MixedA100T4, nvlink: 3,
			models: []string{"NVIDIA A100-PCIE-40GB", "NVIDIA A100-PCIE-40GB", "Tesla T4", "Tesla T4"},
			topo: `
X    NV12 SYS  SYS
NV12 X    SYS  SYS
SYS  SYS  X    PIX
SYS  SYS  PIX  X`,
		},
		{
			// Four GH200: 6 direct NVLink4 lanes between every pair of
			// Hoppers (18 each, 3 peers); each on its own Grace (SYS).
			machine: fake.GH2004GPU, models: repeat("NVIDIA GH200 480GB", 4), nvlink: 4,
			topo: `
X   NV6 NV6 NV6
NV6 X   NV6 NV6
NV6 NV6 X   NV6
NV6 NV6 NV6 X`,
		},
		{
			// 3 lanes to the peer, 3 to the CPU (not a GPU-GPU link).
			machine: fake.AC9224GPU, models: repeat("Tesla V100-SXM2-16GB", 4), nvlink: 2,
			topo: `
X   NV3 SYS SYS
NV3 X   SYS SYS
SYS SYS X   NV3
SYS SYS NV3 X`,
		},
	}
	require.Len(t, tests, len(fake.ShapeNames()), "every shape needs a written expectation")
	for _, tc := range tests {
		t.Run(tc.machine, func(t *testing.T) {
			_, _, inv := discover(t, tc.machine)
			requireMatrix(t, inv, tc.topo)
			require.Len(t, inv.GPUs, len(tc.models))
			for i, g := range inv.GPUs {
				require.Nil(t, g.Degraded, "GPU %d", i)
				require.Equal(t, tc.models[i], g.Name, "GPU %d", i)
				if inv.Links[i][(i+1)%len(inv.GPUs)].NVLinks > 0 {
					require.Equal(t, tc.nvlink, g.NVLinkVersion, "GPU %d", i)
				}
			}
			require.NoError(t, inv.Topology().Validate())
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestDiscoverMIGProfileNames creates every GPU instance profile of the
// H200 and the A100-80GB and checks the names discovery gives them:
// NVIDIA's (nvidia-smi mig -lgip), which the node publishes and the
// nvidia.com/mig-<profile> resources are named after.
func TestDiscoverMIGProfileNames(t *testing.T) {
	tests := []struct {
		machine string
		layout  map[int][]string
		want    map[int][]string // profiles discovered per GPU, in slice order
	}{
		{
			machine: fake.HGXH200,
			layout: map[int][]string{
				0: {"1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb"},
				1: {"7g.141gb"},
				2: {"4g.71gb", "3g.71gb"},
				3: {"2g.35gb", "2g.35gb", "3g.71gb"},
				4: {"1g.35gb", "1g.35gb", "1g.18gb+me"},
			},
			want: map[int][]string{
				0: {"1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb", "1g.18gb"},
				1: {"7g.141gb"},
				2: {"4g.71gb", "3g.71gb"},
				3: {"2g.35gb", "2g.35gb", "3g.71gb"},
				4: {"1g.35gb", "1g.35gb", "1g.18gb+me"},
			},
		},
		{
			machine: fake.DGXA10080GB,
			layout: map[int][]string{
				0: {"1g.10gb+me", "1g.10gb", "2g.20gb", "3g.40gb"},
				7: {"4g.40gb", "1g.20gb", "1g.20gb"},
				5: {"7g.80gb"},
			},
			want: map[int][]string{
				0: {"1g.10gb+me", "1g.10gb", "2g.20gb", "3g.40gb"},
				5: {"7g.80gb"},
				7: {"4g.40gb", "1g.20gb", "1g.20gb"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.machine, func(t *testing.T) {
			_, _, inv := discover(t, tc.machine, fake.WithMIG(tc.layout))
			got := map[int][]string{}
			for _, m := range inv.MIG {
				got[m.ParentIndex] = append(got[m.ParentIndex], m.Profile)
			}
			require.Equal(t, tc.want, got)
			require.NoError(t, inv.Topology().Validate())
		})
	}
}

// TestDiscoverNVLinkDown discovers nodes with NVLink lanes down at both
// ends, as a failed link reads: the pair keeps the lanes still up, and a
// GPU with none left is linked to its peers through PCIe only.
func TestDiscoverNVLinkDown(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		down    func(m *fake.Machine) error
		pairs   map[[2]int]string // links that changed, as topo -m labels
		same    [2]int            // a pair that did not change
		label   string            // its label
	}{
		{
			// DGX-1: GPU 0-3 has 2 lanes; one down leaves NV1.
			name: "DGX-1 one of two lanes", machine: fake.DGX1V100,
			down:  func(m *fake.Machine) error { return m.LinkDown(0, 3, 1) },
			pairs: map[[2]int]string{{0, 3}: "NV1"}, same: [2]int{0, 4}, label: "NV2",
		},
		{
			// Both lanes of 0-3 down: the pair is PCIe only (same host
			// bridge: PHB).
			name: "DGX-1 whole link", machine: fake.DGX1V100,
			down:  func(m *fake.Machine) error { return m.LinkDown(0, 3, 2) },
			pairs: map[[2]int]string{{0, 3}: "PHB"}, same: [2]int{1, 2}, label: "NV2",
		},
		{
			// H100 GPU 3 keeps 12 of its 18 switch lanes: min(18, 12) = 12
			// for each of its pairs.
			name: "H100 six switch lanes", machine: fake.DGXH100,
			down: func(m *fake.Machine) error { return m.LinkDown(3, -1, 6) },
			pairs: map[[2]int]string{{0, 3}: "NS12", {1, 3}: "NS12", {2, 3}: "NS12", {3, 4}: "NS12",
				{3, 5}: "NS12", {3, 6}: "NS12", {3, 7}: "NS12"},
			same: [2]int{0, 1}, label: "NS18",
		},
		{
			// H100 GPU 3 with no lane up: NODE within its socket, SYS across.
			name: "H100 off the fabric", machine: fake.DGXH100,
			down: func(m *fake.Machine) error { return m.LinkDown(3, -1, 18) },
			pairs: map[[2]int]string{{0, 3}: "NODE", {1, 3}: "NODE", {2, 3}: "NODE", {3, 4}: "SYS",
				{3, 5}: "SYS", {3, 6}: "SYS", {3, 7}: "SYS"},
			same: [2]int{0, 1}, label: "NS18",
		},
		{
			// A6000 bridge 6-7 down: the pair meets through its PCIe tree.
			name: "A6000 bridge", machine: fake.A6000NVBridge,
			down:  func(m *fake.Machine) error { return m.LinkDown(6, 7, 4) },
			pairs: map[[2]int]string{{6, 7}: "PXB"}, same: [2]int{4, 5}, label: "NV4",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fake.New(tc.machine)
			require.NoError(t, err)
			require.NoError(t, tc.down(m))
			lib := nvml.New(m.Interface())
			require.NoError(t, lib.Init())
			t.Cleanup(func() { require.NoError(t, lib.Shutdown()) })
			inv, err := lib.Discover()
			require.NoError(t, err)
			for pair, label := range tc.pairs {
				require.Equal(t, label, inv.Links[pair[0]][pair[1]].String(), "GPU%d-GPU%d", pair[0], pair[1])
				require.Equal(t, inv.Links[pair[0]][pair[1]], inv.Links[pair[1]][pair[0]])
			}
			require.Equal(t, tc.label, inv.Links[tc.same[0]][tc.same[1]].String())
			for i, g := range inv.GPUs {
				require.Nil(t, g.Degraded, "GPU %d", i)
			}
			require.NoError(t, inv.Topology().Validate())
		})
	}
}

// TestLinkDownRefusesMissingLanes: the fake refuses to take down lanes a
// pair does not have, and changes nothing then.
func TestLinkDownRefusesMissingLanes(t *testing.T) {
	m, err := fake.New(fake.DGX1V100)
	require.NoError(t, err)
	require.ErrorContains(t, m.LinkDown(0, 5, 1), "GPU 0 has 0 lanes up to 5") // 0-5 is SYS
	require.ErrorContains(t, m.LinkDown(0, 3, 3), "fewer than 3")              // 0-3 is NV2
	require.ErrorContains(t, m.LinkDown(0, 0, 1), "no such GPUs")
	require.ErrorContains(t, m.LinkDown(0, 8, 1), "no such GPUs")
	require.ErrorContains(t, m.LinkDown(0, -1, 1), "fewer than 1") // no NVSwitch
	_, _, inv := discoverMachine(t, m)
	require.Equal(t, "NV2", inv.Links[0][3].String())
}

// TestDiscoverNoGPU: a node whose driver lists no GPU (all hidden from the
// container, or all fallen off the bus before start) discovers as an empty
// inventory, and its topology validates.
func TestDiscoverNoGPU(t *testing.T) {
	m, err := fake.New(fake.DGXH100)
	require.NoError(t, err)
	m.Server().DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, gonvml.SUCCESS }
	_, _, inv := discoverMachine(t, m)
	require.Empty(t, inv.GPUs)
	require.Empty(t, inv.MIG)
	require.Empty(t, inv.Links)
	n := inv.Topology()
	require.NoError(t, n.Validate())
	require.Zero(t, n.Usable())
}

func discoverMachine(t *testing.T, m *fake.Machine) (*fake.Machine, nvml.Lib, *nvml.Inventory) {
	t.Helper()
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { require.NoError(t, lib.Shutdown()) })
	inv, err := lib.Discover()
	require.NoError(t, err)
	return m, lib, inv
}
