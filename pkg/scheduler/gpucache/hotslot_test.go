package gpucache

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A node's view sits in its Node object's slot of Cache.hot, and goes (with
// the object it holds) when the informer delivers another object for the
// node or the node goes: the slots keep no old Node objects alive.
func TestHotSlotFollowsTheNodeObject(t *testing.T) {
	raw, err := protocol.EncodeTopology(fixture.DGX1V100("s"))
	require.NoError(t, err)
	old := fixture.MakeNode().Name("s").Annotations(protocol.TopologyAnnotation, raw).Obj()
	old.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("256Gi")}
	c := New()
	_, _ = c.UpdateNode(old)
	ni := framework.NewNodeInfo()
	ni.SetNode(old)
	v, err := c.ViewNodeInfo(ni)
	require.NoError(t, err)
	h := c.hot[hotSlot(old)].Load()
	require.NotNil(t, h)
	require.Same(t, old, h.obj)
	require.Same(t, v.State, h.state)

	updated := old.DeepCopy()
	_, _ = c.UpdateNode(updated)
	if h := c.hot[hotSlot(old)].Load(); h != nil {
		require.NotSame(t, old, h.obj, "the old object's view went")
	}
	ni.SetNode(updated)
	_, err = c.ViewNodeInfo(ni)
	require.NoError(t, err)
	require.Same(t, updated, c.hot[hotSlot(updated)].Load().obj)

	c.RemoveNode("s")
	if h := c.hot[hotSlot(updated)].Load(); h != nil {
		require.NotSame(t, updated, h.obj, "a deleted node's view went")
	}
}
