package gpucache_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func annotated(t testing.TB, name, cores string, topo *topology.Node) *v1.Node {
	t.Helper()
	raw, err := protocol.EncodeTopology(topo)
	require.NoError(t, err)
	n := fixture.MakeNode().Name(name).Annotations(protocol.TopologyAnnotation, raw).Obj()
	n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cores), v1.ResourceMemory: resource.MustParse("384Gi")}
	return n
}

// Pricing follows the nodes and the pods the cache holds: the only host of
// a 120-core 8-GPU type is priced while it is free, not once a pod holds
// one of its GPUs or once the node goes; an unreadable node is not counted.
func TestPricingFollowsTheCache(t *testing.T) {
	big := score.TaskType{Kind: score.KindWhole, Count: 8, CPUMilli: 120000}
	one := score.TaskType{Kind: score.KindWhole, Count: 1}
	d, err := score.NewDistribution([]score.Weighted{{Type: big, Weight: 1}, {Type: one, Weight: 9}})
	require.NoError(t, err)
	g3topo := fixture.NVSwitch("g3", "A100", 8, 12)
	c := gpucache.New()
	_, _ = c.UpdateNode(annotated(t, "g3", "128", g3topo))
	_, _ = c.UpdateNode(annotated(t, "g2", "96", fixture.PCIe("g2", "A100", 8)))
	bad := fixture.MakeNode().Name("bad").Annotations(protocol.TopologyAnnotation, "{not json").Obj()
	_, _ = c.UpdateNode(bad)

	pr := c.Pricing(d)
	require.True(t, pr.Priced(), "g3 is the only host of the 120-core type")
	require.Same(t, pr, c.Pricing(d), "kept while nothing changes")
	v, err := c.ViewNode(annotated(t, "g3", "128", g3topo))
	require.NoError(t, err)
	require.Positive(t, pr.Cost(v.State, score.Taken{Whole: topology.SetOf(0)}))

	c.Assume("p", "g3", []string{g3topo.GPUs[0].UUID})
	require.False(t, c.Pricing(d).Priced(), "g3 holds no 120-core task once a GPU is taken")
	c.Unassume("p")
	require.True(t, c.Pricing(d).Priced())
	c.RemoveNode("g3")
	require.False(t, c.Pricing(d).Priced(), "no host left")
}
