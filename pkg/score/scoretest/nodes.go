// Package scoretest builds hand-written topology.Node fixtures for tests of
// pkg/score, pkg/scheduler and the simulator.
package scoretest

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/topology"
)

// NV is a direct NVLink with n lanes.
func NV(n int) topology.Link { return topology.Link{Class: topology.ClassNVLink, NVLinks: n} }

// SYS is a cross-socket PCIe path.
var SYS = topology.Link{Class: topology.ClassSYS}

// NODE is a path between host bridges of one NUMA node.
var NODE = topology.Link{Class: topology.ClassNODE}

// PIX is a path through one PCIe switch.
var PIX = topology.Link{Class: topology.ClassPIX}

// Build returns a node named by prefix with n healthy GPUs of model and the
// link between i and j given by link(i, j) (i < j).
func Build(prefix, model string, n, nvlinkVersion int, link func(i, j int) topology.Link) *topology.Node {
	node := &topology.Node{Generation: 1}
	for i := range n {
		node.GPUs = append(node.GPUs, topology.GPU{
			Index: i, UUID: fmt.Sprintf("GPU-%s-%d", prefix, i), Model: model,
			MemoryMiB: 16384, NUMANode: i * 2 / n, NVLinkVersion: nvlinkVersion, Healthy: true,
		})
	}
	node.Links = make([][]topology.Link, n)
	for i := range n {
		node.Links[i] = make([]topology.Link, n)
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			node.Links[i][j] = link(i, j)
			node.Links[j][i] = link(i, j)
		}
	}
	return node
}

// DGX1V100 is a DGX-1 with 8 V100 (NVLink 2, 25 GB/s a lane) in a hybrid
// cube-mesh; pairs without NVLink cross sockets (SYS) or share a NUMA node
// (NODE).
func DGX1V100(prefix string) *topology.Node {
	return Build(prefix, "V100", 8, 2, func(i, j int) topology.Link {
		if l := topology.DGX1Lanes[i][j]; l > 0 {
			return NV(l)
		}
		if i/4 == j/4 {
			return NODE
		}
		return SYS
	})
}

// NVSwitch is an n-GPU node whose GPUs all reach each other through an
// NVSwitch with lanes lanes (A100: 12, NVLink 3).
func NVSwitch(prefix, model string, n, lanes int) *topology.Node {
	return Build(prefix, model, n, 3, func(int, int) topology.Link {
		return topology.Link{Class: topology.ClassNVSwitch, NVLinks: lanes}
	})
}

// PCIe is an n-GPU box without NVLink: pairs within a half share a PCIe
// switch (PIX), the halves meet across sockets (SYS).
func PCIe(prefix, model string, n int) *topology.Node {
	return Build(prefix, model, n, 0, func(i, j int) topology.Link {
		if i/(n/2) == j/(n/2) {
			return PIX
		}
		return SYS
	})
}

// Shared sets the replica count of every GPU of node and returns it.
func Shared(node *topology.Node, replicas int) *topology.Node {
	for i := range node.GPUs {
		node.GPUs[i].Replicas = replicas
	}
	return node
}

// WithMIG puts GPU gpu of node in MIG mode with devices of the profiles
// (each of size slices, placed one after the other).
func WithMIG(node *topology.Node, gpu int, size int, profiles ...string) *topology.Node {
	node.GPUs[gpu].MIGEnabled = true
	for k, p := range profiles {
		node.MIG = append(node.MIG, topology.MIGDevice{
			UUID: fmt.Sprintf("MIG-%s-%d-%d", node.GPUs[gpu].UUID, gpu, k), Parent: gpu,
			Profile: p, Start: k * size, Size: size, Healthy: true,
		})
	}
	return node
}
