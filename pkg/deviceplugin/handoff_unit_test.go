package deviceplugin

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpupack/gpupack/pkg/protocol"
)

type fakeLister struct {
	mu   sync.Mutex
	pods []*v1.Pod
}

func (l *fakeLister) List(labels.Selector) ([]*v1.Pod, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pods), nil
}

func (l *fakeLister) add(p *v1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = append(l.pods, p)
}

const gpu = "nvidia.com/gpu"

// boundPod is a one-container pod on the node asking n GPUs, with the
// scheduler's set when ids is not nil, assumed at the given second.
func boundPod(t *testing.T, name string, n int64, at int, ids ...string) *v1.Pod {
	t.Helper()
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{NodeName: "node", Containers: []v1.Container{{
			Name:      "main",
			Resources: v1.ResourceRequirements{Limits: v1.ResourceList{gpu: *resource.NewQuantity(n, resource.DecimalSI)}},
		}}},
	}
	if ids != nil {
		// As the scheduler writes it: the pod's union and the container's set.
		s, err := protocol.EncodeDevices(protocol.Devices{
			Resources:  map[string][]string{gpu: ids},
			Containers: map[string]map[string][]string{"main": {gpu: ids}},
		})
		require.NoError(t, err)
		p.Annotations = map[string]string{
			protocol.DevicesAnnotation:   s,
			protocol.AssumedAtAnnotation: protocol.FormatAssumedAt(time.Unix(int64(at), 0)),
		}
	}
	return p
}

var all8 = []string{"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"}

func without(ids []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(drop, id) })
}

// The kubelet admits pods in the order its watch delivered them; so does
// the handoff, whatever order the scheduler assumed them in.
func TestHandoffFollowsArrivalOrder(t *testing.T) {
	ctx := context.Background()
	pods := &fakeLister{}
	h := NewHandoff(pods)
	// Assumed b (t=1) before a (t=2), but bound (delivered) a first.
	a, b := boundPod(t, "a", 1, 2, "g3"), boundPod(t, "b", 1, 1, "g5")
	for _, p := range []*v1.Pod{a, b} {
		pods.add(p)
		h.Observe(p)
	}
	ids, pod, ok := h.Choose(ctx, gpu, all8, nil, 1)
	require.True(t, ok)
	require.Equal(t, "a", pod.Name)
	require.Equal(t, []string{"g3"}, ids)
	h.allocated(gpu, ids)

	ids, pod, ok = h.Choose(ctx, gpu, without(all8, "g3"), nil, 1)
	require.True(t, ok)
	require.Equal(t, "b", pod.Name)
	require.Equal(t, []string{"g5"}, ids)
}

// A pod of another scheduler (no choice) in the queue gets the plugin's own
// choice, and does not take the next pod's set.
func TestHandoffOtherSchedulersPodKeepsItsTurn(t *testing.T) {
	ctx := context.Background()
	pods := &fakeLister{}
	h := NewHandoff(pods)
	other, ours := boundPod(t, "other", 2, 0), boundPod(t, "ours", 2, 1, "g0", "g1")
	for _, p := range []*v1.Pod{other, ours} {
		pods.add(p)
		h.Observe(p)
	}
	_, pod, ok := h.Choose(ctx, gpu, all8, nil, 2)
	require.False(t, ok, "the first pod in the queue has no choice: the plugin chooses")
	require.Equal(t, "other", pod.Name)
	// The kubelet gave it g4+g5 (the plugin's own choice).
	h.allocated(gpu, []string{"g4", "g5"})

	ids, pod, ok := h.Choose(ctx, gpu, without(all8, "g4", "g5"), nil, 2)
	require.True(t, ok)
	require.Equal(t, "ours", pod.Name)
	require.Equal(t, []string{"g0", "g1"}, ids)
}

// Requests of another size belong to other pods: a 1-GPU admission skips a
// pending 2-GPU pod. A head whose set is gone yields the plugin's choice,
// not the set of the pod behind it.
func TestHandoffSizeAndStaleHead(t *testing.T) {
	ctx := context.Background()
	pods := &fakeLister{}
	h := NewHandoff(pods)
	pair, one, two := boundPod(t, "pair", 2, 0, "g0", "g1"), boundPod(t, "one", 1, 1, "g2"), boundPod(t, "two", 1, 2, "g3")
	for _, p := range []*v1.Pod{pair, one, two} {
		pods.add(p)
		h.Observe(p)
	}
	ids, pod, ok := h.Choose(ctx, gpu, all8, nil, 1)
	require.True(t, ok)
	require.Equal(t, "one", pod.Name)
	require.Equal(t, []string{"g2"}, ids)

	// g2 went elsewhere: "one" is still first and its set no longer fits.
	_, pod, ok = h.Choose(ctx, gpu, without(all8, "g2"), nil, 1)
	require.False(t, ok)
	require.Equal(t, "one", pod.Name, "must not hand one's turn g3, two's set")
}

// When the kubelet admits a pod the informer has not delivered yet, the
// handoff waits for it (up to the configured wait) instead of guessing.
func TestHandoffWaitsForTheInformer(t *testing.T) {
	ctx := context.Background()
	pods := &fakeLister{}
	h := NewHandoff(pods, WithInformerWait(10*time.Second))
	late := boundPod(t, "late", 2, 0, "g6", "g7")
	go func() {
		time.Sleep(50 * time.Millisecond)
		pods.add(late)
		h.Observe(late)
	}()
	ids, pod, ok := h.Choose(ctx, gpu, all8, nil, 2)
	require.True(t, ok)
	require.Equal(t, "late", pod.Name)
	require.Equal(t, []string{"g6", "g7"}, ids)

	// Without a wait there is no pod of size 4 to find: the plugin chooses.
	_, pod, ok = NewHandoff(pods).Choose(ctx, gpu, all8, nil, 4)
	require.False(t, ok)
	require.Nil(t, pod)
}

// Init containers come first; a finished or deleted pod is no one's turn;
// a malformed choice counts as no choice.
func TestHandoffEntries(t *testing.T) {
	p := boundPod(t, "multi", 1, 0)
	p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{
		Limits: v1.ResourceList{gpu: *resource.NewQuantity(2, resource.DecimalSI)}}}}
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{gpu: {"g0", "g1", "g2"}},
		Containers: map[string]map[string][]string{"init": {gpu: {"g0", "g1"}}, "main": {gpu: {"g2"}}},
	})
	require.NoError(t, err)
	p.Annotations = map[string]string{protocol.DevicesAnnotation: s}
	done := boundPod(t, "done", 1, 0, "g4")
	done.Status.Phase = v1.PodSucceeded
	bad := boundPod(t, "bad", 1, 0)
	bad.Annotations = map[string]string{protocol.DevicesAnnotation: "{not json"}

	pods := &fakeLister{pods: []*v1.Pod{done, p, bad}}
	h := NewHandoff(pods)
	for _, x := range pods.pods {
		h.Observe(x)
	}
	var got []string
	for _, e := range h.entries(context.Background(), gpu) {
		got = append(got, e.pod.Name+"/"+e.key.container+"="+strings.Join(e.ids, "")+"#"+string(rune('0'+e.size)))
	}
	// "done" is finished; multi's init (2) then main (1); bad has no choice.
	require.Equal(t, []string{"multi/init=g0g1#2", "multi/main=g2#1", "bad/main=#1"}, got)
}
