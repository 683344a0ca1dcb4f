package sim

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gpupack/gpupack/pkg/topology"
)

// ShapeKind names a GPU interconnect layout used to model the nodes of one
// GPU model (the openb traces give only the model and the GPU count).
type ShapeKind string

// Shape kinds.
const (
	// ShapeDGX1 is the DGX-1 V100 hybrid cube-mesh (NVLink 2): lanes 0-1 1,
	// 0-2 1, 0-3 2, 0-4 2, 1-2 2, 1-3 1, 1-5 2, 2-3 2, 2-6 1, 3-7 1, 4-5 1,
	// 4-6 1, 4-7 2, 5-6 2, 5-7 1, 6-7 2; other pairs NODE within a socket
	// (0-3, 4-7), SYS across. Nodes with fewer GPUs take the first ones.
	ShapeDGX1 ShapeKind = "dgx1"
	// ShapeNVSwitch connects every pair through an NVSwitch (12 NVLink 3 lanes).
	ShapeNVSwitch ShapeKind = "nvswitch"
	// ShapeNVLinkPairs is a PCIe box whose GPUs are bridged in pairs (0-1,
	// 2-3, ...) by 4 NVLink 3 lanes; other pairs NODE within a socket, SYS
	// across.
	ShapeNVLinkPairs ShapeKind = "nvlink-pairs"
	// ShapePCIe is a PCIe box: pairs 0-1, 2-3, ... share a switch (PIX),
	// other pairs NODE within a socket, SYS across (two sockets, the first
	// half of the GPUs on socket 0).
	ShapePCIe ShapeKind = "pcie"
)

// ErrNoShape is NewCluster's error for a node whose GPU model has no shape.
var ErrNoShape = errors.New("no shape for this GPU model")

// MissingShapes returns the GPU models of nodes (with GPUs) that shapes has
// no layout for, sorted.
func MissingShapes(nodes []NodeSpec, shapes Shapes) []string {
	var out []string
	for _, n := range nodes {
		if _, ok := shapes[n.Model]; !ok && n.GPUs > 0 && !slices.Contains(out, n.Model) {
			out = append(out, n.Model)
		}
	}
	slices.Sort(out)
	return out
}

// ShapeKinds lists the shape kinds, comma-separated (for messages).
func ShapeKinds() string {
	parts := make([]string, len(shapeKinds))
	for i, k := range shapeKinds {
		parts[i] = string(k)
	}
	return strings.Join(parts, ", ")
}

var shapeKinds = []ShapeKind{ShapeDGX1, ShapeNVSwitch, ShapeNVLinkPairs, ShapePCIe}

// Shapes maps a GPU model to the layout of its nodes.
type Shapes map[string]ShapeKind

// DefaultShapes are the layouts gpusim assumes for the openb models:
//
//	V100M16, V100M32  dgx1          (SXM2 V100 servers, the DGX-1 layout)
//	T4, P100, A10     pcie          (PCIe cards, no NVLink)
//	G3                nvswitch      (128-core, 768 GiB hosts: the high-end
//	                                 training box, HGX-style NVSwitch)
//	G2                nvlink-pairs  (96-core, 384 GiB hosts: PCIe cards with
//	                                 NVLink bridges in pairs, the common
//	                                 inference/fine-tuning server)
func DefaultShapes() Shapes {
	return Shapes{
		"V100M16": ShapeDGX1, "V100M32": ShapeDGX1,
		"T4": ShapePCIe, "P100": ShapePCIe, "A10": ShapePCIe,
		"G2": ShapeNVLinkPairs, "G3": ShapeNVSwitch,
	}
}

// modelCompute is the CUDA compute capability of the openb GPU models that
// are disclosed (P100, V100 SXM2, T4, A10): a node's GPU family for
// pkg/score's ranking (score.Ranked.Family, which the scheduler plugin reads
// from GPU Feature Discovery's compute labels). G2, G3 and any model of
// another node list are each a family of their own, by name.
var modelCompute = map[string]string{
	"P100": "6.0", "V100M16": "7.0", "V100M32": "7.0", "T4": "7.5", "A10": "8.6",
}

// Family is node i's GPU family (score.Ranked.Family): the compute
// capability of its model when gpusim knows it, else "model " and the
// model's name (a model named like a capability, "7.5", is not the T4s'
// family); "" for a node without GPUs.
func (c *Cluster) Family(i int) string {
	if i < len(c.families) {
		return c.families[i]
	}
	return familyOf(c.Nodes[i])
}

func familyOf(n NodeSpec) string {
	if n.GPUs == 0 {
		return ""
	}
	m := n.Model
	if cc, ok := modelCompute[m]; ok {
		return cc
	}
	return "model " + m
}

// String renders the map as MODEL=KIND pairs, sorted.
func (s Shapes) String() string {
	var parts []string
	for m, k := range s {
		parts = append(parts, m+"="+string(k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// ParseShapes applies "MODEL=KIND,..." overrides to the defaults.
func ParseShapes(spec string) (Shapes, error) {
	s := DefaultShapes()
	if strings.TrimSpace(spec) == "" {
		return s, nil
	}
	given := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		model, kind, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("shape %q: want MODEL=KIND", part)
		}
		if given[model] {
			return nil, fmt.Errorf("shape %q: model %s given twice", part, model)
		}
		given[model] = true
		if err := checkModelName(model); err != nil {
			return nil, fmt.Errorf("shape %q: %w", part, err)
		}
		if !slices.Contains(shapeKinds, ShapeKind(kind)) {
			return nil, fmt.Errorf("shape %q: unknown kind %q (want one of %v)", part, kind, shapeKinds)
		}
		s[model] = ShapeKind(kind)
	}
	return s, nil
}

// UnusedShapes names the models a --shapes spec (valid for ParseShapes)
// lays out that no node of nodes has, each with the node model it differs
// from only in case when there is one ("" otherwise): such an override
// changes nothing, and is most likely a typo.
func UnusedShapes(spec string, nodes []NodeSpec) (unused, near []string) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(spec, ",") {
		model, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		if slices.ContainsFunc(nodes, func(n NodeSpec) bool { return n.Model == model && n.GPUs > 0 }) {
			continue
		}
		guess := ""
		for _, n := range nodes {
			if n.GPUs > 0 && strings.EqualFold(n.Model, model) {
				guess = n.Model
				break
			}
		}
		unused, near = append(unused, model), append(near, guess)
	}
	return unused, near
}

// BuildNode returns the topology of an n-GPU node of model laid out as kind,
// each GPU time-shared in topology.MilliPerGPU replicas (so a gpu_milli share is a
// replica count).
func BuildNode(model string, n int, kind ShapeKind) (*topology.Node, error) {
	if n < 0 || n > topology.MaxGPUs {
		return nil, fmt.Errorf("%d GPUs: not in 0..%d", n, topology.MaxGPUs)
	}
	version := 3
	if kind == ShapeDGX1 {
		version = 2
		if n > 8 {
			return nil, fmt.Errorf("shape %s has 8 GPUs, node has %d", kind, n)
		}
	}
	half := max(1, (n+1)/2)
	link := func(i, j int) topology.Link {
		sameSocket := i/half == j/half
		switch kind {
		case ShapeDGX1:
			if l := topology.DGX1Lanes[i][j]; l > 0 {
				return topology.Link{Class: topology.ClassNVLink, NVLinks: l}
			}
			sameSocket = i/4 == j/4
		case ShapeNVSwitch:
			return topology.Link{Class: topology.ClassNVSwitch, NVLinks: 12}
		case ShapeNVLinkPairs:
			if i/2 == j/2 {
				return topology.Link{Class: topology.ClassNVLink, NVLinks: 4}
			}
		case ShapePCIe:
			if i/2 == j/2 {
				return topology.Link{Class: topology.ClassPIX}
			}
		default:
			return topology.Link{}
		}
		if sameSocket {
			return topology.Link{Class: topology.ClassNODE}
		}
		return topology.Link{Class: topology.ClassSYS}
	}
	if !slices.Contains(shapeKinds, kind) {
		return nil, fmt.Errorf("unknown shape kind %q", kind)
	}
	node := &topology.Node{Generation: 1, Links: make([][]topology.Link, n)}
	for i := range n {
		node.GPUs = append(node.GPUs, topology.GPU{
			Index: i, UUID: fmt.Sprintf("GPU-%s-%s-%d", model, kind, i), Model: model,
			NUMANode: i / half, NVLinkVersion: version, Healthy: true, Replicas: topology.MilliPerGPU,
		})
		node.Links[i] = make([]topology.Link, n)
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			l := link(i, j)
			node.Links[i][j], node.Links[j][i] = l, l
		}
	}
	return node, nil
}

// Cluster is the simulated cluster: the node list with one topology per
// distinct (model, GPU count), and nodes grouped by identical spec.
type Cluster struct {
	Nodes []NodeSpec
	// Topo[i] is node i's topology (shared by nodes of one model and size).
	Topo []*topology.Node
	// Spec[i] is the index of node i's spec group (same model, GPUs, CPU,
	// memory).
	Spec []int
	// Models are the GPU models present, indexed by ModelID.
	Models []string
	// ModelID[i] is node i's model index in Models.
	ModelID []int
	// TotalMilli is the cluster's GPU capacity in milli-GPU.
	TotalMilli int64
	Shapes     Shapes
	// families[i] is node i's Family.
	families []string
}

// NewCluster builds the cluster of the node list with the given shapes.
func NewCluster(nodes []NodeSpec, shapes Shapes) (*Cluster, error) {
	c := &Cluster{Nodes: nodes, Shapes: shapes}
	topos := map[string]*topology.Node{}
	specs := map[NodeSpec]int{}
	models := map[string]int{}
	for i, n := range nodes {
		key := fmt.Sprintf("%s/%d", n.Model, n.GPUs)
		t := topos[key]
		if t == nil {
			kind, ok := shapes[n.Model]
			if !ok && n.GPUs > 0 {
				return nil, fmt.Errorf("node %d (%s): GPU model %q: %w", i, n.Name, n.Model, ErrNoShape)
			}
			if !ok {
				kind = ShapePCIe
			}
			var err error
			if t, err = BuildNode(n.Model, n.GPUs, kind); err != nil {
				return nil, fmt.Errorf("node %d (%s): GPU model %s laid out as %s: %w (set another layout with --shapes %s=KIND)",
					i, n.Name, n.Model, kind, err, n.Model)
			}
			topos[key] = t
		}
		c.Topo = append(c.Topo, t)
		s := n
		s.Name = ""
		id, ok := specs[s]
		if !ok {
			id = len(specs)
			specs[s] = id
		}
		c.Spec = append(c.Spec, id)
		m := cpuOnlyModel // given its ID once the GPU models have theirs
		if n.GPUs > 0 {
			if m, ok = models[n.Model]; !ok {
				m = len(c.Models)
				models[n.Model] = m
				c.Models = append(c.Models, n.Model)
			}
		}
		c.ModelID = append(c.ModelID, m)
		c.families = append(c.families, familyOf(n))
		c.TotalMilli += int64(n.GPUs) * topology.MilliPerGPU
	}
	if c.TotalMilli == 0 {
		return nil, fmt.Errorf("the cluster has no GPUs: every node has gpu 0 (the protocol's target is a fraction of the GPU capacity)")
	}
	// A task's allowed models are a 64-bit set of model IDs (Class.models):
	// the GPU models take IDs 0..63, and CPU-only nodes' model "" comes
	// after them, where it may be ID 64 (its bit is then 0: no GPU task
	// fits a node without GPUs anyway).
	if len(c.Models) > 64 {
		return nil, fmt.Errorf("%d GPU models: at most 64 are supported", len(c.Models))
	}
	c.assignCPUOnlyModel()
	return c, nil
}

// cpuOnlyModel marks a CPU-only node's ModelID until assignCPUOnlyModel.
const cpuOnlyModel = -1

// assignCPUOnlyModel gives the CPU-only nodes the model "" after the GPU
// models, when there are such nodes.
func (c *Cluster) assignCPUOnlyModel() {
	id := len(c.Models)
	for i, m := range c.ModelID {
		if m == cpuOnlyModel {
			if id == len(c.Models) {
				c.Models = append(c.Models, "")
			}
			c.ModelID[i] = id
		}
	}
}
