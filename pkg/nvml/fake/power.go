package fake

import (
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// cpuEnd is linkEnd.peer of a lane into the GPU's CPU (an IBM NPU).
const cpuEnd = -2

// ibmNPUDeviceID is the PciDeviceId NVML reports for a POWER9 NPU: device
// 0x04ea, vendor IBM (0x1014).
const ibmNPUDeviceID = 0x04ea1014

// npuBus is the PCI bus ID of the NPU of GPU i's CPU (its NUMA node's).
func (s *spec) npuBus(i int) string {
	return fmt.Sprintf("0007:00:%02x.0", s.slots[i].numa)
}

// ac9224GPU is an IBM Power System AC922 with 4 V100-SXM2-16GB: two POWER9
// sockets (NUMA nodes 0 and 8), two GPUs each. Each GPU has 6 NVLink2
// lanes, 3 to its socket's CPU (an NPU end) and 3 to its peer (NV3); the
// pairs across sockets have no NVLink (SYS). Each GPU's memory is a NUMA
// node too (255, 254, 253, 252), coherent over NVLink.
func ac9224GPU() *spec {
	return &spec{
		name: AC9224GPU, product: "8335-GTH", gpu: v100SXM216GB, driver: "440.64.00", cuda: 10020,
		version: gonvml.NVLINK_VERSION_2_0,
		slots: []slot{
			{"0004:04:00.0", 0, 0, -1, -1}, {"0004:05:00.0", 0, 0, -1, -1},
			{"0035:03:00.0", 8, 1, -1, -1}, {"0035:04:00.0", 8, 1, -1, -1},
		},
		direct:   pairs([3]int{0, 1, 3}, [3]int{2, 3, 3}),
		cpuLanes: 3,
		gpuNUMA:  []int{255, 254, 253, 252},
	}
}
