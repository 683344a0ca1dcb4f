package nvml_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/topology"
)

// machineWant is the written expectation for one catalog machine: the link
// matrix as nvidia-smi topo -m would print it ("NV2": 2 direct NVLink lanes,
// "NS12": 12 lanes into an NVSwitch fabric, "PIX"/"PXB"/"PHB"/"NODE"/"SYS":
// PCIe common ancestor), and per-GPU facts.
type machineWant struct {
	model       string
	memoryMiB   uint64
	arch        string
	compute     string
	nvlink      int // NVLink generation, 0 for none
	migCapable  bool
	busIDs      []string
	numa        []int
	clique      bool
	topo        string
	driverCUDA  string
	switchLanes int // lanes per pair through NVSwitch, 0 when none
}

var want = map[string]machineWant{
	fake.DGXA100: {
		model: "NVIDIA A100-SXM4-40GB", memoryMiB: 40960, arch: "ampere", compute: "8.0", nvlink: 3, migCapable: true,
		busIDs: []string{"0000:07:00.0", "0000:0f:00.0", "0000:47:00.0", "0000:4e:00.0", "0000:87:00.0", "0000:90:00.0", "0000:b7:00.0", "0000:bd:00.0"},
		numa:   []int{3, 3, 1, 1, 7, 7, 5, 5}, driverCUDA: "12.4",
		// 12 lanes per GPU (2 to each of 6 NVSwitches): every pair min(12,12) = 12.
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
	fake.DGXH100: {
		model: "NVIDIA H100 80GB HBM3", memoryMiB: 81920, arch: "hopper", compute: "9.0", nvlink: 4, migCapable: true,
		busIDs: []string{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"},
		numa:   []int{0, 0, 0, 0, 1, 1, 1, 1}, driverCUDA: "12.4",
		// 18 lanes per GPU into 4 NVSwitch chips (5+4+4+5).
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
	fake.DGX1V100: {
		model: "Tesla V100-SXM2-16GB", memoryMiB: 16384, arch: "volta", compute: "7.0", nvlink: 2,
		busIDs: []string{"0000:06:00.0", "0000:07:00.0", "0000:0a:00.0", "0000:0b:00.0", "0000:85:00.0", "0000:86:00.0", "0000:89:00.0", "0000:8a:00.0"},
		numa:   []int{0, 0, 0, 0, 1, 1, 1, 1}, driverCUDA: "12.2",
		// nvidia-smi topo -m of a DGX-1V (hybrid cube-mesh). Rows sum to 6
		// lanes: GPU0 1+1+2+2, GPU1 1+2+1+2, ... GPU7 1+2+1+2.
		topo: `
X   NV1 NV1 NV2 NV2 SYS SYS SYS
NV1 X   NV2 NV1 SYS NV2 SYS SYS
NV1 NV2 X   NV2 SYS SYS NV1 SYS
NV2 NV1 NV2 X   SYS SYS SYS NV1
NV2 SYS SYS SYS X   NV1 NV1 NV2
SYS NV2 SYS SYS NV1 X   NV2 NV1
SYS SYS NV1 SYS NV1 NV2 X   NV2
SYS SYS SYS NV1 NV2 NV1 NV2 X`,
	},
	fake.PCIe4GPU2Socket: {
		model: "Tesla T4", memoryMiB: 15360, arch: "turing", compute: "7.5",
		busIDs: []string{"0000:1a:00.0", "0000:1b:00.0", "0000:86:00.0", "0000:af:00.0"},
		numa:   []int{0, 0, 1, 1}, driverCUDA: "12.2",
		topo: `
X   PIX SYS SYS
PIX X   SYS SYS
SYS SYS X   PHB
SYS SYS PHB X`,
	},
	fake.A100PCIeBridge: {
		model: "NVIDIA A100-PCIE-40GB", memoryMiB: 40960, arch: "ampere", compute: "8.0", nvlink: 3, migCapable: true,
		busIDs: []string{"0000:1b:00.0", "0000:1c:00.0", "0000:3d:00.0", "0000:3e:00.0", "0000:88:00.0", "0000:89:00.0", "0000:b1:00.0", "0000:b2:00.0"},
		numa:   []int{0, 0, 0, 0, 1, 1, 1, 1}, driverCUDA: "12.4",
		// NVLink bridges: 3 bridges x 4 lanes = 12 per pair.
		topo: `
X    NV12 NODE NODE SYS  SYS  SYS  SYS
NV12 X    NODE NODE SYS  SYS  SYS  SYS
NODE NODE X    NV12 SYS  SYS  SYS  SYS
NODE NODE NV12 X    SYS  SYS  SYS  SYS
SYS  SYS  SYS  SYS  X    NV12 NODE NODE
SYS  SYS  SYS  SYS  NV12 X    NODE NODE
SYS  SYS  SYS  SYS  NODE NODE X    NV12
SYS  SYS  SYS  SYS  NODE NODE NV12 X`,
	},
	fake.NVSwitch16GPU: {
		model: "Tesla V100-SXM3-32GB", memoryMiB: 32768, arch: "volta", compute: "7.0", nvlink: 2,
		busIDs: []string{
			"0000:34:00.0", "0000:36:00.0", "0000:39:00.0", "0000:3b:00.0", "0000:57:00.0", "0000:59:00.0", "0000:5c:00.0", "0000:5e:00.0",
			"0000:b7:00.0", "0000:b9:00.0", "0000:bc:00.0", "0000:be:00.0", "0000:e0:00.0", "0000:e2:00.0", "0000:e5:00.0", "0000:e7:00.0",
		},
		numa: []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, driverCUDA: "12.2",
		switchLanes: 6, // 6 lanes per GPU, one per switch of its baseboard
	},
	fake.GB2004GPU: {
		model: "NVIDIA GB200", memoryMiB: 184320, arch: "blackwell", compute: "10.0", nvlink: 5, migCapable: true,
		busIDs: []string{"0008:01:00.0", "0009:01:00.0", "0018:01:00.0", "0019:01:00.0"},
		numa:   []int{0, 0, 1, 1}, clique: true, driverCUDA: "12.8",
		topo: `
X    NS18 NS18 NS18
NS18 X    NS18 NS18
NS18 NS18 X    NS18
NS18 NS18 NS18 X`,
	},
}

// matrix parses a written topo matrix; an empty one with switchLanes > 0 is
// "every pair NS<switchLanes>".
func (w machineWant) matrix(n int) [][]string {
	out := make([][]string, n)
	if w.topo == "" {
		for i := range out {
			out[i] = make([]string, n)
			for j := range out[i] {
				out[i][j] = fmt.Sprintf("NS%d", w.switchLanes)
			}
			out[i][i] = "X"
		}
		return out
	}
	for i, line := range strings.Split(strings.TrimSpace(w.topo), "\n") {
		out[i] = strings.Fields(line)
	}
	return out
}

func discover(t *testing.T, name string, opts ...fake.Option) (*fake.Machine, nvml.Lib, *nvml.Inventory) {
	t.Helper()
	m, err := fake.New(name, opts...)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { require.NoError(t, lib.Shutdown()) })
	inv, err := lib.Discover()
	require.NoError(t, err)
	return m, lib, inv
}

func TestCatalogHasExpectations(t *testing.T) {
	names := fake.Names()
	require.Len(t, names, len(want), "every catalog machine needs a written expectation")
	for _, name := range names {
		require.Contains(t, want, name)
	}
}

func TestDiscoverLinkMap(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			_, _, inv := discover(t, name)
			w := want[name]
			n := len(w.busIDs)
			require.Len(t, inv.GPUs, n)
			require.Len(t, inv.Links, n)
			exp := w.matrix(n)
			for i := range n {
				require.Len(t, inv.Links[i], n)
				for j := range n {
					if i == j {
						require.Equal(t, nvml.Link{}, inv.Links[i][j], "diagonal")
						continue
					}
					require.Equal(t, exp[i][j], inv.Links[i][j].String(), "GPU%d-GPU%d", i, j)
					require.Equal(t, inv.Links[i][j], inv.Links[j][i], "symmetry GPU%d-GPU%d", i, j)
				}
			}
		})
	}
}

func TestDiscoverGPUs(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			m, _, inv := discover(t, name)
			w := want[name]
			require.Equal(t, w.driverCUDA, inv.CUDADriverVersion)
			require.NotEmpty(t, inv.DriverVersion)
			require.Empty(t, inv.MIG)
			seen := map[string]bool{}
			for i, g := range inv.GPUs {
				require.Equal(t, i, g.Index)
				require.Equal(t, i, g.Minor)
				require.Equal(t, m.UUID(i), g.UUID)
				require.True(t, strings.HasPrefix(g.UUID, "GPU-"), g.UUID)
				require.False(t, seen[g.UUID], "duplicate UUID %s", g.UUID)
				seen[g.UUID] = true
				require.Equal(t, w.model, g.Name)
				require.Equal(t, w.memoryMiB, g.MemoryMiB)
				require.Equal(t, w.busIDs[i], g.PCIBusID)
				require.Equal(t, w.numa[i], g.NUMANode)
				require.Equal(t, w.arch, g.Architecture)
				require.Equal(t, w.compute, g.CUDACompute)
				require.Equal(t, w.nvlink, g.NVLinkVersion)
				require.Equal(t, w.migCapable, g.MIGCapable)
				require.False(t, g.MIGEnabled)
				if w.clique {
					require.NotEmpty(t, g.ClusterUUID)
					require.Equal(t, inv.GPUs[0].ClusterUUID, g.ClusterUUID)
					require.Equal(t, uint32(32766), g.CliqueID)
				} else {
					require.Empty(t, g.ClusterUUID)
					require.Zero(t, g.CliqueID)
				}
			}
		})
	}
}

// Two fake machines of one name are identical: UUIDs are deterministic.
func TestDiscoverDeterministic(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			_, _, a := discover(t, name)
			_, _, b := discover(t, name)
			require.Equal(t, a, b)
		})
	}
}

// classOf maps a written matrix cell to the topology model's class.
func classOf(cell string) topology.LinkClass {
	switch {
	case strings.HasPrefix(cell, "NS"):
		return topology.ClassNVSwitch
	case strings.HasPrefix(cell, "NV"):
		return topology.ClassNVLink
	}
	return map[string]topology.LinkClass{
		"PIX": topology.ClassPIX, "PXB": topology.ClassPXB, "PHB": topology.ClassPHB,
		"NODE": topology.ClassNODE, "SYS": topology.ClassSYS,
	}[cell]
}

func lanesOf(cell string) int {
	var n int
	if _, err := fmt.Sscanf(cell[2:], "%d", &n); err != nil {
		return 0
	}
	return n
}

func TestTopology(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			_, _, inv := discover(t, name)
			w := want[name]
			node := inv.Topology()
			n := len(w.busIDs)
			require.Len(t, node.GPUs, n)
			require.Len(t, node.Links, n)
			exp := w.matrix(n)
			for i := range n {
				g := node.GPUs[i]
				require.Equal(t, i, g.Index)
				require.Equal(t, inv.GPUs[i].UUID, g.UUID)
				require.Equal(t, w.model, g.Model)
				require.Equal(t, w.memoryMiB, g.MemoryMiB)
				require.Equal(t, w.numa[i], g.NUMANode)
				require.Equal(t, w.nvlink, g.NVLinkVersion)
				require.True(t, g.Healthy)
				require.False(t, g.MIGEnabled)
				for j := range n {
					if i == j {
						continue
					}
					l := node.Links[i][j]
					require.Equal(t, classOf(exp[i][j]), l.Class, "GPU%d-GPU%d %s", i, j, exp[i][j])
					if l.Class.IsNVLink() {
						require.Equal(t, lanesOf(exp[i][j]), l.NVLinks, "GPU%d-GPU%d", i, j)
					} else {
						require.Zero(t, l.NVLinks)
					}
				}
			}
			if w.clique {
				require.Equal(t, inv.GPUs[0].ClusterUUID+".32766", node.Clique)
			} else {
				require.Empty(t, node.Clique)
			}
		})
	}
}

func TestNormalizeBusID(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "00000000:07:00.0", want: "0000:07:00.0"},
		{in: "00000000:B7:00.0", want: "0000:b7:00.0"},
		{in: "0000:bd:00.0", want: "0000:bd:00.0"},
		{in: "00000008:01:00.0", want: "0008:01:00.0"},
		{in: "", err: true},
		{in: "garbage", err: true},
		{in: "0000:07:00", err: true},
		{in: "0001ffff:07:00.0", err: true},
		{in: "0000:07:20.0", err: true},
	}
	for _, tc := range tests {
		got, err := nvml.NormalizeBusID(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}
}
