package gpupack

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

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

// The bind call fails after the apiserver applied the binding (a timeout,
// a connection lost after the write) and the informer has not delivered
// the bound pod when Unreserve runs. Node "e": 4 H100s; p takes all 4.
// Old: Unreserve dropped p's devices and q, the next pod, was given one of
// the GPUs p runs on. Bind now reads the pod back after a failed call:
// bound to the node with its devices, it holds them. A binding the
// apiserver refused (the pod not found, already bound elsewhere) or a
// read that fails leaves Unreserve to free them, as before.
func TestBindFailedAfterApplyBeforeTheInformer(t *testing.T) {
	n := fixture.NVSwitch("e", "H100", 4, 18)
	for _, tc := range []struct {
		name    string
		applied bool  // the apiserver applied the binding
		readErr error // the read back fails
		held    bool  // p's 4 GPUs stay held
	}{
		{name: "applied, call failed", applied: true, held: true},
		{name: "not applied", applied: false, held: false},
		{name: "applied, read back fails too", applied: true, readErr: errors.New("connection refused"), held: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gpuPod("p", "nvidia.com/gpu", 4)
			// The pod informer lists the pods and then hears nothing more:
			// it lags behind the apiserver for the whole test.
			h := newHarnessWith(t, harnessOptions{beforeStart: func(h *harness) {
				h.cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
					return true, watch.NewFake(), nil
				})
			}}, nil, []*v1.Node{gpuNode(t, "e", n)}, p)
			pr := v1.SchemeGroupVersion.WithResource("pods")
			h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "binding" {
					return false, nil, nil
				}
				if tc.applied {
					pod, err := boundByBinding(h, a)
					require.NoError(t, err)
					require.NoError(t, h.cs.Tracker().Update(pr, pod, pod.Namespace, metav1.UpdateOptions{}))
				}
				return true, nil, errors.New("http2: client connection lost")
			})
			if tc.readErr != nil {
				h.cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, tc.readErr
				})
			}
			node, _, st, state := h.schedule(p)
			require.Nil(t, st)
			require.False(t, h.fh.RunBindPlugins(h.ctx, state, p, node).IsSuccess())
			h.fh.RunReservePluginsUnreserve(h.ctx, state, p, node)
			_, got, st, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 1))
			if tc.held {
				require.NotNil(t, st, "q was given %v, a GPU p runs on", got)
				require.Len(t, h.pl.cache.Used("e"), 4)
				return
			}
			require.Nil(t, st, "p is not bound (or cannot be known to be): its GPUs are free")
		})
	}
}
