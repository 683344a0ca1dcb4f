package fake

import (
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
)

// GPU products the mock package does not ship, or ships under a mock name.
var (
	a100SXM440GB = named(gpus.A100_SXM4_40GB, "NVIDIA A100-SXM4-40GB")
	h100SXM580GB = withA100Placements(gpus.H100_SXM5_80GB)
	gb200        = withA100Placements(named(gpus.B200_SXM5_180GB, "NVIDIA GB200"))
	v100SXM216GB = gpus.Config{
		Name: "Tesla V100-SXM2-16GB", Architecture: gonvml.DEVICE_ARCH_VOLTA, Brand: gonvml.BRAND_TESLA,
		MemoryMB: 16384, CudaMajor: 7, CudaMinor: 0, PciDeviceId: 0x1DB110DE,
	}
	v100SXM332GB = gpus.Config{
		Name: "Tesla V100-SXM3-32GB", Architecture: gonvml.DEVICE_ARCH_VOLTA, Brand: gonvml.BRAND_TESLA,
		MemoryMB: 32768, CudaMajor: 7, CudaMinor: 0, PciDeviceId: 0x1DB810DE,
	}
	teslaT4 = gpus.Config{
		Name: "Tesla T4", Architecture: gonvml.DEVICE_ARCH_TURING, Brand: gonvml.BRAND_TESLA,
		MemoryMB: 15360, CudaMajor: 7, CudaMinor: 5, PciDeviceId: 0x1EB810DE,
	}
)

func named(c gpus.Config, name string) gpus.Config {
	c.Name = name
	return c
}

// withA100Placements gives a Hopper or Blackwell config the GPU instance
// placements of the real hardware, which are those of the A100: 8 memory
// slices, 1g at 0..6 (size 1), 1g.2x (REV2) and 2g at 0, 2, 4 (size 2; REV2
// also at 6), 3g at 0 and 4 (size 4), 4g at 0 (size 4), 7g at 0 (size 8). The
// mock's own H100/B200 table gives 3g size 3 and 7g size 7, which real GPUs
// do not report.
func withA100Placements(c gpus.Config) gpus.Config {
	c.MIGProfiles.GpuInstancePlacements = gpus.A100_SXM4_40GB.MIGProfiles.GpuInstancePlacements
	return c
}

// pairs builds a direct NVLink map from {i, j, lanes} triples.
func pairs(triples ...[3]int) map[[2]int]int {
	out := make(map[[2]int]int, len(triples))
	for _, t := range triples {
		out[[2]int{t[0], t[1]}] = t[2]
	}
	return out
}

// dgxA100 is a DGX A100: 8 A100-SXM4-40GB, each with 12 NVLink3 lanes, two
// to each of 6 NVSwitches. Two AMD EPYC 7742 in NPS4 mode (8 NUMA nodes); the
// GPUs sit in pairs behind two levels of PCIe switches (PXB), on NUMA nodes
// 3, 1, 7, 5 as nvidia-smi topo -m shows; pairs on different NUMA nodes are
// SYS. Bus IDs are the DGX A100's.
func dgxA100() *spec {
	return &spec{
		name: DGXA100, product: "DGXA100 920-23687-2530-000", gpu: a100SXM440GB, driver: "550.54.15", cuda: 12040,
		version: gonvml.NVLINK_VERSION_3_0,
		slots: []slot{
			{"0000:07:00.0", 3, 0, 0, -1}, {"0000:0f:00.0", 3, 0, 0, -1},
			{"0000:47:00.0", 1, 1, 1, -1}, {"0000:4e:00.0", 1, 1, 1, -1},
			{"0000:87:00.0", 7, 2, 2, -1}, {"0000:90:00.0", 7, 2, 2, -1},
			{"0000:b7:00.0", 5, 3, 3, -1}, {"0000:bd:00.0", 5, 3, 3, -1},
		},
		fabric: &nvswitch{lanes: []int{2, 2, 2, 2, 2, 2}, boards: 1, busBase: 0xc4},
	}
}

// dgxH100 is a DGX H100: 8 H100 SXM5 80GB, each with 18 NVLink4 lanes into 4
// NVSwitch chips (5+4+4+5). Two Xeon 8480C: GPUs 0-3 on NUMA 0, 4-7 on NUMA 1,
// each GPU on its own PCIe switch and root port (NODE within a socket, SYS
// across). Bus IDs are the DGX H100's.
func dgxH100() *spec {
	return &spec{
		name: DGXH100, product: "DGXH100", gpu: h100SXM580GB, driver: "550.54.15", cuda: 12040,
		version: gonvml.NVLINK_VERSION_4_0,
		slots: []slot{
			{"0000:18:00.0", 0, 0, 0, 0}, {"0000:2a:00.0", 0, 1, 1, 1},
			{"0000:3a:00.0", 0, 2, 2, 2}, {"0000:5d:00.0", 0, 3, 3, 3},
			{"0000:9a:00.0", 1, 4, 4, 4}, {"0000:ab:00.0", 1, 5, 5, 5},
			{"0000:ba:00.0", 1, 6, 6, 6}, {"0000:db:00.0", 1, 7, 7, 7},
		},
		fabric: &nvswitch{lanes: []int{5, 4, 4, 5}, boards: 1, busBase: 0x05},
	}
}

// dgx1V100 is a DGX-1 with V100-SXM2-16GB: the hybrid cube-mesh of NVLink2,
// 6 lanes per GPU, no NVSwitch. The map is nvidia-smi topo -m on a DGX-1V:
//
//	      GPU0 GPU1 GPU2 GPU3 GPU4 GPU5 GPU6 GPU7
//	GPU0   X   NV1  NV1  NV2  NV2  SYS  SYS  SYS
//	GPU1  NV1   X   NV2  NV1  SYS  NV2  SYS  SYS
//	GPU2  NV1  NV2   X   NV2  SYS  SYS  NV1  SYS
//	GPU3  NV2  NV1  NV2   X   SYS  SYS  SYS  NV1
//	GPU4  NV2  SYS  SYS  SYS   X   NV1  NV1  NV2
//	GPU5  SYS  NV2  SYS  SYS  NV1   X   NV2  NV1
//	GPU6  SYS  SYS  NV1  SYS  NV1  NV2   X   NV2
//	GPU7  SYS  SYS  SYS  NV1  NV2  NV1  NV2   X
//
// Two fully connected quads {0,1,2,3} and {4,5,6,7} plus the i <-> i+4 links.
// Every row sums to 6 lanes (GPU0: 1+1+2+2; GPU1: 1+2+1+2; GPU2: 1+2+2+1;
// GPU3: 2+1+2+1; GPU4: 2+1+1+2; GPU5: 2+1+2+1; GPU6: 1+1+2+2; GPU7: 1+2+1+2),
// as a V100-SXM2 has exactly 6 NVLinks. PCIe: pairs {0,1} {2,3} {4,5} {6,7}
// under one PLX switch (PIX); the two switches of a socket under one host
// bridge (PHB); GPUs 0-3 on socket 0, 4-7 on socket 1 (SYS).
func dgx1V100() *spec {
	return &spec{
		name: DGX1V100, product: "DGX-1 with V100-16", gpu: v100SXM216GB, driver: "535.183.01", cuda: 12020,
		version: gonvml.NVLINK_VERSION_2_0,
		slots: []slot{
			{"0000:06:00.0", 0, 0, -1, 0}, {"0000:07:00.0", 0, 0, -1, 0},
			{"0000:0a:00.0", 0, 0, -1, 1}, {"0000:0b:00.0", 0, 0, -1, 1},
			{"0000:85:00.0", 1, 1, -1, 2}, {"0000:86:00.0", 1, 1, -1, 2},
			{"0000:89:00.0", 1, 1, -1, 3}, {"0000:8a:00.0", 1, 1, -1, 3},
		},
		direct: pairs(
			[3]int{0, 1, 1}, [3]int{0, 2, 1}, [3]int{0, 3, 2}, [3]int{0, 4, 2},
			[3]int{1, 2, 2}, [3]int{1, 3, 1}, [3]int{1, 5, 2},
			[3]int{2, 3, 2}, [3]int{2, 6, 1},
			[3]int{3, 7, 1},
			[3]int{4, 5, 1}, [3]int{4, 6, 1}, [3]int{4, 7, 2},
			[3]int{5, 6, 2}, [3]int{5, 7, 1},
			[3]int{6, 7, 2},
		),
	}
}

// pcie4GPU2Socket is a dual-socket PCIe server with 4 Tesla T4 and no
// NVLink: GPUs 0 and 1 share a PCIe switch on socket 0 (PIX); GPUs 2 and 3
// hang off two root ports of one host bridge on socket 1 (PHB); pairs across
// sockets are SYS.
func pcie4GPU2Socket() *spec {
	return &spec{
		name: PCIe4GPU2Socket, product: "PowerEdge R740", gpu: teslaT4, driver: "535.183.01", cuda: 12020,
		slots: []slot{
			{"0000:1a:00.0", 0, 0, -1, 0}, {"0000:1b:00.0", 0, 0, -1, 0},
			{"0000:86:00.0", 1, 1, -1, -1}, {"0000:af:00.0", 1, 1, -1, -1},
		},
	}
}

// a100PCIeBridge is a dual-socket PCIe server with 8 A100-PCIE-40GB joined in
// pairs (0-1, 2-3, 4-5, 6-7) by NVLink bridges: 3 bridges x 4 = 12 NVLink3
// lanes per pair. Each bridged pair shares a PCIe switch (PIX); the two
// switches of a socket sit on different root complexes (NODE); GPUs 0-3 on
// socket 0, 4-7 on socket 1 (SYS).
func a100PCIeBridge() *spec {
	return &spec{
		name: A100PCIeBridge, product: "ProLiant DL380 Gen10 Plus", gpu: gpus.A100_PCIE_40GB, driver: "550.54.15", cuda: 12040,
		version: gonvml.NVLINK_VERSION_3_0,
		slots: []slot{
			{"0000:1b:00.0", 0, 0, -1, 0}, {"0000:1c:00.0", 0, 0, -1, 0},
			{"0000:3d:00.0", 0, 1, -1, 1}, {"0000:3e:00.0", 0, 1, -1, 1},
			{"0000:88:00.0", 1, 2, -1, 2}, {"0000:89:00.0", 1, 2, -1, 2},
			{"0000:b1:00.0", 1, 3, -1, 3}, {"0000:b2:00.0", 1, 3, -1, 3},
		},
		direct: pairs([3]int{0, 1, 12}, [3]int{2, 3, 12}, [3]int{4, 5, 12}, [3]int{6, 7, 12}),
	}
}

// nvswitch16GPU is a DGX-2: 16 V100-SXM3-32GB on two baseboards, each GPU
// with 6 NVLink2 lanes, one to each of its baseboard's 6 NVSwitches; the
// baseboards' switches are trunked, so every pair gets 6 lanes through the
// fabric. PCIe: pairs under one switch (PIX), quads under a switch tree
// (PXB), the two quads of a socket on different root complexes (NODE), GPUs
// 0-7 on socket 0 and 8-15 on socket 1 (SYS). Bus IDs are the DGX-2's.
func nvswitch16GPU() *spec {
	buses := []string{
		"0000:34:00.0", "0000:36:00.0", "0000:39:00.0", "0000:3b:00.0",
		"0000:57:00.0", "0000:59:00.0", "0000:5c:00.0", "0000:5e:00.0",
		"0000:b7:00.0", "0000:b9:00.0", "0000:bc:00.0", "0000:be:00.0",
		"0000:e0:00.0", "0000:e2:00.0", "0000:e5:00.0", "0000:e7:00.0",
	}
	slots := make([]slot, len(buses))
	for i, bus := range buses {
		slots[i] = slot{bus: bus, numa: i / 8, hostBridge: i / 4, tree: i / 4, sw: i / 2}
	}
	return &spec{
		name: NVSwitch16GPU, product: "DGX-2", gpu: v100SXM332GB, driver: "535.183.01", cuda: 12020,
		version: gonvml.NVLINK_VERSION_2_0,
		slots:   slots,
		fabric:  &nvswitch{lanes: []int{1, 1, 1, 1, 1, 1}, boards: 2, busBase: 0xc0},
	}
}

// gb2004GPU is one GB200 NVL72 compute tray: two Grace CPUs with two
// Blackwell GPUs each (NUMA 0 and 1), each GPU with 18 NVLink5 lanes into
// the rack's NVSwitch trays (one lane per switch chip), and a fabric cluster
// UUID and clique ID shared by all four. GPUs of one Grace are NODE, across
// Graces SYS. The GPUs are NUMA nodes of their own (gpuNUMA); their memory
// affinity is their Grace's node.
func gb2004GPU() *spec {
	return &spec{
		name: GB2004GPU, product: "GB200 NVL", gpu: gb200, driver: "570.133.20", cuda: 12080,
		version: gonvml.NVLINK_VERSION_5_0,
		slots: []slot{
			{"0008:01:00.0", 0, 0, -1, -1}, {"0009:01:00.0", 0, 1, -1, -1},
			{"0018:01:00.0", 1, 2, -1, -1}, {"0019:01:00.0", 1, 3, -1, -1},
		},
		fabric: &nvswitch{lanes: []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, boards: 1, busBase: 0x20},
		clique: 32766,
		// Each Blackwell's memory is a NUMA node of its own, after the
		// two Graces' (0, 1), 8 apart (room for its MIG partitions).
		gpuNUMA: []int{2, 10, 18, 26},
	}
}
