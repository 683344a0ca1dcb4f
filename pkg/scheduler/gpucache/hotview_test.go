package gpucache_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func nodeInfo(node *v1.Node, pods ...*v1.Pod) fwk.NodeInfo {
	ni := framework.NewNodeInfo(pods...)
	ni.SetNode(node)
	return ni
}

func cpuPod(name, cores string) *v1.Pod {
	return fixture.MakePod().Name(name).UID(name).RequestQuantity(string(v1.ResourceCPU), resource.MustParse(cores)).Obj()
}

// lastFrag is the FragDelta of node's last plan for request id under d as
// NormalizeScore reads it (ForEachLastPlan), and whether there is one.
func lastFrag(c *gpucache.Cache, node string, id uint64, d *score.Distribution) (float64, bool) {
	var frag float64
	found := false
	c.ForEachLastPlan(fwk.NodeScoreList{{Name: node}}, id, d, func(_ int, f gpucache.Figures) { frag, found = f.FragDelta, true })
	return frag, found
}

// A node's view for Filter and Score (ViewNodeInfo) is kept while its Node
// object, usage and free CPU and memory stay, and made again when one of
// them changes; its last plans answer only for the State they were made
// on, and NormalizeScore reads the last one stored until another is.
func TestViewNodeInfoKeepsAndRenews(t *testing.T) {
	topo := fixture.DGX1V100("h")
	node := annotated(t, "h", "64", topo)
	d := score.DefaultDistribution()
	c := gpucache.New()
	_, _ = c.UpdateNode(node)
	idle := nodeInfo(node)

	v1st, err := c.ViewNodeInfo(idle)
	require.NoError(t, err)
	cpu, _, ok := v1st.State.FreeResources()
	require.True(t, ok)
	require.Equal(t, int64(64000), cpu)
	v1st.StoreLastPlan(d, 7, gpucache.Figures{FragDelta: 1.5}, nil)

	again, err := c.ViewNodeInfo(idle)
	require.NoError(t, err)
	require.Same(t, v1st.State, again.State, "nothing changed: the same view")
	f, err, ok := again.LastPlan(d, 7)
	require.True(t, ok)
	require.NoError(t, err)
	require.Equal(t, 1.5, f.FragDelta)
	_, _, ok = again.LastPlan(&score.Distribution{}, 7)
	require.False(t, ok, "another workload snapshot")

	// 8 of the 64 cores requested: another State (64 - 8 = 56 cores free).
	busy, err := c.ViewNodeInfo(nodeInfo(node, cpuPod("cpu", "8")))
	require.NoError(t, err)
	require.NotSame(t, v1st.State, busy.State)
	cpu, _, _ = busy.State.FreeResources()
	require.Equal(t, int64(56000), cpu)
	_, _, ok = busy.LastPlan(d, 7)
	require.False(t, ok, "made on the idle State")
	frag, ok := lastFrag(c, "h", 7, d)
	require.True(t, ok, "NormalizeScore reads the last plan until another is stored")
	require.Equal(t, 1.5, frag)
	busy.StoreLastPlan(d, 7, gpucache.Figures{FragDelta: 2.5}, nil)
	frag, _ = lastFrag(c, "h", 7, d)
	require.Equal(t, 2.5, frag)

	// A pod holding a GPU: a new usage State (8 - 1 = 7 free GPUs) for
	// the same NodeInfo.
	before, err := c.ViewNodeInfo(idle)
	require.NoError(t, err)
	before.StoreLastPlan(d, 7, gpucache.Figures{FragDelta: 3.5}, nil)
	c.Assume("gpu", "h", []string{topo.GPUs[0].UUID})
	held, err := c.ViewNodeInfo(idle)
	require.NoError(t, err)
	require.NotSame(t, before.State, held.State)
	require.Equal(t, 7, held.State.FreeGPUs().Len())
	_, _, ok = held.LastPlan(d, 7)
	require.False(t, ok)

	// A new Node object whose in-use report holds GPU 1 too: 8 - 2 = 6.
	inUse, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "default", Name: "other", UID: "other"}, Devices: []string{topo.GPUs[1].UUID}}})
	require.NoError(t, err)
	report := node.DeepCopy()
	report.Annotations[protocol.InUseAnnotation] = inUse
	_, _ = c.UpdateNode(report)
	reported, err := c.ViewNodeInfo(nodeInfo(report))
	require.NoError(t, err)
	require.Equal(t, 6, reported.State.FreeGPUs().Len())

	// An unreadable report on the next Node object: the kept view must not
	// answer (which GPUs are in use is unknown), whichever NodeInfo asks,
	// and the same object's next view still fails; a good report after it
	// counts again: 8 - 1 (assumed) = 7.
	bad := report.DeepCopy()
	bad.Annotations[protocol.InUseAnnotation] = "{not json"
	_, inUseErr := c.UpdateNode(bad)
	require.Error(t, inUseErr)
	for range 2 {
		_, err = c.ViewNodeInfo(nodeInfo(bad))
		require.ErrorContains(t, err, "unreadable")
	}
	good := node.DeepCopy()
	_, _ = c.UpdateNode(good)
	recovered, err := c.ViewNodeInfo(nodeInfo(good))
	require.NoError(t, err)
	require.Equal(t, 7, recovered.State.FreeGPUs().Len())
	require.Equal(t, 1, c.Objects(), "one Node object indexed: the last")
}

// A node that reports no allocatable CPU is viewed by its usage State
// alone (ViewNode's), and its last plans answer as any node's.
func TestViewNodeInfoWithoutCPU(t *testing.T) {
	topo := fixture.DGX1V100("n")
	node := annotated(t, "n", "64", topo)
	node.Status.Allocatable = nil
	d := score.DefaultDistribution()
	c := gpucache.New()
	_, _ = c.UpdateNode(node)
	ni := nodeInfo(node)
	v, err := c.ViewNodeInfo(ni)
	require.NoError(t, err)
	plain, err := c.ViewNode(node)
	require.NoError(t, err)
	require.Same(t, plain.State, v.State)
	_, _, ok := v.State.FreeResources()
	require.False(t, ok)
	v.StoreLastPlan(d, 3, gpucache.Figures{FragDelta: 0.5}, nil)
	again, err := c.ViewNodeInfo(ni)
	require.NoError(t, err)
	f, _, ok := again.LastPlan(d, 3)
	require.True(t, ok)
	require.Equal(t, 0.5, f.FragDelta)
}

// Filter and Score on many goroutines while pods come and go on the node:
// a last plan answers only for the State it was made on (each plan here
// records its State's free GPUs), and a view never counts a GPU a pod
// holds as free. Run with -race.
func TestViewNodeInfoConcurrent(t *testing.T) {
	topo := fixture.DGX1V100("r")
	node := annotated(t, "r", "64", topo)
	d := score.DefaultDistribution()
	c := gpucache.New()
	_, _ = c.UpdateNode(node)
	ni := nodeInfo(node)
	const workers, rounds = 4, 400
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // a pod holding GPU 0 comes and goes
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			uid := types.UID(fmt.Sprintf("p%d", i))
			c.Assume(uid, "r", []string{topo.GPUs[0].UUID})
			c.Forget(uid)
		}
	}()
	// GPU 1 is held from here on: no view after this may count it, though
	// the node's view was made before.
	_, err := c.ViewNodeInfo(ni)
	require.NoError(t, err)
	c.Assume("held", "r", []string{topo.GPUs[1].UUID})
	errs := make(chan error, workers)
	var readers sync.WaitGroup
	for w := range workers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for range rounds {
				v, err := c.ViewNodeInfo(ni)
				if err != nil {
					errs <- err
					return
				}
				free := float64(v.State.FreeGPUs().Len())
				if free > 7 {
					errs <- fmt.Errorf("GPU 1 is held, yet the view has %v free GPUs", free)
					return
				}
				if f, _, ok := v.LastPlan(d, uint64(w%2+1)); ok && f.FragDelta != free {
					errs <- fmt.Errorf("a plan made with %v free GPUs answered for a State with %v", f.FragDelta, free)
					return
				}
				v.StoreLastPlan(d, uint64(w%2+1), gpucache.Figures{FragDelta: free}, nil)
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
}

// The hotView is found by the NodeInfo's generation without reading its
// free resources again, and only then: a NodeInfo of the same Node with a
// pod more (a new generation, as the framework's AddPod gives it, or a
// clone with nominated pods added) is read again and gets its own free
// CPU.
func TestViewNodeInfoFollowsGenerations(t *testing.T) {
	node := annotated(t, "g", "64", fixture.DGX1V100("g"))
	c := gpucache.New()
	_, _ = c.UpdateNode(node)
	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	free := func(ni fwk.NodeInfo) int64 {
		t.Helper()
		v, err := c.ViewNodeInfo(ni)
		require.NoError(t, err)
		cpu, _, ok := v.State.FreeResources()
		require.True(t, ok)
		return cpu
	}
	require.Equal(t, int64(64000), free(ni))
	require.Equal(t, int64(64000), free(ni), "same generation")
	clone := ni.SnapshotConcrete()
	clone.AddPod(cpuPod("a", "8"))
	require.Equal(t, int64(64000-8000), free(clone), "the clone's pod counts")
	require.Equal(t, int64(64000), free(ni), "the original has no pod")
	ni.AddPod(cpuPod("b", "16"))
	require.Equal(t, int64(64000-16000), free(ni), "a pod added in place: a new generation")
	require.Equal(t, int64(64000-8000), free(clone))
}
