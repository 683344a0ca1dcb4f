package gpucache_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/resource"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// A view's Empty is its topology's State with nothing in use, whatever
// the node's usage, built once per decoded topology: every view of the
// node (ViewNode, ViewNodeInfo, the lock-free hot path) shares it until
// the topology annotation changes (a health change included).
func TestViewEmptyState(t *testing.T) {
	encode := func(n *topology.Node) string {
		raw, err := protocol.EncodeTopology(n)
		require.NoError(t, err)
		return raw
	}
	healthy := fixture.DGX1V100("e")
	sick := fixture.DGX1V100("e")
	sick.GPUs[3].Healthy = false
	inUse, err := protocol.EncodeInUse([]protocol.PodDevices{{PodRef: protocol.PodRef{Namespace: "x", Name: "f", UID: "f"}, Devices: []string{healthy.GPUs[0].UUID, healthy.GPUs[1].UUID}}})
	require.NoError(t, err)

	c := gpucache.New()
	node := fixture.MakeNode().Name("n").Annotations(protocol.TopologyAnnotation, encode(healthy), protocol.InUseAnnotation, inUse).
		Allocatable("cpu", resource.MustParse("64")).Obj()
	node.ResourceVersion = "1"
	_, _ = c.UpdateNode(node)
	ni := framework.NewNodeInfo()
	ni.SetNode(node)

	v1, err := c.ViewNode(node)
	require.NoError(t, err)
	require.NotNil(t, v1.Empty)
	require.Same(t, v1.Topology, v1.Empty.Node())
	// 8 usable, none in use in Empty; 8 - 2 = 6 free in State.
	require.Equal(t, 8, v1.Empty.FreeGPUs().Len())
	require.Equal(t, 6, v1.State.FreeGPUs().Len())
	var views []gpucache.NodeView
	for range 2 { // the second is the lock-free hot path
		v, err := c.ViewNodeInfo(fwk.NodeInfo(ni))
		require.NoError(t, err)
		views = append(views, v)
	}
	for _, v := range views {
		require.Same(t, v1.Empty, v.Empty)
		require.Same(t, v1.Empty, v.WithState(v.State.Clone()).Empty)
	}

	// GPU 3 unhealthy: a new topology, a new Empty with 7 usable.
	node2 := node.DeepCopy()
	node2.ResourceVersion = "2"
	node2.Annotations[protocol.TopologyAnnotation] = encode(sick)
	_, _ = c.UpdateNode(node2)
	v2, err := c.ViewNode(node2)
	require.NoError(t, err)
	require.NotSame(t, v1.Empty, v2.Empty)
	require.Same(t, v2.Topology, v2.Empty.Node())
	require.Equal(t, 7, v2.Empty.FreeGPUs().Len())
}
