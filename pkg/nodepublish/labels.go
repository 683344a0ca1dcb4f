package nodepublish

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Labels are the node labels for n: GFD-compatible product, count, memory
// (MiB), MIG capability and clique, plus gpupack.io/nvlink.
func Labels(n *topology.Node, migCapable bool) map[string]string {
	out := map[string]string{protocol.LabelCount: strconv.Itoa(len(n.GPUs)), protocol.LabelNVLink: NVLinkKind(n)}
	if len(n.GPUs) > 0 {
		g := n.GPUs[0]
		product := strings.Trim(labelUnsafe.ReplaceAllString(g.Model, "-"), "-_.")
		if len(product) > 63 {
			product = strings.Trim(product[:63], "-_.")
		}
		out[protocol.LabelProduct] = product
		out[protocol.LabelMemory] = strconv.FormatUint(g.MemoryMiB, 10)
	}
	out[protocol.LabelMIGCapable] = strconv.FormatBool(migCapable || len(n.MIG) > 0)
	if n.Clique != "" {
		out[protocol.LabelClique] = n.Clique
	}
	return out
}

// NVLinkKind classifies the node: switch (any NVSwitch link), mesh (a GPU
// has NVLink to two or more others), pairs (NVLink bridges between pairs),
// none.
func NVLinkKind(n *topology.Node) string {
	kind := "none"
	for i := range n.Links {
		peers := 0
		for j, l := range n.Links[i] {
			if i == j {
				continue
			}
			switch l.Class {
			case topology.ClassNVSwitch:
				return "switch"
			case topology.ClassNVLink:
				peers++
			}
		}
		switch {
		case peers >= 2:
			kind = "mesh"
		case peers == 1 && kind == "none":
			kind = "pairs"
		}
	}
	return kind
}
