package gpucache

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// The Pricing Cache.Pricing keeps (while the supply's Version stays) is,
// after every step of a random sequence of reserves, unreserves, bound
// pods, deleted pods, in-use reports, allocatable changes, unchanged Node
// updates, removed and re-added nodes and snapshot changes, exactly the
// Pricing the supply makes now, and the Pricing a supply counted afresh
// from every node makes (up to the float sum of the free capacity, which
// the kept supply adds up node by node).
func TestPricingKeptEqualsFresh(t *testing.T) {
	// The 120-core 8-GPU type fits only the 128-core hosts: priced while
	// they are few and free.
	big := score.TaskType{Kind: score.KindWhole, Count: 8, CPUMilli: 120000}
	mid := score.TaskType{Kind: score.KindWhole, Count: 4, CPUMilli: 80000}
	one := score.TaskType{Kind: score.KindWhole, Count: 1}
	half := score.TaskType{Kind: score.KindShared, Milli: 500, CPUMilli: 4000}
	d1, err := score.NewDistribution([]score.Weighted{{Type: big, Weight: 1}, {Type: one, Weight: 9}, {Type: half, Weight: 3}})
	require.NoError(t, err)
	d2, err := score.NewDistribution([]score.Weighted{{Type: big, Weight: 2}, {Type: mid, Weight: 2}, {Type: one, Weight: 6}})
	require.NoError(t, err)
	dists := []*score.Distribution{d1, d2}

	type node struct {
		name  string
		topo  *topology.Node
		cores string
		inUse []protocol.PodDevices
	}
	nodes := []*node{
		{name: "g3a", topo: fixture.NVSwitch("g3a", "A100", 8, 12), cores: "128"},
		{name: "g3b", topo: fixture.NVSwitch("g3b", "A100", 8, 12), cores: "128"},
		{name: "g2a", topo: fixture.PCIe("g2a", "A100", 8), cores: "96"},
		{name: "g2b", topo: fixture.DGX1V100("g2b"), cores: "96"},
		{name: "sh", topo: fixture.Shared(fixture.DGX1V100("sh"), 4), cores: "64"},
	}
	obj := func(n *node) *v1.Node {
		raw, err := protocol.EncodeTopology(n.topo)
		require.NoError(t, err)
		o := fixture.MakeNode().Name(n.name).Annotations(protocol.TopologyAnnotation, raw).Obj()
		if len(n.inUse) > 0 {
			u, err := protocol.EncodeInUse(n.inUse)
			require.NoError(t, err)
			o.Annotations[protocol.InUseAnnotation] = u
		}
		o.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse(n.cores), v1.ResourceMemory: resource.MustParse("384Gi")}
		return o
	}
	c := New()
	for _, n := range nodes {
		_, _ = c.UpdateNode(obj(n))
	}
	rng := rand.New(rand.NewPCG(11, 12))
	var held []types.UID // assumed or bound pods
	kept, priced := 0, 0
	d := d1
	for step := range 600 {
		n := nodes[rng.IntN(len(nodes))]
		switch op := rng.IntN(9); op {
		case 0, 1: // Reserve: a free GPU or replica
			free := c.freeIDs(n.name)
			if len(free) == 0 {
				continue
			}
			uid := types.UID(fmt.Sprintf("p%d", step))
			c.Assume(uid, n.name, []string{free[rng.IntN(len(free))]})
			held = append(held, uid)
		case 2: // Unreserve
			if len(held) > 0 {
				i := rng.IntN(len(held))
				c.Unassume(held[i])
				held = append(held[:i], held[i+1:]...)
			}
		case 3: // the informer reports a held pod bound (no change) or deleted
			if len(held) > 0 {
				i := rng.IntN(len(held))
				node, ids, ok := c.PodDevices(held[i])
				require.True(t, ok)
				if rng.IntN(2) == 0 {
					raw, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids}})
					require.NoError(t, err)
					p := fixture.MakePod().Name(string(held[i])).UID(string(held[i])).Node(node).Annotations(protocol.DevicesAnnotation, raw).GPUs("nvidia.com/gpu", int64(len(ids))).Obj()
					require.NoError(t, c.AddPod(p))
				} else {
					c.Forget(held[i])
					held = append(held[:i], held[i+1:]...)
				}
			}
		case 4: // the device plugin reports a GPU in use by another scheduler's pod, or frees them
			if free := c.freeIDs(n.name); len(free) > 0 && rng.IntN(2) == 0 {
				n.inUse = append(n.inUse, protocol.PodDevices{PodRef: protocol.PodRef{Namespace: "x", Name: fmt.Sprintf("other%d", step), UID: fmt.Sprintf("other%d", step)}, Devices: []string{free[0]}})
			} else {
				n.inUse = nil
			}
			_, _ = c.UpdateNode(obj(n))
		case 5: // allocatable CPU changes
			n.cores = []string{"64", "96", "128"}[rng.IntN(3)]
			_, _ = c.UpdateNode(obj(n))
		case 6: // a Node status update that changes nothing here
			_, _ = c.UpdateNode(obj(n))
		case 7: // the node goes, or comes back
			if c.Topology(n.name) != nil {
				c.RemoveNode(n.name)
			} else {
				_, _ = c.UpdateNode(obj(n))
			}
		case 8: // a new workload snapshot
			d = dists[rng.IntN(len(dists))]
		}
		before := c.pricing
		pr := c.Pricing(d)
		if pr == before {
			kept++
		}
		c.mu.Lock()
		now := c.supply.Pricing()
		fresh := score.NewSupply[string](d)
		states := map[string]*score.State{}
		for name, e := range c.nodes {
			if e.topo != nil && e.inUseErr == nil {
				states[name] = c.stateLocked(e)
				fresh.Update(name, states[name])
			}
		}
		c.mu.Unlock()
		require.Equal(t, now, pr, "step %d: the kept Pricing is the supply's now", step)
		want := fresh.Pricing()
		require.Equal(t, want.Priced(), pr.Priced(), "step %d", step)
		if pr.Priced() {
			priced++
		}
		for name, st := range states {
			for g := range st.FreeGPUs().All() {
				tk := score.Taken{Whole: topology.SetOf(g)}
				require.InDelta(t, want.Cost(st, tk), pr.Cost(st, tk), 1e-9, "step %d: node %s GPU %d", step, name, g)
			}
		}
	}
	require.Positive(t, kept, "some steps keep the Pricing")
	require.Positive(t, priced, "some steps price the scarce types")
}

// freeIDs are node's devices no pod holds (whole GPUs' UUIDs; replicas'
// IDs on a shared node), sorted.
func (c *Cache) freeIDs(node string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.nodes[node]
	if e == nil || e.topo == nil {
		return nil
	}
	used := c.usedLocked(e, nil)
	var out []string
	for _, g := range e.topo.GPUs {
		if reps := g.Replicas; reps > 1 {
			for r := range reps {
				if id := fmt.Sprintf("%s::%d", g.UUID, r); !used[id] {
					out = append(out, id)
				}
			}
			continue
		}
		if !used[g.UUID] {
			out = append(out, g.UUID)
		}
	}
	return out
}
