package gpupack

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// slowPods is the cache with the pod handler's AddPod held until release
// closes: the handler still reading the initial list when kube-scheduler,
// which waits for its informers' stores and its own handlers only, starts
// its first cycle.
type slowPods struct {
	gpucache.Interface
	release chan struct{}
}

func (s slowPods) AddPod(p *v1.Pod) error {
	<-s.release
	return s.Interface.AddPod(p)
}

// A scheduler restarted while pods it bound run on a node whose in-use
// report does not list them yet (the device plugin reports every 30 s, or
// not at all with publish.inUse: false): its first cycles must count their
// devices. DGX-1 "x", empty in-use report; bound pods hold GPUs by their
// gpupack.io/devices. The pod handler is held for 200 ms after the
// informers' stores have synced. Old: PreFilter, Filter and Reserve ran at
// once on a cache without the bound pods and gave a held GPU again.
func TestRestartWaitsForBoundPods(t *testing.T) {
	for _, tc := range []struct {
		name string
		held []int // GPUs the bound pods hold
		ask  int64
		want []int // nil: no fit
	}{
		// 8 held by one pod: nothing free, the pod must not be placed.
		{name: "all held", held: []int{0, 1, 2, 3, 4, 5, 6, 7}, ask: 1},
		// 0-5 held: a 2-GPU pod gets 6+7 (the only free pair), not 1+2.
		{name: "six held", held: []int{0, 1, 2, 3, 4, 5}, ask: 2, want: []int{6, 7}},
		// 0-3 held: a 4-GPU pod gets 4-7, not the NV2 quad 0-3.
		{name: "four held", held: []int{0, 1, 2, 3}, ask: 4, want: []int{4, 5, 6, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := fixture.DGX1V100("x")
			var bound []*v1.Pod
			for _, g := range tc.held { // one pod per GPU
				devs, err := protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids(n, g)}})
				require.NoError(t, err)
				p := gpuPod(fmt.Sprintf("old-%d", g), "nvidia.com/gpu", 1, protocol.DevicesAnnotation, devs)
				p.Spec.NodeName = "x"
				bound = append(bound, p)
			}
			release := make(chan struct{})
			h := newHarnessWith(t, harnessOptions{beforeStart: func(h *harness) {
				h.pl.cache = slowPods{Interface: h.pl.cache, release: release}
			}}, nil, []*v1.Node{gpuNode(t, "x", n)}, bound...)
			time.AfterFunc(200*time.Millisecond, func() { close(release) })
			_, got, st, _ := h.schedule(gpuPod("new", "nvidia.com/gpu", tc.ask))
			if tc.want == nil {
				require.NotNil(t, st, "every GPU is held by a bound pod, yet the new pod got %v", got)
				return
			}
			require.Nil(t, st)
			require.Equal(t, ids(n, tc.want...), got, "a GPU a bound pod holds was given again")
		})
	}
}
