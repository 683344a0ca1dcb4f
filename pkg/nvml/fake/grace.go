package fake

import (
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
)

// gh200 is the Hopper GPU of a GH200 Grace Hopper Superchip: 96 GB of HBM3
// (97871 MiB, as NVML reports it); its MIG profiles are the H100's.
var gh200 = withA100Placements(withMIGMemory(named(gpus.H100_SXM5_80GB, "NVIDIA GH200 480GB"), 97871, nil))

// gh2004GPU is a node of four GH200 superchips (HPE Cray EX254n and alike):
// each Grace is NUMA node 0..3 with its Hopper behind NVLink-C2C, which
// NVML lists as no NVLink; the four Hoppers are fully connected by direct
// NVLink4, 6 of their 18 lanes to each peer (NV6). Each GPU hangs off its
// own Grace's root complex, so every pair is SYS on PCIe. Each GPU's memory
// is a NUMA node of its own (4, 12, 20, 28: after the four Graces, 8 apart
// for its MIG partitions), which GetNumaNodeId reports; its memory
// affinity is its Grace's node.
func gh2004GPU() *spec {
	return &spec{
		name: GH2004GPU, product: "HPE Cray Supercomputing EX254n", gpu: gh200, driver: "550.54.15", cuda: 12040,
		version: gonvml.NVLINK_VERSION_4_0,
		slots: []slot{
			{"0009:01:00.0", 0, 0, -1, -1}, {"0019:01:00.0", 1, 1, -1, -1},
			{"0029:01:00.0", 2, 2, -1, -1}, {"0039:01:00.0", 3, 3, -1, -1},
		},
		direct: pairs([3]int{0, 1, 6}, [3]int{0, 2, 6}, [3]int{0, 3, 6},
			[3]int{1, 2, 6}, [3]int{1, 3, 6}, [3]int{2, 3, 6}),
		gpuNUMA: []int{4, 12, 20, 28},
	}
}
