package topology

import (
	"fmt"
	"math/rand/v2"
)

// Hand-built test machines. Each builder returns a fresh Node.

// pair is an unordered GPU pair with its link.
type pair struct {
	a, b int
	link Link
}

// buildNode makes a node of n healthy GPUs with the given NVLink version,
// every pair linked by pcie(a, b), then overridden by the given pairs.
func buildNode(name string, n, version int, pcie func(a, b int) LinkClass, pairs ...pair) *Node {
	node := &Node{GPUs: make([]GPU, n), Links: make([][]Link, n)}
	for i := range n {
		node.GPUs[i] = GPU{
			Index: i, UUID: fmt.Sprintf("GPU-%s-%02d", name, i), Model: name,
			MemoryMiB: 81920, NUMANode: 0, NVLinkVersion: version, Healthy: true,
		}
		node.Links[i] = make([]Link, n)
	}
	for i := range n {
		for j := range n {
			if i != j {
				node.Links[i][j] = Link{Class: pcie(min(i, j), max(i, j))}
			}
		}
	}
	for _, p := range pairs {
		node.Links[p.a][p.b] = p.link
		node.Links[p.b][p.a] = p.link
	}
	return node
}

func nv(a, b, lanes int) pair { return pair{a, b, Link{Class: ClassNVLink, NVLinks: lanes}} }

// dgx1Pairs is the DGX-1 V100 hybrid cube-mesh: NVLink2 lanes per pair.
var dgx1Pairs = [][3]int{
	{0, 1, 1}, {0, 2, 1}, {0, 3, 2}, {0, 4, 2}, {1, 2, 2}, {1, 3, 1}, {1, 5, 2}, {2, 3, 2},
	{2, 6, 1}, {3, 7, 1}, {4, 5, 1}, {4, 6, 1}, {4, 7, 2}, {5, 6, 2}, {5, 7, 1}, {6, 7, 2},
}

// dgx1PCIe: PIX within {0,1},{2,3},{4,5},{6,7}; NODE within a socket
// ({0-3}, {4-7}); SYS across.
func dgx1PCIe(a, b int) LinkClass {
	switch {
	case a/2 == b/2:
		return ClassPIX
	case a/4 == b/4:
		return ClassNODE
	default:
		return ClassSYS
	}
}

// dgx1 is the DGX-1 V100: 2 lanes = 50 GB/s, 1 lane = 25 GB/s, PIX 16,
// NODE 10, SYS 6.
func dgx1() *Node {
	var pairs []pair
	for _, p := range dgx1Pairs {
		pairs = append(pairs, nv(p[0], p[1], p[2]))
	}
	n := buildNode("dgx1", 8, 2, dgx1PCIe, pairs...)
	for i := 4; i < 8; i++ {
		n.GPUs[i].NUMANode = 1
	}
	return n
}

// dgxA100 is 8 GPUs, each with 12 NVLink3 lanes into NVSwitches: 300 GB/s
// between every pair.
func dgxA100() *Node {
	var pairs []pair
	for i := range 8 {
		for j := i + 1; j < 8; j++ {
			pairs = append(pairs, pair{i, j, Link{Class: ClassNVSwitch, NVLinks: 12}})
		}
	}
	return buildNode("dgxa100", 8, 3, dgx1PCIe, pairs...)
}

// pcie4 is a 4-GPU dual-socket PCIe box: 0-1 PIX (16), 2-3 PHB (12), SYS (6)
// across sockets.
func pcie4() *Node {
	return buildNode("pcie4", 4, 0, func(a, b int) LinkClass {
		switch {
		case a == 0 && b == 1:
			return ClassPIX
		case a == 2 && b == 3:
			return ClassPHB
		default:
			return ClassSYS
		}
	})
}

// a100PCIe8 is 8 A100 PCIe with NVLink bridges (12 lanes v3 = 300 GB/s) in
// pairs {0,1},{2,3},{4,5},{6,7}; PXB (14) within a socket's quad, SYS across.
func a100PCIe8() *Node {
	return buildNode("a100pcie", 8, 3, func(a, b int) LinkClass {
		if a/4 == b/4 {
			return ClassPXB
		}
		return ClassSYS
	}, nv(0, 1, 12), nv(2, 3, 12), nv(4, 5, 12), nv(6, 7, 12))
}

// nvs16 is a 16-GPU NVSwitch box (DGX-2 style): 6 NVLink2 lanes each, 150
// GB/s between every pair.
func nvs16() *Node {
	var pairs []pair
	for i := range 16 {
		for j := i + 1; j < 16; j++ {
			pairs = append(pairs, pair{i, j, Link{Class: ClassNVSwitch, NVLinks: 6}})
		}
	}
	return buildNode("nvs16", 16, 2, func(a, b int) LinkClass {
		if a/8 == b/8 {
			return ClassNODE
		}
		return ClassSYS
	}, pairs...)
}

// mixed16 is two DGX-1 cube-meshes (GPUs 0-7 and 8-15) joined by PCIe: GPU i
// and i+8 share a PCIe switch tree (PXB, 14), other pairs across the two
// boards are SYS (6).
func mixed16() *Node {
	var pairs []pair
	for _, p := range dgx1Pairs {
		pairs = append(pairs, nv(p[0], p[1], p[2]), nv(p[0]+8, p[1]+8, p[2]))
	}
	return buildNode("mixed16", 16, 2, func(a, b int) LinkClass {
		switch {
		case a/8 == b/8:
			return dgx1PCIe(a%8, b%8)
		case b-a == 8:
			return ClassPXB
		default:
			return ClassSYS
		}
	}, pairs...)
}

// randomNode is an n-GPU node with random classes and lane counts.
func randomNode(seed uint64, n int) *Node {
	r := rand.New(rand.NewPCG(seed, 7))
	var pairs []pair
	for i := range n {
		for j := i + 1; j < n; j++ {
			c := LinkClass(r.IntN(int(ClassNVSwitch) + 1))
			l := Link{Class: c}
			if c.IsNVLink() {
				l.NVLinks = 1 + r.IntN(3)
			}
			pairs = append(pairs, pair{i, j, l})
		}
	}
	return buildNode(fmt.Sprintf("random%d", seed), n, 1+r.IntN(5), func(int, int) LinkClass { return ClassSYS }, pairs...)
}

// sparseNode is an n-GPU node where a few random pairs have NVLink and the rest
// is SYS or NODE: rings at the top levels are rare, which exercises the DP.
func sparseNode(seed uint64, n int) *Node {
	r := rand.New(rand.NewPCG(seed, 11))
	var pairs []pair
	for i := range n {
		for j := i + 1; j < n; j++ {
			if r.IntN(3) == 0 {
				pairs = append(pairs, nv(i, j, 1+r.IntN(2)))
			}
		}
	}
	return buildNode(fmt.Sprintf("sparse%d", seed), n, 2, func(a, b int) LinkClass {
		if (a+b)%3 == 0 {
			return ClassNODE
		}
		return ClassSYS
	}, pairs...)
}

// migNode is a DGX A100 with GPU 0 in MIG mode (two 3g.20gb devices, one of
// them unhealthy), GPU 1 shared 4 ways, GPU 7 unhealthy, and a clique.
func migNode() *Node {
	n := dgxA100()
	n.GPUs[0].MIGEnabled = true
	n.GPUs[1].Replicas = 4
	n.GPUs[7].Healthy = false
	n.MIG = []MIGDevice{
		{UUID: "MIG-aaaa", Parent: 0, Profile: "3g.20gb", Start: 0, Size: 4, Healthy: true},
		{UUID: "MIG-bbbb", Parent: 0, Profile: "3g.20gb", Start: 4, Size: 4},
	}
	n.Clique = "4f3c2a10-0000-4000-8000-000000000001.3"
	n.Generation = 42
	return n
}

type namedNode struct {
	name string
	node *Node
}

func testNodes() []namedNode {
	return []namedNode{
		{"dgx-1-v100", dgx1()},
		{"dgx-a100", dgxA100()},
		{"pcie-4gpu-2socket", pcie4()},
		{"a100-pcie-8gpu-nvbridge", a100PCIe8()},
		{"nvswitch-16gpu", nvs16()},
		{"mixed-16gpu", mixed16()},
		{"random-10", randomNode(1, 10)},
		{"random-12", randomNode(2, 12)},
		{"sparse-12", sparseNode(3, 12)},
		{"sparse-16", sparseNode(4, 16)},
		{"bipartite-16", bipartite16()},
	}
}

// bipartite16 has 2-lane NVLink between every even and every odd GPU and SYS
// elsewhere: the NVLink graph has no odd ring, and rings at 50 GB/s need as
// many even GPUs as odd ones, which defeats the cheap bounds (an adversarial
// case for the search).
func bipartite16() *Node {
	var pairs []pair
	for i := 0; i < 16; i += 2 {
		for j := 1; j < 16; j += 2 {
			pairs = append(pairs, nv(i, j, 2))
		}
	}
	return buildNode("bipartite16", 16, 2, func(int, int) LinkClass { return ClassSYS }, pairs...)
}
