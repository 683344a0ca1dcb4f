package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// Two profiles of one scheduler (two GPUPack instances on one informer
// factory) share one device cache: what one reserved, the other sees taken
// before the informer reports the pod bound, so no GPU is given twice.
//
// Node "pcie": 2 free T4s. Profile A reserves both for a 2-GPU pod (assumed,
// not bound); profile B's 1-GPU pod then finds 2 - 2 = 0 free GPUs. With a
// cache per instance, B saw 2 free and took one of A's.
func TestProfilesShareTheDeviceCache(t *testing.T) {
	topo := fixture.PCIe("pcie", "T4", 2)
	nodes := []*v1.Node{gpuNode(t, "pcie", topo)}
	a := newHarness(t, nil, nodes)
	b := newHarnessWith(t, harnessOptions{share: a}, nil, nodes)
	require.Same(t, a.pl.cache, b.pl.cache, "one cache per informer factory")

	node, got, st, _ := a.schedule(gpuPod("a", "nvidia.com/gpu", 2))
	require.Nil(t, st)
	require.Equal(t, "pcie", node)
	require.Equal(t, ids(topo, 0, 1), got)

	_, _, st, _ = b.schedule(gpuPod("b", "nvidia.com/gpu", 1))
	require.NotNil(t, st, "profile B must see profile A's reservation")
	require.Equal(t, fwk.Unschedulable, st.Code())

	// A harness on another factory (another scheduler) has its own cache.
	c := newHarness(t, nil, nodes)
	require.NotSame(t, a.pl.cache, c.pl.cache)
}
