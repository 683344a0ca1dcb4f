package gpucache_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// tableNode is node name publishing the resource names given (whole GPUs).
func tableNode(t *testing.T, name string, names ...string) *v1.Node {
	t.Helper()
	n := fixture.PCIe(name, "T4", 1)
	for _, r := range names {
		n.Resources = append(n.Resources, topology.Resource{Name: r, Kind: topology.KindGPU})
	}
	raw, err := protocol.EncodeTopology(n)
	require.NoError(t, err)
	return fixture.MakeNode().Name(name).Annotations(protocol.TopologyAnnotation, raw).Obj()
}

// A published resource name lives while some node's table publishes it:
// it goes when the last such node changes its table or is removed. The
// set of names only grew before, so tables renamed over time filled its
// 1024 places and a name published later was not taken as a GPU resource
// (its pods were bound without devices).
func TestPublishedNamesFollowTheTables(t *testing.T) {
	c := gpucache.New()
	_, _ = c.UpdateNode(tableNode(t, "a", "example.com/x", "example.com/y"))
	_, _ = c.UpdateNode(tableNode(t, "b", "example.com/x"))
	require.True(t, c.Published("example.com/x"))
	require.True(t, c.Published("example.com/y"))
	require.Equal(t, 2, c.PublishedCount())

	_, _ = c.UpdateNode(tableNode(t, "a", "example.com/z")) // a's table changes
	require.True(t, c.Published("example.com/x"), "b still publishes it")
	require.False(t, c.Published("example.com/y"), "no table publishes it any more")
	require.True(t, c.Published("example.com/z"))
	c.RemoveNode("b")
	require.False(t, c.Published("example.com/x"))
	require.Equal(t, 1, c.PublishedCount()) // z

	// Churn: 17 x 64 names over time (more than the 1024 places), each
	// node then publishing one name of its own: a new name is taken.
	for round := range 2 {
		for i := range 17 {
			var names []string
			for k := range topology.MaxResources {
				names = append(names, fmt.Sprintf("example.com/r%d-%d-%d", round, i, k))
			}
			if round == 1 {
				names = names[:1]
			}
			_, _ = c.UpdateNode(tableNode(t, fmt.Sprintf("n%d", i), names...))
		}
	}
	_, _ = c.UpdateNode(tableNode(t, "late", "example.com/tsgpu"))
	require.True(t, c.Published("example.com/tsgpu"))
	require.Equal(t, 17+2, c.PublishedCount()) // 17 churned + z + tsgpu
}
