// Package fake is a catalog of whole fake machines for pkg/nvml, built on
// go-nvml's mock servers (github.com/NVIDIA/go-nvml/pkg/nvml/mock/server).
//
// The mocks answer identity, memory and MIG-profile questions; this package
// fills in what they leave to panic: PCIe topology, NVLink lanes and remote
// ends, NUMA nodes, NVLink fabric (clique) info, event sets, MIG device
// handles, and the memory-error state that says a GPU needs a reset (ECC
// counts, pending page retirement or row remapping). A machine can inject
// XID and ECC events, lose a GPU, and reset one (memory.go).
//
// Every machine is deterministic: UUIDs derive from the machine name and the
// GPU index, PCI bus IDs are those of the real system where it is known.
package fake

import (
	"fmt"
	"slices"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
)

// Catalog names.
const (
	DGXA100         = "dgx-a100"
	DGXH100         = "dgx-h100"
	DGX1V100        = "dgx-1-v100"
	PCIe4GPU2Socket = "pcie-4gpu-2socket"
	A100PCIeBridge  = "a100-pcie-8gpu-nvbridge"
	NVSwitch16GPU   = "nvswitch-16gpu"
	GB2004GPU       = "gb200-4gpu"
)

// catalog maps a machine name to its description.
var catalog = map[string]func() *spec{
	DGXA100:         dgxA100,
	DGXH100:         dgxH100,
	DGX1V100:        dgx1V100,
	PCIe4GPU2Socket: pcie4GPU2Socket,
	A100PCIeBridge:  a100PCIeBridge,
	NVSwitch16GPU:   nvswitch16GPU,
	GB2004GPU:       gb2004GPU,
}

// Names lists the catalog's machines, sorted.
func Names() []string {
	names := make([]string, 0, len(catalog))
	for name := range catalog {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// slot places one GPU on the PCIe tree. GPUs that share a non-negative sw
// sit under one PCIe switch (PIX); a shared tree is a hierarchy of switches
// (PXB); a shared hostBridge is one root complex (PHB); a shared numa node is
// NODE; anything else crosses sockets (SYS). -1 means "none".
type slot struct {
	bus        string // sysfs form, "0000:07:00.0"
	numa       int
	hostBridge int
	tree       int
	sw         int
}

// nvswitch describes how each GPU reaches the NVSwitch fabric.
type nvswitch struct {
	// lanes[k] is the number of NVLink lanes from every GPU to switch k of its
	// baseboard.
	lanes []int
	// boards splits the GPUs evenly over baseboards with their own switches
	// (DGX-2: 2 boards of 6 switches).
	boards int
	// busBase is the PCI bus number of the first switch.
	busBase int
}

// spec describes one machine of the catalog.
type spec struct {
	name    string
	gpu     gpus.Config
	driver  string
	cuda    int
	slots   []slot
	version gonvml.NvlinkVersion
	// direct maps a pair {i, j} (i < j) to its direct NVLink lanes.
	direct map[[2]int]int
	// fabric is set when the GPUs reach an NVSwitch fabric.
	fabric *nvswitch
	// clique is the NVLink clique ID (with a cluster UUID derived from the
	// name); 0 when the machine is in no multi-node NVLink domain.
	clique uint32
	// others are the GPUs of another product than gpu, by index (a node of
	// mixed models); they are not MIG capable here.
	others map[int]gpus.Config
	// product is the machine's DMI product name
	// (/sys/class/dmi/id/product_name), as the vendor's firmware writes it.
	product string
	// cpuLanes is the number of NVLink lanes from every GPU to its CPU
	// (IBM POWER9's NPU), listed after its direct lanes.
	cpuLanes int
	// gpuNUMA are the GPUs' own NUMA nodes (their memory), by index, on
	// platforms where GPUs are NUMA nodes (Grace: GH200, GB200), which
	// nvmlDeviceGetNumaNodeId reports; nil elsewhere (x86), where it
	// answers NOT_SUPPORTED. A slot's numa is the node its memory affinity
	// names (nvmlDeviceGetMemoryAffinity, node scope), the CPUs' node.
	gpuNUMA []int
}

func (s *spec) migCapable() bool {
	return len(s.gpu.MIGProfiles.GpuInstanceProfiles) > 0
}

// level is the PCIe common ancestor of GPUs i and j.
func (s *spec) level(i, j int) gonvml.GpuTopologyLevel {
	a, b := s.slots[i], s.slots[j]
	switch {
	case a.sw >= 0 && a.sw == b.sw:
		return gonvml.TOPOLOGY_SINGLE
	case a.tree >= 0 && a.tree == b.tree:
		return gonvml.TOPOLOGY_MULTIPLE
	case a.hostBridge >= 0 && a.hostBridge == b.hostBridge:
		return gonvml.TOPOLOGY_HOSTBRIDGE
	case a.numa >= 0 && a.numa == b.numa:
		return gonvml.TOPOLOGY_NODE
	default:
		return gonvml.TOPOLOGY_SYSTEM
	}
}

// validate checks the description: a bus ID per GPU and, for every GPU, no
// more NVLink lanes than the mock can expose.
func (s *spec) validate() error {
	if len(s.slots) == 0 {
		return fmt.Errorf("machine %q has no GPUs", s.name)
	}
	for i := range s.slots {
		if n := len(s.links(i)); n > gonvml.NVLINK_MAX_LINKS {
			return fmt.Errorf("machine %q: GPU %d has %d NVLink lanes, more than %d", s.name, i, n, gonvml.NVLINK_MAX_LINKS)
		}
	}
	for pair := range s.direct {
		if pair[0] >= pair[1] || pair[1] >= len(s.slots) {
			return fmt.Errorf("machine %q: bad NVLink pair %v", s.name, pair)
		}
	}
	return nil
}
