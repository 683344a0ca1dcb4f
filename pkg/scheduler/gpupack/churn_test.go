package gpupack

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// nodeInfo is a NodeInfo of node with allocatable CPU and memory, as the
// scheduler's snapshot holds it.
func nodeInfoOf(node *v1.Node) *framework.NodeInfo {
	n := node.DeepCopy()
	n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi")}
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	return ni
}

// entries is the number of node entries the cache keeps.
func entries(c gpucache.Interface) int { return c.(*gpucache.Cache).Nodes() }

// Issue 12, item 7: node entries go with their nodes. 1000 GPU nodes
// added, read by Filter and deleted leave no entry (they used to leave
// 1000); CPU-only nodes never get one; a deleted node whose pod still
// holds devices keeps a light entry until the pod goes.
func TestNodeEntriesGoWithTheirNodes(t *testing.T) {
	c := gpucache.New()
	topo := fixture.DGX1V100("c")
	for i := range 1000 {
		node := gpuNode(t, fmt.Sprintf("gpu-%d", i), topo, ids(topo, i%8)...)
		ni := nodeInfoOf(node)
		_, _ = c.UpdateNode(ni.Node())
		_, err := c.ViewNodeInfo(ni)
		require.NoError(t, err)
		require.Equal(t, 1, entries(c))
		c.RemoveNode(node.Name)
		require.Equal(t, 0, entries(c), "cycle %d", i)
	}
	require.Zero(t, c.Objects())

	// CPU-only nodes: no entry, whether added, updated or deleted.
	for i := range 100 {
		cpu := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cpu-%d", i), Labels: map[string]string{"a": "b"}}}
		_, _ = c.UpdateNode(cpu)
		_, _ = c.UpdateNode(cpu.DeepCopy())
		_, err := c.ViewNode(cpu)
		require.Error(t, err)
	}
	require.Equal(t, 0, entries(c))

	// A node that loses its GPU annotations loses its entry.
	g := gpuNode(t, "g", topo)
	_, _ = c.UpdateNode(g)
	require.Equal(t, 1, entries(c))
	_, _ = c.UpdateNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "g"}})
	require.Equal(t, 0, entries(c))

	// A deleted node whose pod still holds GPUs: the entry stays (light)
	// until the pod goes; the pod's GPUs are never counted on a new node
	// of the same name as free meanwhile.
	_, _ = c.UpdateNode(g)
	p := boundPod(t, "p", "g", 0, "nvidia.com/gpu", ids(topo, 0, 1)...)
	require.NoError(t, c.AddPod(p))
	c.RemoveNode("g")
	require.Equal(t, 1, entries(c))
	require.Nil(t, c.Topology("g"), "the deleted node's topology is dropped")
	require.Len(t, c.Used("g"), 2)
	c.Forget(p.UID)
	require.Equal(t, 0, entries(c))

	// A View of a node the informer has not delivered, or of a deleted
	// node from a cycle's older snapshot, makes an entry that the next
	// node deletion sweeps.
	_, _ = c.UpdateNode(g)
	c.RemoveNode("g")
	late := gpuNode(t, "late", topo)
	v, err := c.ViewNode(late)
	require.NoError(t, err)
	require.NotNil(t, v.State)
	_, err = c.ViewNode(g) // older snapshot
	require.NoError(t, err)
	require.Equal(t, 2, entries(c))
	c.RemoveNode("other")
	require.Equal(t, 0, entries(c))
}

// The same through the plugin's informer handlers, with GPU pods placed
// and deleted on the nodes meanwhile.
func TestNodeChurnThroughTheInformer(t *testing.T) {
	topo := fixture.NVSwitch("i", "H100", 4, 18)
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	nodes := h.cs.CoreV1().Nodes()
	for i := range 30 {
		name := fmt.Sprintf("n-%d", i)
		_, err := nodes.Create(ctx, gpuNode(t, name, topo), metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = nodes.Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cpu-" + name}}, metav1.CreateOptions{})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return entries(h.pl.cache) == 1 }, 5*time.Second, time.Millisecond)
		require.NoError(t, nodes.Delete(ctx, name, metav1.DeleteOptions{}))
		require.NoError(t, nodes.Delete(ctx, "cpu-"+name, metav1.DeleteOptions{}))
		require.Eventually(t, func() bool { return entries(h.pl.cache) == 0 }, 5*time.Second, time.Millisecond)
	}
}

// BenchmarkNodeChurn measures what the cache keeps after add / Filter /
// delete cycles of DGX-1 nodes: entries and retained heap per cycle
// (after a GC). Run before and after a change to compare.
func BenchmarkNodeChurn(b *testing.B) {
	topo := fixture.DGX1V100("b")
	raw, err := protocol.EncodeTopology(topo)
	if err != nil {
		b.Fatal(err)
	}
	var inUse []string
	for k := range 8 {
		v, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "other", Name: "p", UID: "x"}, Devices: ids(topo, k)}})
		if err != nil {
			b.Fatal(err)
		}
		inUse = append(inUse, v)
	}
	c := gpucache.New()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	i := 0
	for b.Loop() {
		node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gpu-%d", i),
			Annotations: map[string]string{protocol.TopologyAnnotation: raw, protocol.InUseAnnotation: inUse[i%8]}}}
		ni := nodeInfoOf(node)
		_, _ = c.UpdateNode(ni.Node())
		if _, err := c.ViewNodeInfo(ni); err != nil {
			b.Fatal(err)
		}
		c.RemoveNode(node.Name)
		i++
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(entries(c)), "entries")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(i), "retained-B/cycle")
	runtime.KeepAlive(c)
}
