package nodepublish

import (
	"time"

	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Labels are the node labels: GPU Feature Discovery's (pkg/gfd, at time
// now; none when g is nil) and gpupack.io/nvlink. The errors name GFD
// labels left out (a value the apiserver would refuse).
func Labels(n *topology.Node, g *gfd.Node, now time.Time) (map[string]string, []error) {
	out := map[string]string{}
	var errs []error
	if g != nil {
		out, errs = gfd.Labels(g, now)
	}
	out[protocol.LabelNVLink] = NVLinkKind(n)
	return out, errs
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
