package gpupack

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// plan is the device choice for every GPU container of a pod on one node.
type plan struct {
	// choices are kept only when the plan names devices (Reserve); Filter
	// and Score need the figures below.
	choices   []score.Choice
	fragDelta float64
	// ratio is the worst quality ratio of the multi-GPU sets (1 if none);
	// ring and ideal are that set's bandwidths (0 when none).
	ratio, ring, ideal float64
}

// makePlan chooses devices for each request in turn on view, each choice
// seeing the ones before it. It fails with the reason when one does not fit.
// names: name the devices (Reserve); Filter and Score only need the figures.
func (pl *GPUPack) makePlan(view NodeView, reqs []containerRequest, names bool) (plan, error) {
	st := view.State
	dist := pl.workload.Distribution()
	p := plan{ratio: 1}
	choose := score.Evaluate
	if names {
		choose = score.ChooseState
	}
	for i, r := range reqs {
		c, ok := choose(st, r.req, dist)
		if !ok {
			return plan{}, fmt.Errorf("no free healthy %s for %d x %s%s", r.req.Kind, r.req.Count, r.resource, hintNote(r.req))
		}
		if names {
			p.choices = append(p.choices, c)
		}
		p.fragDelta += c.FragDelta
		if r.req.Kind == score.KindWhole && r.req.Count > 1 && r.req.Topology != score.HintNone {
			if q := c.QualityRatio(); q < p.ratio || p.ideal == 0 {
				p.ratio, p.ring, p.ideal = q, c.Quality.RingGBps, c.Ideal.RingGBps
			}
		}
		if i < len(reqs)-1 {
			if i == 0 {
				st = st.Clone()
			}
			st.Apply(c)
			if cpu, mem, ok := st.FreeResources(); ok && (r.req.CPUMilli > 0 || r.req.MemoryMiB > 0) {
				st.SetFree(cpu-r.req.CPUMilli, mem-r.req.MemoryMiB)
			}
		}
	}
	return p, nil
}

func hintNote(r score.Request) string {
	if r.Kind == score.KindWhole && r.Count > 1 && r.Topology == score.HintRequired {
		return " with the best link class of the node (topology: required)"
	}
	return ""
}

// deviceIDs names the plan's devices; replica numbers are picked against
// used (the node's usage) so that they are free.
func (p *plan) deviceIDs(node *topology.Node, reqs []containerRequest, used map[string]bool) (protocol.Devices, []string) {
	d := protocol.Devices{Resources: map[string][]string{}, Containers: map[string]map[string][]string{}}
	var all []string
	for i, c := range p.choices {
		ids := c.DeviceIDs
		if c.Kind == score.KindShared {
			ids = sharedIDs(node, c.Shares, used)
		}
		for _, id := range ids {
			used[id] = true
		}
		r := reqs[i]
		d.Resources[r.resource] = append(d.Resources[r.resource], ids...)
		if d.Containers[r.container] == nil {
			d.Containers[r.container] = map[string][]string{}
		}
		d.Containers[r.container][r.resource] = append(d.Containers[r.container][r.resource], ids...)
		all = append(all, ids...)
	}
	return d, all
}

func sharedIDs(node *topology.Node, shares []score.Share, used map[string]bool) []string {
	var ids []string
	for _, sh := range shares {
		g := node.GPUs[sh.GPU]
		for n, k := 0, 0; k < max(1, g.Replicas) && n < sh.Replicas; k++ {
			if id := score.ReplicaID(g.UUID, k); !used[id] {
				ids = append(ids, id)
				n++
			}
		}
	}
	return ids
}
