package gpupack

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// boundAs is pod as the informer reports it once bound to node with the
// devices Reserve chose (the Binding's annotations).
func boundAs(t *testing.T, pod *v1.Pod, node string, state fwk.CycleState) *v1.Pod {
	t.Helper()
	r, st := reservedOf(state)
	require.NotNil(t, r, st.Message())
	value, err := protocol.EncodeDevices(r.devices)
	require.NoError(t, err)
	b := pod.DeepCopy()
	b.Spec.NodeName = node
	b.Annotations[protocol.DevicesAnnotation] = value
	return b
}

// Issue 12, item 4. 2-GPU node; pod p reserved on {0,1}; the informer
// reports p bound with {0,1}; then the bind call returns an error (the
// apiserver applied it) and Unreserve runs. p runs on {0,1}: the cache
// must keep counting them (it used to count 0 used, and the next 2-GPU pod
// was given {0,1} again). A merely assumed pod is forgotten, as
// kube-scheduler's own cache does.
func TestUnreserveKeepsAPodTheInformerConfirmed(t *testing.T) {
	n := fixture.NVSwitch("b", "H100", 2, 18)
	logger := klog.Background()
	tests := []struct {
		name      string
		confirmed bool // the informer reported p bound before Unreserve
		wantUsed  int
	}{
		// Confirmed: p holds 2 of 2; the next 2-GPU pod finds none.
		{"bound, then the bind call failed", true, 2},
		// Merely assumed: Unreserve frees both.
		{"assumed only", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "b", n)})
			p := gpuPod("p", "nvidia.com/gpu", 2)
			node, got, st, state := h.schedule(p)
			require.Nil(t, st)
			require.Equal(t, ids(n, 0, 1), got)
			if tt.confirmed {
				h.pl.onPod(logger, boundAs(t, p, node, state))
				_, assumed := h.pl.cache.(*gpucache.Cache).Assumed(p.UID)
				require.False(t, assumed, "the informer confirmed p")
			}
			h.fh.RunReservePluginsUnreserve(h.ctx, state, p, node)
			require.Len(t, h.pl.cache.Used("b"), tt.wantUsed)
			_, got2, st, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 2))
			if tt.confirmed {
				require.NotNil(t, st, "q must not get p's GPUs %v", got2)
				require.Equal(t, fwk.Unschedulable, st.Code())
				// p deleted: its GPUs are free again.
				h.pl.cache.Forget(p.UID)
				_, got2, st, _ = h.schedule(gpuPod("r", "nvidia.com/gpu", 2))
			}
			require.Nil(t, st)
			require.Equal(t, ids(n, 0, 1), got2)
		})
	}
}

// The same through the framework's Bind and the informer: the fake
// apiserver applies the binding (the pod is updated with its node and
// devices, which the informer delivers) and then answers with an error,
// as a connection lost after the write would. The scheduler runs Unreserve
// after a failed bind; p keeps its devices, whichever of the informer's
// event and Unreserve comes first.
func TestBindErrorAfterTheApiserverApplied(t *testing.T) {
	n := fixture.NVSwitch("e", "H100", 4, 18)
	for _, informerFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "informer first", false: "unreserve first"}[informerFirst], func(t *testing.T) {
			p := gpuPod("p", "nvidia.com/gpu", 4)
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "e", n)}, p)
			release := make(chan struct{})
			h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "binding" {
					return false, nil, nil
				}
				pod, err := boundByBinding(h, a)
				require.NoError(t, err)
				if !informerFirst {
					go func() {
						<-release
						_ = h.cs.Tracker().Update(v1.SchemeGroupVersion.WithResource("pods"), pod, pod.Namespace, metav1.UpdateOptions{})
					}()
				} else {
					require.NoError(t, h.cs.Tracker().Update(v1.SchemeGroupVersion.WithResource("pods"), pod, pod.Namespace, metav1.UpdateOptions{}))
				}
				return true, nil, errors.New("http2: client connection lost")
			})
			node, _, st, state := h.schedule(p)
			require.Nil(t, st)
			require.False(t, h.fh.RunBindPlugins(h.ctx, state, p, node).IsSuccess())
			if informerFirst {
				require.Eventually(t, func() bool {
					_, assumed := h.pl.cache.(*gpucache.Cache).Assumed(p.UID)
					return !assumed
				}, 5*time.Second, 10*time.Millisecond)
			}
			h.fh.RunReservePluginsUnreserve(h.ctx, state, p, node)
			close(release)
			require.Eventually(t, func() bool { return len(h.pl.cache.Used("e")) == 4 }, 5*time.Second, 10*time.Millisecond,
				"p runs on its 4 GPUs")
			_, got, st, _ := h.schedule(gpuPod("q", "nvidia.com/gpu", 1))
			require.NotNil(t, st, "q must not get one of p's GPUs: %v", got)
		})
	}
}
