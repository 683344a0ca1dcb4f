package fake

import (
	"math/bits"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// installNUMA answers GPU i's two NUMA questions as the driver does:
//
//   - GetNumaNodeId is the GPU's own NUMA node, "only on platforms where the
//     GPUs are NUMA nodes" (nvml.h): Grace machines (spec.gpuNUMA), where
//     the GPU's memory is a node of its own; NOT_SUPPORTED on x86;
//   - GetMemoryAffinity (node scope) is the bit mask of the NUMA nodes
//     closest to the GPU: its slot's node, the CPUs' (nvidia-smi topo -m's
//     "NUMA Affinity"); NOT_SUPPORTED when the slot has none (-1).
func (m *Machine) installNUMA(i int, d *server.Device) {
	d.GetNumaNodeIdFunc = func() (int, gonvml.Return) {
		if i >= len(m.spec.gpuNUMA) {
			return 0, gonvml.ERROR_NOT_SUPPORTED
		}
		return m.spec.gpuNUMA[i], gonvml.SUCCESS
	}
	d.GetMemoryAffinityFunc = func(numNodes int, scope gonvml.AffinityScope) ([]uint, gonvml.Return) {
		node := m.spec.slots[i].numa
		switch {
		case numNodes < 1 || scope != gonvml.AFFINITY_SCOPE_NODE && scope != gonvml.AFFINITY_SCOPE_SOCKET:
			return nil, gonvml.ERROR_INVALID_ARGUMENT
		case node < 0:
			return nil, gonvml.ERROR_NOT_SUPPORTED
		}
		set := make([]uint, (numNodes+bits.UintSize-1)/bits.UintSize)
		if node < numNodes {
			set[node/bits.UintSize] |= 1 << (node % bits.UintSize)
		}
		return set, gonvml.SUCCESS
	}
}
