package gpupack

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// Pods another scheduler (or spec.nodeName) bound to a GPU node carry no
// gpupack.io/devices, and the node's in-use report names their devices
// only after the kubelet's Allocate, seconds later. Their count holds from
// the moment the informer reports them bound. DGX-1 "x" (8 GPUs), no
// in-use report yet, foreign pods of 1 GPU each (default scheduler) or one
// pod of them all (spec.nodeName). Old: the cache counted none of them,
// Filter saw 8 free GPUs and the new pod was given GPUs the kubelet had
// already given the foreign pods, or more GPUs than the node had left.
func TestForeignPodsHoldTheirCount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		foreign []int64 // GPUs each foreign pod asks
		ask     int64
		fits    bool
	}{
		// 8 - 8 = 0 free: a 1-GPU pod does not fit.
		{name: "all held by one pod", foreign: []int64{8}, ask: 1},
		// 8 - 6 = 2 free: a 4-GPU pod does not fit, a 2-GPU pod does.
		{name: "six held, four asked", foreign: []int64{1, 1, 1, 1, 1, 1}, ask: 4},
		{name: "six held, two asked", foreign: []int64{1, 1, 1, 1, 1, 1}, ask: 2, fits: true},
		// 8 - 3 = 5 free: a 5-GPU pod fits, all of the rest.
		{name: "three held, five asked", foreign: []int64{3}, ask: 5, fits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := fixture.DGX1V100("x")
			var bound []*v1.Pod
			held := 0
			for i, k := range tc.foreign {
				p := fixture.MakePod().Named(fmt.Sprintf("foreign-%d", i)).GPUs("nvidia.com/gpu", k).
					SchedulerName("default-scheduler").Node("x").Obj()
				bound = append(bound, p)
				held += int(k)
			}
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "x", n)}, bound...)
			_, got, st, _ := h.schedule(gpuPod("new", "nvidia.com/gpu", tc.ask))
			if !tc.fits {
				require.Len(t, h.pl.cache.Used("x"), held, "the foreign pods' count is held")
				require.NotNil(t, st, "%d of 8 GPUs are held by foreign pods, yet the new pod got %v", held, got)
				return
			}
			require.Nil(t, st)
			require.Len(t, got, int(tc.ask))
			// The new pod's devices are among those not counted for the
			// foreign pods: the node's count is held + asked.
			require.Len(t, h.pl.cache.Used("x"), held+int(tc.ask))
		})
	}
}
