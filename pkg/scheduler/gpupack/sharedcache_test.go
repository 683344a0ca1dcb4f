package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

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

// The shared cache keeps each node's last plans by request ID and workload
// snapshot. Request IDs are numbered per instance, so profile A's first
// request (4 GPUs, no fit on 2 T4s) and profile B's first (1 GPU) are both
// ID 1: only the instances' distinct snapshots (each workload builds its
// own from its args' prior) keep B from finding A's "no fit" answer for a
// node whose 2 GPUs are free. Each case filters A's pod first, then B's
// on the same node.
func TestProfilesDoNotShareLastPlans(t *testing.T) {
	topo := fixture.PCIe("pcie", "T4", 2)
	nodes := []*v1.Node{gpuNode(t, "pcie", topo)}
	tests := []struct {
		name     string
		a, b     *v1.Pod
		wantB    []int // B's devices on "pcie"; nil: unschedulable
		wantBErr string
	}{
		// 4 > 2 free: A fails; 1 <= 2 - 0 (A reserved nothing): B fits.
		{name: "A too big, B fits", a: gpuPod("a", "nvidia.com/gpu", 4), b: gpuPod("b", "nvidia.com/gpu", 1), wantB: []int{0}},
		// 1 <= 2: A's plan fits (Filter only, nothing reserved); 3 > 2: B must fail.
		{name: "A fits, B too big", a: gpuPod("a", "nvidia.com/gpu", 1), b: gpuPod("b", "nvidia.com/gpu", 3), wantBErr: "pcie"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newHarness(t, nil, nodes)
			b := newHarnessWith(t, harnessOptions{share: a}, nil, nodes)
			require.NotSame(t, a.pl.workload.Distribution(), b.pl.workload.Distribution(), "each profile's own snapshot")

			// A's pod through Filter only (as a cycle that ends there).
			state := framework.NewCycleState()
			_, st, _ := a.fh.RunPreFilterPlugins(a.ctx, state, tc.a)
			require.True(t, st.IsSuccess())
			ni, err := a.fh.SnapshotSharedLister().NodeInfos().Get("pcie")
			require.NoError(t, err)
			a.fh.RunFilterPlugins(a.ctx, state, tc.a, ni)

			_, got, st, _ := b.schedule(tc.b)
			if tc.wantBErr != "" {
				require.NotNil(t, st)
				require.Contains(t, st.Message(), tc.wantBErr)
				return
			}
			require.Nil(t, st)
			require.Equal(t, ids(topo, tc.wantB...), got)
		})
	}
}
