// Package topology is the GPU topology model shared by the device plugin, the
// scheduler plugin and the simulator: a node's GPUs, the link matrix between
// them with a bandwidth figure per link, MIG layout and health; the quality of
// a GPU set; the best-set search; and the gpupack.io/topology annotation codec.
//
// It is pure Go (no cgo), so the scheduler can link it statically.
package topology

import "slices"

// LinkClass orders the ways two GPUs can be connected. Larger is better.
type LinkClass uint8

// Link classes, worst first (the zero value is "no link known").
const (
	ClassUnknown   LinkClass = iota
	ClassSYS                 // across sockets (SMP interconnect)
	ClassNODE                // host bridges within one NUMA node
	ClassPHB                 // one PCIe host bridge
	ClassPXB                 // several PCIe switches
	ClassPIX                 // one PCIe switch
	ClassSameBoard           // two GPUs on one board
	ClassNVLink              // direct NVLink lanes
	ClassNVSwitch            // NVLink through an NVSwitch fabric
)

// Link is the connection between two GPUs of a node.
type Link struct {
	Class LinkClass `json:"class"`
	// NVLinks is the lane count for ClassNVLink/ClassNVSwitch, 0 otherwise.
	NVLinks int `json:"nvlinks,omitempty"`
}

// GPU is one GPU of a node.
type GPU struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Model     string `json:"model"`
	MemoryMiB uint64 `json:"memoryMiB"`
	NUMANode  int    `json:"numa"`
	// NVLinkVersion selects the per-lane rate (see LaneGBps).
	NVLinkVersion int  `json:"nvlinkVersion,omitempty"`
	Healthy       bool `json:"healthy"`
	MIGEnabled    bool `json:"mig,omitempty"`
	// Replicas is the number of time-shared replicas advertised for the GPU
	// (0 or 1: not shared).
	Replicas int `json:"replicas,omitempty"`
}

// MIGDevice is one MIG device of a node.
type MIGDevice struct {
	UUID    string `json:"uuid"`
	Parent  int    `json:"parent"`
	Profile string `json:"profile"`
	Start   int    `json:"start"`
	Size    int    `json:"size"`
	Healthy bool   `json:"healthy"`
}

// Node is the topology of one Kubernetes node's GPUs.
type Node struct {
	GPUs []GPU `json:"gpus"`
	// Links is N x N, symmetric; the diagonal is ignored.
	Links [][]Link    `json:"links"`
	MIG   []MIGDevice `json:"mig,omitempty"`
	// Clique is the multi-node NVLink clique ("<clusterUUID>.<cliqueID>"), or "".
	Clique string `json:"clique,omitempty"`
	// Generation increases with every change the device plugin publishes.
	Generation int64 `json:"generation"`
	// Resources are the extended resources the node serves and how (kind,
	// replicas, replica policy), sorted by name. Empty in annotations of
	// format v1, written by device plugins that did not publish them.
	Resources []Resource `json:"resources,omitempty"`
}

// DeviceIndex maps the UUIDs of the node's GPUs to their position in GPUs
// (0..len(GPUs)-1) and those of its MIG devices to -1-j, j their position
// in MIG: one lookup tells a device ID's kind and where it is.
func (n *Node) DeviceIndex() map[string]int {
	idx := make(map[string]int, len(n.GPUs)+len(n.MIG))
	for i, g := range n.GPUs {
		idx[g.UUID] = i
	}
	for j, m := range n.MIG {
		idx[m.UUID] = -1 - j
	}
	return idx
}

// SetOfUUIDs returns the set of the node's GPUs with these UUIDs, and the
// UUIDs that name no GPU of the node.
func (n *Node) SetOfUUIDs(uuids []string) (set GPUSet, unknown []string) {
	for _, id := range uuids {
		i := slices.IndexFunc(n.GPUs, func(g GPU) bool { return g.UUID == id })
		if i < 0 {
			unknown = append(unknown, id)
			continue
		}
		set |= SetOf(n.GPUs[i].Index)
	}
	return set, unknown
}
