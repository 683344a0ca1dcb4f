package gpucache

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// fastOn is entryForNodeInfo's fast path on table idx, as a reader that
// loaded idx before later changes runs it: the entry found, its current
// hotView (currentHot) and the same free CPU and memory.
func fastOn(idx *nodeIndex, ni fwk.NodeInfo) (*hotView, *nodeEntry, bool) {
	node := ni.Node()
	e := idx.find(node)
	if e == nil {
		return nil, nil, false
	}
	if h := e.currentHot(node); h != nil {
		cpu, mem, ok := freeResources(ni)
		if h.known == ok && h.cpu == cpu && h.mem == mem {
			return h, e, true
		}
	}
	return nil, nil, false
}

// Every table ever published, read by a reader that stalled since: a view
// the fast path takes from it must be the node's current entry and show
// no GPU the cache counts used as free, through random node updates (old
// objects again, same/different annotations), deletions, re-creations,
// assumes and forgets on 3 nodes. Stale tables must answer some views
// (staleHits), or the case is not exercised.
func TestStaleIndexNeverAnswersWrong(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 77))
			topo := fixture.DGX1V100("x")
			raw, err := protocol.EncodeTopology(topo)
			require.NoError(t, err)
			names := []string{"a", "b", "c"}
			var objs []*v1.Node
			mk := func(name string) *v1.Node {
				n := fixture.MakeNode().Name(name).Annotations(protocol.TopologyAnnotation, raw).Obj()
				if rng.IntN(3) == 0 {
					n.Annotations[protocol.InUseAnnotation] = ""
				}
				n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse([]string{"32", "64"}[rng.IntN(2)]),
					v1.ResourceMemory: resource.MustParse("256Gi")}
				objs = append(objs, n)
				return n
			}
			c := New()
			var tables []*nodeIndex
			infos := map[*v1.Node]*framework.NodeInfo{}
			ni := func(n *v1.Node) fwk.NodeInfo {
				if infos[n] == nil {
					infos[n] = framework.NewNodeInfo()
					infos[n].SetNode(n)
				}
				return infos[n]
			}
			uids, staleHits := 0, 0
			for step := range 3000 {
				name := names[rng.IntN(len(names))]
				switch rng.IntN(8) {
				case 0, 1:
					if len(objs) < 6 || rng.IntN(2) == 0 {
						_, _ = c.UpdateNode(mk(name))
					} else {
						_, _ = c.UpdateNode(objs[rng.IntN(len(objs))]) // an older object again
					}
				case 2:
					if rng.IntN(3) == 0 {
						c.RemoveNode(name)
					}
				case 3:
					uids++
					c.Assume(types.UID(fmt.Sprint(uids)), name, []string{topo.GPUs[rng.IntN(8)].UUID})
				case 4:
					c.Forget(types.UID(fmt.Sprint(rng.IntN(uids + 1))))
				default:
					if len(objs) > 0 {
						_, _ = c.ViewNodeInfo(ni(objs[rng.IntN(len(objs))]))
					}
				}
				if idx := c.index.Load(); idx != nil && (len(tables) == 0 || tables[len(tables)-1] != idx) {
					tables = append(tables, idx)
				}
				for ti, idx := range tables {
					for _, n := range objs {
						h, e, ok := fastOn(idx, ni(n))
						if !ok {
							continue
						}
						c.mu.RLock()
						cur := c.nodes[n.Name]
						c.mu.RUnlock()
						require.Same(t, cur, e, "step %d table %d: a dropped entry answered", step, ti)
						if idx != c.index.Load() {
							staleHits++
						}
						used := c.Used(n.Name)
						for i := range h.state.FreeGPUs().All() {
							require.False(t, used[topo.GPUs[i].UUID], "step %d table %d: GPU %d used yet free", step, ti, i)
						}
					}
				}
				c.checkIndex(t, step)
			}
			t.Logf("tables %d stale hits %d", len(tables), staleHits)
			require.Greater(t, len(tables), 3)
			require.Positive(t, staleHits)
		})
	}
}
