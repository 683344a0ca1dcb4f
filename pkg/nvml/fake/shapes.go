package fake

import (
	"slices"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
)

// Machine shapes beyond the catalog: New builds them by name, but Names does
// not list them (the catalog's machines each have written expectations in
// other packages' tests). They are the shapes users run that the catalog
// lacks, for the discovery and best-set tests.
const (
	HGXH200         = "hgx-h200-8gpu"
	DGXA10080GB     = "dgx-a100-80gb"
	HGXA1004GPU     = "hgx-a100-4gpu"
	A6000NVBridge   = "rtx-a6000-8gpu-nvbridge"
	PCIe4GPU2Switch = "pcie-4gpu-2numa-2switch"
	MixedA100T4     = "mixed-a100-t4"
	GH2004GPU       = "gh200-4gpu"
	AC9224GPU       = "ibm-ac922-4gpu"
)

var shapes = map[string]func() *spec{
	HGXH200:         hgxH200,
	DGXA10080GB:     dgxA10080GB,
	HGXA1004GPU:     hgxA1004GPU,
	A6000NVBridge:   a6000NVBridge,
	PCIe4GPU2Switch: pcie4GPU2Switch,
	MixedA100T4:     mixedA100T4,
	GH2004GPU:       gh2004GPU,
	AC9224GPU:       ac9224GPU,
}

// ShapeNames lists the extra shapes New builds, sorted.
func ShapeNames() []string {
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

var (
	h200SXM5141GB = withA100Placements(withMIGMemory(gpus.H200_SXM5_141GB, 143771, map[int]uint64{
		gonvml.GPU_INSTANCE_PROFILE_1_SLICE:      16384,
		gonvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1: 16384,
		gonvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2: 33280,
		gonvml.GPU_INSTANCE_PROFILE_2_SLICE:      33280,
		gonvml.GPU_INSTANCE_PROFILE_3_SLICE:      70656,
		gonvml.GPU_INSTANCE_PROFILE_4_SLICE:      70656,
		gonvml.GPU_INSTANCE_PROFILE_7_SLICE:      142336,
	}))
	rtxA6000 = gpus.Config{
		Name: "NVIDIA RTX A6000", Architecture: gonvml.DEVICE_ARCH_AMPERE, Brand: gonvml.BRAND_NVIDIA_RTX,
		MemoryMB: 49140, CudaMajor: 8, CudaMinor: 6, PciDeviceId: 0x223010DE,
	}
)

// withMIGMemory gives c the total memory (MiB) and GPU instance memory
// sizes (MiB, by profile ID) that a real GPU reports. The mock's H200 table
// gives 144384 in total and 18432 for 1g, which go-nvlib names 1g.35gb
// (its name rounds the instance's share of the memory up to eighths); the
// real H200's 143771 and 16384 name it 1g.18gb, as nvidia-smi does.
func withMIGMemory(c gpus.Config, totalMiB uint64, sizes map[int]uint64) gpus.Config {
	c.MemoryMB = totalMiB
	profiles := make(map[int]gonvml.GpuInstanceProfileInfo, len(c.MIGProfiles.GpuInstanceProfiles))
	for id, p := range c.MIGProfiles.GpuInstanceProfiles {
		if mib, ok := sizes[id]; ok {
			p.MemorySizeMB = mib
		}
		profiles[id] = p
	}
	c.MIGProfiles.GpuInstanceProfiles = profiles
	return c
}

// gpuAt is GPU i's product.
func (s *spec) gpuAt(i int) gpus.Config {
	if c, ok := s.others[i]; ok {
		return c
	}
	return s.gpu
}

// migCapableAt reports whether GPU i is MIG capable: the machine's product
// is, and GPU i is of it.
func (s *spec) migCapableAt(i int) bool {
	_, other := s.others[i]
	return s.migCapable() && !other
}

// configs are the mock server's GPUs, one per slot.
func (s *spec) configs() []gpus.Config {
	out := make([]gpus.Config, len(s.slots))
	for i := range out {
		out[i] = s.gpuAt(i)
	}
	return out
}

// hgxH200 is an HGX H200 8-GPU board: 8 H200 141GB, each with 18 NVLink4
// lanes into 4 NVSwitch chips (5+4+4+5, NV18 in nvidia-smi topo -m), with
// the DGX H100's PCIe layout (NODE within a socket, SYS across).
func hgxH200() *spec {
	s := dgxH100()
	s.name, s.product, s.gpu = HGXH200, "HGX H200 8-GPU", h200SXM5141GB
	return s
}

// dgxA10080GB is a DGX A100 with A100-SXM4-80GB GPUs (MIG profiles
// 1g.10gb ... 7g.80gb).
func dgxA10080GB() *spec {
	s := dgxA100()
	s.name, s.product, s.gpu = DGXA10080GB, "DGXA100 920-23687-2530-001", gpus.A100_SXM4_80GB
	return s
}

// hgxA1004GPU is an HGX A100 4-GPU board (Redstone): 4 A100-SXM4-40GB
// fully connected by direct NVLink3, 4 lanes to each of the 3 peers (NV4);
// GPUs 0-1 on NUMA 0, 2-3 on NUMA 1, each on its own root port.
func hgxA1004GPU() *spec {
	return &spec{
		name: HGXA1004GPU, product: "HGX A100 4-GPU", gpu: a100SXM440GB, driver: "550.54.15", cuda: 12040,
		version: gonvml.NVLINK_VERSION_3_0,
		slots: []slot{
			{"0000:01:00.0", 0, 0, -1, -1}, {"0000:41:00.0", 0, 1, -1, -1},
			{"0000:81:00.0", 1, 2, -1, -1}, {"0000:c1:00.0", 1, 3, -1, -1},
		},
		direct: pairs([3]int{0, 1, 4}, [3]int{0, 2, 4}, [3]int{0, 3, 4},
			[3]int{1, 2, 4}, [3]int{1, 3, 4}, [3]int{2, 3, 4}),
	}
}

// a6000NVBridge is an 8-GPU PCIe workstation server of RTX A6000 joined in
// pairs (0-1, 2-3, 4-5, 6-7) by NVLink bridges (4 NVLink3 lanes: NV4). The
// bridged pairs straddle PCIe switches: GPUs 0 and 2 share a switch (PIX),
// 1 and 3 another, both under one switch tree (PXB); 4-7 alike on socket 1
// (SYS across).
func a6000NVBridge() *spec {
	return &spec{
		name: A6000NVBridge, product: "ESC8000A-E11", gpu: rtxA6000, driver: "550.54.15", cuda: 12040,
		version: gonvml.NVLINK_VERSION_3_0,
		slots: []slot{
			{"0000:01:00.0", 0, 0, 0, 0}, {"0000:21:00.0", 0, 0, 0, 1},
			{"0000:02:00.0", 0, 0, 0, 0}, {"0000:22:00.0", 0, 0, 0, 1},
			{"0000:81:00.0", 1, 1, 1, 2}, {"0000:a1:00.0", 1, 1, 1, 3},
			{"0000:82:00.0", 1, 1, 1, 2}, {"0000:a2:00.0", 1, 1, 1, 3},
		},
		direct: pairs([3]int{0, 1, 4}, [3]int{2, 3, 4}, [3]int{4, 5, 4}, [3]int{6, 7, 4}),
	}
}

// pcie4GPU2Switch is a dual-socket PCIe server with 4 Tesla T4, two per
// socket under one PCIe switch each: PIX within a pair, SYS across.
func pcie4GPU2Switch() *spec {
	return &spec{
		name: PCIe4GPU2Switch, product: "ProLiant DL380 Gen10", gpu: teslaT4, driver: "535.183.01", cuda: 12020,
		slots: []slot{
			{"0000:1a:00.0", 0, 0, -1, 0}, {"0000:1b:00.0", 0, 0, -1, 0},
			{"0000:86:00.0", 1, 1, -1, 1}, {"0000:87:00.0", 1, 1, -1, 1},
		},
	}
}

// mixedA100T4 is a PCIe server of mixed models: two A100-PCIE-40GB joined
// by NVLink bridges (NV12) under one switch on socket 0, and two Tesla T4
// under one switch on socket 1.
func mixedA100T4() *spec {
	return &spec{
		name: MixedA100T4, product: "PowerEdge R750xa", gpu: gpus.A100_PCIE_40GB, driver: "550.54.15", cuda: 12040,
		version: gonvml.NVLINK_VERSION_3_0,
		others:  map[int]gpus.Config{2: teslaT4, 3: teslaT4},
		slots: []slot{
			{"0000:17:00.0", 0, 0, -1, 0}, {"0000:18:00.0", 0, 0, -1, 0},
			{"0000:ca:00.0", 1, 1, -1, 1}, {"0000:cb:00.0", 1, 1, -1, 1},
		},
		direct: pairs([3]int{0, 1, 12}),
	}
}
