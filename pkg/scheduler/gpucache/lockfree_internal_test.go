package gpucache

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// checkIndex: every Node object in the index maps to the entry whose obj
// it is, and that entry is the node's; every entry with an obj is
// indexed under it; objects and the index's live count are their number.
func (c *Cache) checkIndex(t *testing.T, step int) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	idx := c.index.Load()
	if idx == nil {
		require.Zero(t, c.objects, "step %d: objects without an index", step)
		return
	}
	n := 0
	for i := range idx.slots {
		node, e := idx.slots[i].node.Load(), idx.slots[i].entry.Load()
		if node == nil || node == deletedNode {
			continue
		}
		n++
		require.Same(t, node, e.obj, "step %d: an indexed Node is not its entry's obj", step)
		require.Same(t, e, c.nodes[node.Name], "step %d: the index maps to an entry the cache dropped", step)
	}
	require.Equal(t, n, c.objects, "step %d: objects != indexed Node objects", step)
	require.Equal(t, n, idx.live, "step %d: the index's live count", step)
	for name, e := range c.nodes {
		if e.obj != nil {
			require.Same(t, e, idx.find(e.obj), "step %d: node %s's obj not indexed", step, name)
		}
	}
}

type ungen struct{ fwk.NodeInfo }

func (ungen) GetGeneration() int64 { return 0 }

// Every view ViewNodeInfo or ViewNode returns after a random sequence of
// informer updates (topology growing and shrinking, health, in-use good
// and unreadable, allocatable), stale Node objects (older snapshots),
// node deletion and re-creation, assumes, unassumes, bound pods, finished
// pods, foreign pods (bound without gpupack.io/devices, reported in part
// or not) and NodeInfos changed in place or without generation, is exactly
// the view a model computes from the NodeInfo's Node and the pods held:
// topology, free GPUs (as many fewer as foreign pods' devices the report
// does not name yet), free CPU/memory, Used agreeing with the State; an unreadable report or topology
// always fails; a last plan answers only for the State it was made on;
// the index and Objects stay exact.
func TestLockFreeViewMatchesModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { lockFreeModel(t, seed) })
	}
}

func lockFreeModel(t *testing.T, seed uint64) {
	dgx := fixture.DGX1V100("n")         // GPU-n-0..7
	quad := fixture.PCIe("n", "A100", 4) // GPU-n-0..3: the node shrinks
	sick := fixture.DGX1V100("n")
	sick.GPUs[2].Healthy = false
	sick.GPUs[5].Healthy = false
	other := fixture.DGX1V100("z") // re-created with other GPUs
	topos := []*topology.Node{dgx, quad, sick, other}
	rawTopos := []string{"{bad topology"}
	for _, tp := range topos {
		raw, err := protocol.EncodeTopology(tp)
		require.NoError(t, err)
		rawTopos = append(rawTopos, raw)
	}
	allIDs := []string{}
	for _, tp := range topos {
		for _, g := range tp.GPUs {
			if !slices.Contains(allIDs, g.UUID) {
				allIDs = append(allIDs, g.UUID)
			}
		}
	}
	rng := rand.New(rand.NewPCG(seed, 4))
	type obj struct {
		node   *v1.Node
		topo   int // index into rawTopos (0: bad)
		inUse  []string
		badUse bool
		infos  []*framework.NodeInfo
	}
	var objs []*obj
	mk := func() *obj {
		o := &obj{topo: rng.IntN(len(rawTopos))}
		if rng.IntN(8) == 0 {
			o.topo = 0
		} else if o.topo == 0 {
			o.topo = 1
		}
		n := fixture.MakeNode().Name("n").Annotations(protocol.TopologyAnnotation, rawTopos[o.topo]).Obj()
		switch rng.IntN(4) {
		case 0:
			o.badUse = true
			n.Annotations[protocol.InUseAnnotation] = "{not json"
		case 1:
			o.inUse = []string{allIDs[rng.IntN(len(allIDs))]}
			if rng.IntN(2) == 0 { // a foreign pod's second device
				o.inUse = append(o.inUse, allIDs[rng.IntN(len(allIDs))])
			}
			u, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "x", Name: "f", UID: "foreign"}, Devices: o.inUse}})
			require.NoError(t, err)
			n.Annotations[protocol.InUseAnnotation] = u
		}
		if rng.IntN(4) != 0 {
			n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse([]string{"32", "64"}[rng.IntN(2)]),
				v1.ResourceMemory: resource.MustParse("256Gi")}
		}
		o.node = n
		objs = append(objs, o)
		return o
	}
	type pod struct {
		node    string
		ids     []string
		assumed bool
	}
	pods := map[types.UID]*pod{}
	// unheldID is a device ID no pod but uid holds on node, at random (nil
	// when none is left): a gpupack pod's devices are never another's
	// (a copied annotation is TestCopiedDevicesAnnotationHoldsItsCount's).
	unheldID := func(uid types.UID, node string) []string {
		var free []string
		for _, id := range allIDs {
			held := false
			for other, p := range pods {
				held = held || (other != uid && p.node == node && slices.Contains(p.ids, id))
			}
			if !held {
				free = append(free, id)
			}
		}
		if len(free) == 0 {
			return nil
		}
		return []string{free[rng.IntN(len(free))]}
	}
	// foreign are the pods bound without gpupack.io/devices (uid ->
	// whole GPUs asked): "foreign" is the in-use report's pod.
	foreign := map[types.UID]int{}
	d := score.DefaultDistribution()
	c := New()
	c.AddArgsNames(Names{Whole: "nvidia.com/gpu"})
	for i := range 3 {
		mk()
		_ = i
	}
	// latest is the Node object the informer delivered last, while live
	// (no RemoveNode since): a view of another object (an older snapshot;
	// these objects have no resourceVersion, so none is known newer) is
	// the view of latest's annotations.
	latest, live := objs[0], true
	_, _ = c.UpdateNode(objs[0].node)
	checked, hits, standing := 0, 0, 0
	for step := range 4000 {
		o := objs[len(objs)-1]
		if rng.IntN(3) == 0 {
			o = objs[rng.IntN(len(objs))]
		}
		switch op := rng.IntN(13); op {
		case 12: // informer: a foreign pod bound to n, or finished
			uid := types.UID([]string{"foreign", "q1", "q2"}[rng.IntN(3)])
			k := 1 + rng.IntN(3)
			p := fixture.MakePod().Name(string(uid)).UID(string(uid)).Node("n").GPUs("nvidia.com/gpu", int64(k)).Obj()
			if rng.IntN(4) == 0 {
				p.Status.Phase = v1.PodFailed
				delete(foreign, uid)
			} else {
				foreign[uid] = k
			}
			require.NoError(t, c.AddPod(p))
		case 0: // informer: a new Node object
			if len(objs) < 12 || rng.IntN(6) == 0 {
				latest, live = mk(), true
				_, _ = c.UpdateNode(latest.node)
			}
		case 1: // informer: an older object again (resync) or the same
			latest, live = o, true
			_, _ = c.UpdateNode(o.node)
		case 2:
			if rng.IntN(3) == 0 {
				c.RemoveNode("n")
				live = false
			}
		case 3:
			c.RemoveNode("elsewhere")
		case 4, 5: // Reserve
			uid := types.UID(fmt.Sprintf("p%d", rng.IntN(12)))
			node := "n"
			if rng.IntN(5) == 0 {
				node = "m"
			}
			ids := unheldID(uid, node)
			if ids == nil {
				break
			}
			c.Assume(uid, node, ids)
			if p := pods[uid]; p == nil || p.assumed { // a bound pod keeps its devices
				pods[uid] = &pod{node: node, ids: ids, assumed: true}
			}
		case 6:
			uid := types.UID(fmt.Sprintf("p%d", rng.IntN(12)))
			c.Unassume(uid)
			if p := pods[uid]; p != nil && p.assumed {
				delete(pods, uid)
			}
		case 7:
			uid := types.UID(fmt.Sprintf("p%d", rng.IntN(12)))
			if rng.IntN(4) == 0 {
				uid = types.UID([]string{"foreign", "q1", "q2"}[rng.IntN(3)])
				delete(foreign, uid)
			}
			c.Forget(uid)
			delete(pods, uid)
		case 8: // informer: a bound pod (its own devices, others, or finished)
			uid := types.UID(fmt.Sprintf("p%d", rng.IntN(12)))
			ids := unheldID(uid, "n")
			if p := pods[uid]; p != nil && p.node == "n" && rng.IntN(2) == 0 {
				ids = p.ids
			}
			if ids == nil {
				break
			}
			raw, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids}})
			require.NoError(t, err)
			p := fixture.MakePod().Name(string(uid)).UID(string(uid)).Node("n").Annotations(protocol.DevicesAnnotation, raw).GPUs("nvidia.com/gpu", int64(len(ids))).Obj()
			if rng.IntN(6) == 0 {
				p.Status.Phase = v1.PodSucceeded
				delete(pods, uid)
			} else {
				pods[uid] = &pod{node: "n", ids: ids}
			}
			require.NoError(t, c.AddPod(p))
		default: // Filter / Score / Reserve's view
			var ni fwk.NodeInfo
			var base *framework.NodeInfo
			if len(o.infos) == 0 || rng.IntN(4) == 0 {
				base = framework.NewNodeInfo()
				base.SetNode(o.node)
				o.infos = append(o.infos, base)
			} else {
				base = o.infos[rng.IntN(len(o.infos))]
			}
			if rng.IntN(5) == 0 { // a pod added in place: new generation
				base.AddPod(fixture.MakePod().Name(fmt.Sprintf("c%d", step)).UID(fmt.Sprintf("c%d", step)).
					RequestQuantity(string(v1.ResourceCPU), resource.MustParse("2")).Obj())
			}
			ni = base
			if rng.IntN(4) == 0 {
				ni = ungen{base}
			}
			var v NodeView
			var err error
			plain := rng.IntN(6) == 0
			if plain {
				v, err = c.ViewNode(o.node)
			} else {
				v, err = c.ViewNodeInfo(ni)
			}
			checked++
			viewed := o // the annotations the view must reflect
			if live {
				viewed = latest
			}
			if viewed.topo == 0 || viewed.badUse {
				require.Error(t, err, "step %d: an unreadable node got a view", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			want, err := protocol.DecodeTopology(rawTopos[viewed.topo])
			require.NoError(t, err)
			require.Equal(t, want, v.Topology, "step %d: the view's topology is not its Node's", step)
			used := map[string]bool{}
			for _, id := range viewed.inUse {
				used[id] = true
			}
			for _, p := range pods {
				if p.node == "n" {
					for _, id := range p.ids {
						used[id] = true
					}
				}
			}
			ws, _ := score.StateOf(want, used)
			// Each foreign pod's GPUs the report does not name stand
			// on as many of the free ones (as many as are left).
			missing := 0
			for uid, k := range foreign {
				known := 0
				if uid == "foreign" {
					for _, g := range want.GPUs {
						if slices.Contains(viewed.inUse, g.UUID) {
							known++
						}
					}
				}
				missing += max(0, k-known)
			}
			// A bound pod's devices the node does not have (another
			// topology's) stand on as many of the free ones too: the
			// kubelet gave it others.
			for _, p := range pods {
				if p.node != "n" || p.assumed {
					continue
				}
				for _, id := range p.ids {
					if !slices.ContainsFunc(want.GPUs, func(g topology.GPU) bool { return g.UUID == id }) {
						missing++
					}
				}
			}
			wantFree := max(0, ws.FreeGPUs().Len()-missing)
			require.Equal(t, wantFree, v.State.FreeGPUs().Len(), "step %d: free GPUs (used %v, foreign %v)", step, used, foreign)
			if missing == 0 {
				require.Equal(t, ws.FreeGPUs(), v.State.FreeGPUs(), "step %d: free GPUs (used %v)", step, used)
			}
			// Reserve's used IDs are the view's: no GPU free in one is
			// used in the other, stand-ins included.
			u := v.Used(nil)
			for i := range v.State.FreeGPUs().All() {
				require.False(t, u[want.GPUs[i].UUID], "step %d: GPU %d is free in the view, used in Used", step, i)
			}
			if missing > 0 {
				standing++
			}
			cpu, _, known := v.State.FreeResources()
			if alloc, ok := o.node.Status.Allocatable[v1.ResourceCPU]; ok {
				require.Equal(t, !plain, known, "step %d", step)
				if known {
					require.Equal(t, alloc.MilliValue()-base.GetRequested().GetMilliCPU(), cpu, "step %d: free CPU", step)
				}
			}
			// A last plan records the free GPUs and CPU of its State.
			fig := Figures{FragDelta: float64(v.State.FreeGPUs()), Ratio: float64(cpu)}
			if f, _, ok := v.LastPlan(d, 1); ok {
				hits++
				require.Equal(t, fig, f, "step %d: a last plan of another State answered", step)
			}
			v.StoreLastPlan(d, 1, fig, nil)
		}
		c.checkIndex(t, step)
	}
	t.Logf("views checked %d (%d with stand-ins), last-plan hits %d, objects %d", checked, standing, hits, len(objs))
	require.Positive(t, hits)
	require.Positive(t, standing)
}

// An Assume that has completed is seen by every view asked after it, on
// any number of goroutines, while the informer replaces the Node object
// (allocatable changing, so the usage State too), the in-use report
// changes and views store last plans: a GPU assumed before a Reserve
// starts is never free in its view. Run with -race.
func TestLockFreeViewSeesCompletedAssume(t *testing.T) {
	topo := fixture.DGX1V100("n")
	raw, err := protocol.EncodeTopology(topo)
	require.NoError(t, err)
	mkNode := func(i int) *framework.NodeInfo {
		n := fixture.MakeNode().Name("n").Annotations(protocol.TopologyAnnotation, raw).Obj()
		n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse([]string{"32", "64", "96"}[i%3]),
			v1.ResourceMemory: resource.MustParse("256Gi")}
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		return ni
	}
	c := New()
	var cur atomic.Pointer[framework.NodeInfo]
	cur.Store(mkNode(0))
	_, _ = c.UpdateNode(cur.Load().Node())
	// seq: epoch<<8 | GPUs 0..count-1 assumed in this epoch.
	var seq atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the informer: new Node objects
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ni := mkNode(i)
			_, _ = c.UpdateNode(ni.Node())
			cur.Store(ni)
			if i%7 == 0 {
				c.RemoveNode("elsewhere")
			}
		}
	}()
	go func() { // Reserve and the pods' end
		defer wg.Done()
		for epoch := uint64(1); ; epoch++ {
			for k := range 8 {
				select {
				case <-stop:
					return
				default:
				}
				c.Assume(types.UID(fmt.Sprintf("e%d-%d", epoch, k)), "n", []string{topo.GPUs[k].UUID})
				seq.Store(epoch<<8 | uint64(k+1))
			}
			seq.Store(epoch<<8 | 0xff) // forgetting: readers skip
			for k := range 8 {
				c.Forget(types.UID(fmt.Sprintf("e%d-%d", epoch, k)))
			}
			seq.Store((epoch + 1) << 8)
		}
	}()
	d := score.DefaultDistribution()
	errs := make(chan error, 4)
	var readers sync.WaitGroup
	for w := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for range 3000 {
				before := seq.Load()
				v, err := c.ViewNodeInfo(cur.Load())
				if err != nil {
					errs <- err
					return
				}
				count := before & 0xff
				if after := seq.Load(); count == 0xff || after>>8 != before>>8 || after&0xff == 0xff {
					continue // a Forget may have run meanwhile
				}
				free := v.State.FreeGPUs()
				for k := range int(count) {
					if free.Has(k) {
						errs <- fmt.Errorf("GPU %d was assumed before the view was asked (seq %x -> %x), yet it is free", k, before, seq.Load())
						return
					}
				}
				v.StoreLastPlan(d, uint64(w), Figures{FragDelta: float64(free)}, nil)
			}
		}()
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	c.checkIndex(t, -1)
}
