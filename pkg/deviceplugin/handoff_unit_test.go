package deviceplugin

import (
	"context"
	"slices"
	"strconv"
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
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

const gpu = "nvidia.com/gpu"

// boundPod is a one-container pod on the node asking n GPUs, with the
// scheduler's set when ids is not nil, assumed at the given second.
func boundPod(t *testing.T, name string, n int64, at int, ids ...string) *v1.Pod {
	t.Helper()
	p := fixture.MakePod().Named(name).Node("node").GPUs(gpu, n)
	if ids != nil {
		// As the scheduler writes it: the pod's union and the container's set.
		s, err := protocol.EncodeDevices(protocol.Devices{
			Resources:  map[string][]string{gpu: ids},
			Containers: map[string]map[string][]string{"main": {gpu: ids}},
		})
		require.NoError(t, err)
		p.Annotations(protocol.DevicesAnnotation, s,
			protocol.AssumedAtAnnotation, protocol.FormatAssumedAt(time.Unix(int64(at), 0)))
	}
	return p.Obj()
}

var all8 = []string{"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"}

func without(ids []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(drop, id) })
}

// The kubelet admits pods in the order its watch delivered them; so does
// the handoff, whatever order the scheduler assumed them in.
func TestHandoffFollowsArrivalOrder(t *testing.T) {
	ctx := context.Background()
	pods := &fixture.PodLister{}
	h := NewHandoff(pods)
	// Assumed b (t=1) before a (t=2), but bound (delivered) a first.
	a, b := boundPod(t, "a", 1, 2, "g3"), boundPod(t, "b", 1, 1, "g5")
	for _, p := range []*v1.Pod{a, b} {
		pods.Add(p)
		h.Observe(p)
	}
	ids, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 1)
	require.True(t, ok)
	require.Equal(t, "a", pod.Name)
	require.Equal(t, []string{"g3"}, ids)
	h.allocated(gpu, ids)

	ids, pod, ok = h.ScheduledSet(ctx, gpu, without(all8, "g3"), nil, 1)
	require.True(t, ok)
	require.Equal(t, "b", pod.Name)
	require.Equal(t, []string{"g5"}, ids)
}

// A pod of another scheduler (no choice) in the queue gets the plugin's own
// choice, and does not take the next pod's set.
func TestHandoffOtherSchedulersPodKeepsItsTurn(t *testing.T) {
	ctx := context.Background()
	pods := &fixture.PodLister{}
	h := NewHandoff(pods)
	other, ours := boundPod(t, "other", 2, 0), boundPod(t, "ours", 2, 1, "g0", "g1")
	for _, p := range []*v1.Pod{other, ours} {
		pods.Add(p)
		h.Observe(p)
	}
	_, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
	require.False(t, ok, "the first pod in the queue has no choice: the plugin chooses")
	require.Equal(t, "other", pod.Name)
	// The kubelet gave it g4+g5 (the plugin's own choice).
	h.allocated(gpu, []string{"g4", "g5"})

	ids, pod, ok := h.ScheduledSet(ctx, gpu, without(all8, "g4", "g5"), nil, 2)
	require.True(t, ok)
	require.Equal(t, "ours", pod.Name)
	require.Equal(t, []string{"g0", "g1"}, ids)
}

// Requests of another size belong to other pods: a 1-GPU admission skips a
// pending 2-GPU pod. A head whose set is gone yields the plugin's choice,
// not the set of the pod behind it.
func TestHandoffSizeAndStaleHead(t *testing.T) {
	ctx := context.Background()
	pods := &fixture.PodLister{}
	h := NewHandoff(pods)
	pair, one, two := boundPod(t, "pair", 2, 0, "g0", "g1"), boundPod(t, "one", 1, 1, "g2"), boundPod(t, "two", 1, 2, "g3")
	for _, p := range []*v1.Pod{pair, one, two} {
		pods.Add(p)
		h.Observe(p)
	}
	ids, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 1)
	require.True(t, ok)
	require.Equal(t, "one", pod.Name)
	require.Equal(t, []string{"g2"}, ids)

	// g2 went elsewhere: "one" is still first and its set no longer fits.
	_, pod, ok = h.ScheduledSet(ctx, gpu, without(all8, "g2"), nil, 1)
	require.False(t, ok)
	require.Equal(t, "one", pod.Name, "must not hand one's turn g3, two's set")
}

// When the kubelet admits a pod the informer has not delivered yet, the
// handoff waits for it (up to the configured wait) instead of guessing.
func TestHandoffWaitsForTheInformer(t *testing.T) {
	ctx := context.Background()
	pods := &fixture.PodLister{}
	h := NewHandoff(pods, WithInformerWait(10*time.Second))
	late := boundPod(t, "late", 2, 0, "g6", "g7")
	go func() {
		time.Sleep(50 * time.Millisecond)
		pods.Add(late)
		h.Observe(late)
	}()
	ids, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
	require.True(t, ok)
	require.Equal(t, "late", pod.Name)
	require.Equal(t, []string{"g6", "g7"}, ids)

	// Without a wait there is no pod of size 4 to find: the plugin chooses.
	_, pod, ok = NewHandoff(pods).ScheduledSet(ctx, gpu, all8, nil, 4)
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

	pods := &fixture.PodLister{Pods: []*v1.Pod{done, p, bad}}
	h := NewHandoff(pods)
	for _, x := range pods.Pods {
		h.Observe(x)
	}
	var got []string
	for _, e := range h.entries(context.Background(), gpu) {
		got = append(got, e.pod.Name+"/"+e.key.container+"="+strings.Join(e.ids, "")+"#"+string(rune('0'+e.size)))
	}
	// "done" is finished; multi's init (2) then main (1); bad has no choice.
	require.Equal(t, []string{"multi/init=g0g1#2", "multi/main=g2#1", "bad/main=#1"}, got)
}

// created sets the pod's creation time (the apiserver's, whole seconds).
func created(p *v1.Pod, sec int) *v1.Pod {
	p.CreationTimestamp = metav1.NewTime(time.Unix(int64(sec), 0))
	return p
}

// required marks the pod gpupack.io/topology: required.
func required(p *v1.Pod) *v1.Pod {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations["gpupack.io/topology"] = "required"
	return p
}

// next asks for a set of size and marks it allocated, as the kubelet's
// GetPreferredAllocation then Allocate do; it returns the pod whose turn it
// was and the set.
func next(t *testing.T, h *Handoff, avail []string, size int) (string, []string) {
	t.Helper()
	ids, pod, ok := h.ScheduledSet(context.Background(), gpu, avail, nil, size)
	require.True(t, ok, "a scheduler's set was expected")
	h.allocated(gpu, ids)
	return pod.Name, ids
}

// The input: dgx-1-v100, "late" created second but bound (delivered)
// first, topology required, scheduler chose {0,3}; "early" created first,
// chose {1,6}. A restarted kubelet admits early then late (by creation
// time): each must get its own set. Before the fix early got {0,3}.
func TestHandoffKubeletRestartBatchByCreationTime(t *testing.T) {
	pods := &fixture.PodLister{}
	h := NewHandoff(pods)
	late := required(created(boundPod(t, "late", 2, 1, "g0", "g3"), 20))
	early := created(boundPod(t, "early", 2, 2, "g1", "g6"), 10)
	for _, p := range []*v1.Pod{late, early} {
		pods.Add(p)
		h.Observe(p)
	}
	// A running kubelet admits in watch order: late first.
	_, pod, _ := h.ScheduledSet(context.Background(), gpu, all8, nil, 2)
	require.Equal(t, "late", pod.Name, "no restart: the watch order")

	h.KubeletRestarted()
	name, ids := next(t, h, all8, 2)
	require.Equal(t, "early", name)
	require.Equal(t, []string{"g1", "g6"}, ids)
	name, ids = next(t, h, without(all8, "g1", "g6"), 2)
	require.Equal(t, "late", name)
	require.Equal(t, []string{"g0", "g3"}, ids)
}

// Same kind, more pods: after a restart the batch (pending pods, by
// creation time; within one second by the scheduler's assumed-at) comes
// before the pods that reach the kubelet afterwards (by arrival), whatever
// their creation time; pods of another size keep their own queue.
func TestHandoffBatchThenStream(t *testing.T) {
	pods := &fixture.PodLister{}
	h := NewHandoff(pods)
	observe := func(ps ...*v1.Pod) {
		for _, p := range ps {
			pods.Add(p)
			h.Observe(p)
		}
	}
	// Delivered c, a, b, big; created a (t=10), b and c (t=11, same second:
	// c assumed at 5 before b at 6), big at 9 (4 GPUs).
	a := created(boundPod(t, "a", 1, 7, "g0"), 10)
	b := created(boundPod(t, "b", 1, 6, "g1"), 11)
	c := created(boundPod(t, "c", 1, 5, "g2"), 11)
	big := created(boundPod(t, "big", 4, 1, "g4", "g5", "g6", "g7"), 9)
	observe(c, a, b, big)
	h.KubeletRestarted()
	// After the restart: "first" (created long before, t=1) arrives, then "second".
	first := created(boundPod(t, "first", 1, 8, "g3"), 1)
	observe(first)

	avail := all8
	var order []string
	for range 4 {
		name, ids := next(t, h, avail, 1)
		order = append(order, name)
		avail = without(avail, ids...)
	}
	// Batch: a (10), then c and b (11; assumed 5 < 6); then the stream: first.
	require.Equal(t, []string{"a", "c", "b", "first"}, order)
	name, _ := next(t, h, all8, 4)
	require.Equal(t, "big", name)
}

// After the plugin's own restart (or a node reboot) the informer's initial
// list is a batch too: pending pods go by creation time, not list order.
func TestHandoffInitialListInBindOrder(t *testing.T) {
	pods := &fixture.PodLister{}
	h := NewHandoff(pods, WithUnsynced())
	late := created(boundPod(t, "late", 2, 1, "g0", "g3"), 20)
	early := created(boundPod(t, "early", 2, 2, "g1", "g6"), 10)
	for _, p := range []*v1.Pod{late, early} { // list order
		pods.Add(p)
		h.Observe(p)
	}
	// Not synced yet: no answer from a partial list.
	_, pod, ok := h.ScheduledSet(context.Background(), gpu, all8, nil, 2)
	require.False(t, ok)
	require.Nil(t, pod)
	h.Synced()
	// The kubelet kept running while the plugin listed its pods: it admits
	// them in its watch order, the bind order the scheduler's assumed-at
	// gives (late at 1 s, early at 2 s), whatever the list's order or the
	// pods' creation times. (A kubelet restart is a creation-time batch:
	// TestHandoffKubeletRestartBatchByCreationTime.)
	name, ids := next(t, h, all8, 2)
	require.Equal(t, "late", name)
	require.Equal(t, []string{"g0", "g3"}, ids)
	name, ids = next(t, h, all8, 2)
	require.Equal(t, "early", name)
	require.Equal(t, []string{"g1", "g6"}, ids)
}

// allocs stands in for the kubelet's PodResources answer.
type allocs struct {
	mu   sync.Mutex
	held map[types.NamespacedName]map[string]map[string][]string
	err  error
}

func (a *allocs) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held, a.err
}

func (a *allocs) give(pod, container string, ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.held == nil {
		a.held = map[types.NamespacedName]map[string]map[string][]string{}
	}
	key := types.NamespacedName{Namespace: "default", Name: pod}
	if a.held[key] == nil {
		a.held[key] = map[string]map[string][]string{}
	}
	a.held[key][container] = map[string][]string{gpu: ids}
}

// A restarted plugin remembers no allocation: the kubelet's PodResources
// answer says which pods run already. Without it the running pod "run"
// (listed first) looked pending, its set is taken, so "next" was handed the
// plugin's own choice and "run"'s entry consumed in its place.
func TestHandoffRunningPodsFromPodResources(t *testing.T) {
	pods := &fixture.PodLister{}
	run := created(boundPod(t, "run", 2, 1, "g0", "g1"), 1)
	pending := created(boundPod(t, "next", 2, 2, "g2", "g3"), 2)
	pods.Add(run)
	pods.Add(pending)
	a := &allocs{}
	a.give("run", "main", "g0", "g1")

	// Old behaviour, kept when there is no PodResources API: "run" is the head.
	h := NewHandoff(pods, WithUnsynced())
	h.Observe(run)
	h.Observe(pending)
	h.Synced()
	_, pod, ok := h.ScheduledSet(context.Background(), gpu, without(all8, "g0", "g1"), nil, 2)
	require.False(t, ok)
	require.Equal(t, "run", pod.Name)

	h = NewHandoff(pods, WithUnsynced(), WithAllocations(a))
	h.Observe(run)
	h.Observe(pending)
	h.Synced()
	ids, pod, ok := h.ScheduledSet(context.Background(), gpu, without(all8, "g0", "g1"), nil, 2)
	require.True(t, ok)
	require.Equal(t, "next", pod.Name)
	require.Equal(t, []string{"g2", "g3"}, ids)

	// The kubelet gave "next" other devices than its set (say g4, g5): the
	// record follows the kubelet, so "next" is not pending any more and a
	// later pod is not handed "next"'s leftover turn.
	a.give("next", "main", "g4", "g5")
	third := created(boundPod(t, "third", 2, 3, "g6", "g7"), 3)
	pods.Add(third)
	h.Observe(third)
	ids, pod, ok = h.ScheduledSet(context.Background(), gpu, without(all8, "g0", "g1", "g4", "g5"), nil, 2)
	require.True(t, ok)
	require.Equal(t, "third", pod.Name)
	require.Equal(t, []string{"g6", "g7"}, ids)

	// The kubelet's API failing falls back to this process's own record,
	// which keeps what PodResources added: "run" and "next" stay allocated
	// (before, a PodResources outage made the running pods pending again).
	a.mu.Lock()
	a.err = context.DeadlineExceeded
	a.mu.Unlock()
	ids, pod, ok = h.ScheduledSet(context.Background(), gpu, without(all8, "g0", "g1", "g4", "g5"), nil, 2)
	require.True(t, ok)
	require.Equal(t, "third", pod.Name)
	require.Equal(t, []string{"g6", "g7"}, ids)
}

// The arrival map holds live pods only: deleted and finished pods leave it
// (100k short CPU-only pods used to leave 100k entries).
func TestHandoffForgetsPodsThatGo(t *testing.T) {
	h := NewHandoff(&fixture.PodLister{})
	const n = 100_000
	for i := range n {
		p := fixture.MakePod().Name("cpu").UID("u" + strconv.Itoa(i)).Node("node").Obj()
		h.Observe(p)
		switch i % 3 {
		case 0: // deleted
			h.Forget(p.UID)
		case 1: // finished, then deleted
			p2 := p.DeepCopy()
			p2.Status.Phase = v1.PodSucceeded
			h.Observe(p2)
		case 2: // being deleted
			p2 := p.DeepCopy()
			p2.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
			h.Observe(p2)
		}
	}
	require.Equal(t, 0, h.Len(), "every pod went: nothing kept")

	// Live pods stay.
	for i := range 10 {
		h.Observe(fixture.MakePod().UID("live" + strconv.Itoa(i)).Node("node").Obj())
	}
	require.Equal(t, 10, h.Len())
}

// The two records in both directions of lag (issue 11 item 3). The own
// record decides what this process allocated; PodResources only adds what
// it did not allocate, and a listing of devices this process gave out never
// marks another entry.
func TestHandoffPodResourcesOnlyAdds(t *testing.T) {
	ctx := context.Background()

	t.Run("kubelet lists a pod only after its admission", func(t *testing.T) {
		pods := &fixture.PodLister{}
		a, b := boundPod(t, "a", 2, 1, "g0", "g1"), boundPod(t, "b", 2, 2, "g2", "g3")
		pods.Add(a)
		pods.Add(b)
		h := NewHandoff(pods, WithAllocations(&allocs{})) // lists nothing yet
		h.Observe(a)
		h.Observe(b)
		ids, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
		require.True(t, ok)
		require.Equal(t, "a", pod.Name)
		h.allocated(gpu, ids)
		// PodResources does not list "a" yet: "b" is next, not "a" again.
		ids, pod, ok = h.ScheduledSet(ctx, gpu, without(all8, "g0", "g1"), nil, 2)
		require.True(t, ok)
		require.Equal(t, "b", pod.Name)
		require.Equal(t, []string{"g2", "g3"}, ids)
	})

	t.Run("a stale listing under a reused name does not consume the new pod's turn", func(t *testing.T) {
		pods := &fixture.PodLister{}
		old := boundPod(t, "job", 2, 1, "g0", "g1")
		pods.Add(old)
		al := &allocs{}
		h := NewHandoff(pods, WithAllocations(al))
		h.Observe(old)
		ids, _, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
		require.True(t, ok)
		h.allocated(gpu, ids)
		al.give("job", "main", "g0", "g1")
		// "job" is deleted and created again under its name (a StatefulSet);
		// the kubelet's answer still lists the old one with g0+g1.
		pods.Set()
		h.Forget(old.UID)
		renewed := boundPod(t, "job", 2, 3, "g0", "g1")
		renewed.UID = "uid-job-2"
		pods.Add(renewed)
		h.Observe(renewed)
		ids, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
		require.True(t, ok, "the new pod is pending: the listing is of devices this process gave the old one")
		require.Equal(t, types.UID("uid-job-2"), pod.UID)
		require.Equal(t, []string{"g0", "g1"}, ids)
	})

	t.Run("informer behind the kubelet: PodResources says who got the devices", func(t *testing.T) {
		pods := &fixture.PodLister{}
		al := &allocs{}
		h := NewHandoff(pods, WithAllocations(al))
		// The kubelet admits "p" before the informer delivers it: no entry,
		// the plugin's own choice g4+g5, nothing to mark.
		_, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
		require.False(t, ok)
		require.Nil(t, pod)
		h.allocated(gpu, []string{"g4", "g5"})
		al.give("p", "main", "g4", "g5")
		p, q := boundPod(t, "p", 2, 1, "g0", "g1"), boundPod(t, "q", 2, 2, "g2", "g3")
		for _, x := range []*v1.Pod{p, q} {
			pods.Add(x)
			h.Observe(x)
		}
		// Before: "p" looked pending for ever and "q" was handed p's {g0,g1}.
		ids, pod, ok := h.ScheduledSet(ctx, gpu, without(all8, "g4", "g5"), nil, 2)
		require.True(t, ok)
		require.Equal(t, "q", pod.Name)
		require.Equal(t, []string{"g2", "g3"}, ids)
	})

	t.Run("own choice marks the pod it was answered for", func(t *testing.T) {
		pods := &fixture.PodLister{}
		other, ours := boundPod(t, "other", 2, 1), boundPod(t, "ours", 2, 2, "g0", "g1")
		pods.Add(other)
		pods.Add(ours)
		h := NewHandoff(pods, WithAllocations(&allocs{}))
		h.Observe(other)
		h.Observe(ours)
		_, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 2)
		require.False(t, ok)
		require.Equal(t, "other", pod.Name)
		h.OwnChoice(gpu, []string{"g5", "g4"})
		h.allocated(gpu, []string{"g4", "g5"})
		ids, pod, ok := h.ScheduledSet(ctx, gpu, without(all8, "g4", "g5"), nil, 2)
		require.True(t, ok)
		require.Equal(t, "ours", pod.Name)
		require.Equal(t, []string{"g0", "g1"}, ids)
	})
}

// racingLister delivers a pod to the handoff while a list is being taken
// (after the snapshot), as the informer can between the lister's List and
// the handoff's lock.
type racingLister struct {
	fixture.PodLister
	during func()
}

func (l *racingLister) List(s labels.Selector) ([]*v1.Pod, error) {
	out, err := l.PodLister.List(s)
	if f := l.during; f != nil {
		l.during = nil
		f()
	}
	return out, err
}

// A pod delivered while the handoff lists the node's pods keeps its arrival
// and its allocation. Before, the list taken just before it arrived made the
// handoff forget it: it came back later as a new arrival behind pods that
// arrived after it (and an allocated pod looked pending again), which
// swapped same-size pods' sets in e2e under load.
func TestHandoffKeepsPodsDeliveredDuringAList(t *testing.T) {
	ctx := context.Background()
	pods := &racingLister{}
	h := NewHandoff(pods)
	a, b, c := boundPod(t, "a", 1, 1, "g0"), boundPod(t, "b", 1, 2, "g1"), boundPod(t, "c", 1, 3, "g2")
	pods.Add(a)
	h.Observe(a)
	pods.during = func() { pods.Add(b); h.Observe(b) }
	ids, pod, ok := h.ScheduledSet(ctx, gpu, all8, nil, 1)
	require.True(t, ok)
	require.Equal(t, "a", pod.Name)
	h.allocated(gpu, ids)
	pods.Add(c)
	h.Observe(c)
	h.Observe(b) // an update of b (kwok marks it running): not a new arrival
	ids, pod, ok = h.ScheduledSet(ctx, gpu, without(all8, "g0"), nil, 1)
	require.True(t, ok)
	require.Equal(t, "b", pod.Name, "b arrived before c")
	require.Equal(t, []string{"g1"}, ids)
	require.Equal(t, 3, h.Len())

	// The same while an allocated pod's update arrives: "b" stays allocated.
	h.allocated(gpu, ids)
	pods.during = func() { h.Observe(b) }
	ids, pod, ok = h.ScheduledSet(ctx, gpu, without(all8, "g0", "g1"), nil, 1)
	require.True(t, ok)
	require.Equal(t, "c", pod.Name)
	require.Equal(t, []string{"g2"}, ids)
}
