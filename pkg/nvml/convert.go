package nvml

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Topology converts the inventory to the topology model: every GPU healthy,
// the link class of each pair, MIG devices, and the NVLink clique (the one
// every GPU attached to a fabric shares; none when they disagree).
func (inv *Inventory) Topology() *topology.Node {
	n := &topology.Node{
		GPUs:  make([]topology.GPU, len(inv.GPUs)),
		Links: make([][]topology.Link, len(inv.GPUs)),
	}
	fabric := make([]gfd.GPU, len(inv.GPUs))
	for i, g := range inv.GPUs {
		n.GPUs[i] = topology.GPU{
			Index:         g.Index,
			UUID:          g.UUID,
			Model:         g.Name,
			MemoryMiB:     g.MemoryMiB,
			NUMANode:      g.NUMANode,
			NVLinkVersion: g.NVLinkVersion,
			Healthy:       true,
			MIGEnabled:    g.MIGEnabled,
		}
		fabric[i] = gfd.GPU{ClusterUUID: g.ClusterUUID, CliqueID: g.CliqueID}
	}
	// The clique of the GPUs attached to a fabric, none when they
	// disagree (never the first GPU's alone): the same value as
	// nvidia.com/gpu.clique, whose error the label publication logs.
	n.Clique, _ = gfd.Clique(fabric)
	for i := range n.Links {
		n.Links[i] = make([]topology.Link, len(inv.GPUs))
		for j := range n.Links[i] {
			if i != j && i < len(inv.Links) && j < len(inv.Links[i]) {
				n.Links[i][j] = inv.Links[i][j].Topology()
			}
		}
	}
	for _, m := range inv.MIG {
		n.MIG = append(n.MIG, topology.MIGDevice{
			UUID:    m.UUID,
			Parent:  m.ParentIndex,
			Profile: m.Profile,
			Start:   m.Start,
			Size:    m.Size,
			Healthy: true,
		})
	}
	return n
}

// Topology converts one link to the topology model's class and lane count.
func (l Link) Topology() topology.Link {
	switch {
	case l.NVSwitch && l.NVLinks > 0:
		return topology.Link{Class: topology.ClassNVSwitch, NVLinks: l.NVLinks}
	case l.NVLinks > 0:
		return topology.Link{Class: topology.ClassNVLink, NVLinks: l.NVLinks}
	}
	switch l.Level {
	case LevelSameBoard:
		return topology.Link{Class: topology.ClassSameBoard}
	case LevelPIX:
		return topology.Link{Class: topology.ClassPIX}
	case LevelPXB:
		return topology.Link{Class: topology.ClassPXB}
	case LevelPHB:
		return topology.Link{Class: topology.ClassPHB}
	case LevelNODE:
		return topology.Link{Class: topology.ClassNODE}
	case LevelSYS:
		return topology.Link{Class: topology.ClassSYS}
	default:
		return topology.Link{Class: topology.ClassUnknown}
	}
}

// String spells the link as nvidia-smi topo -m does ("NV12", "PIX"), with
// "NS<n>" for n lanes into an NVSwitch fabric.
func (l Link) String() string {
	switch {
	case l.NVSwitch && l.NVLinks > 0:
		return fmt.Sprintf("NS%d", l.NVLinks)
	case l.NVLinks > 0:
		return fmt.Sprintf("NV%d", l.NVLinks)
	default:
		return l.Level.String()
	}
}
