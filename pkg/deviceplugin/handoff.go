package deviceplugin

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// PodLister lists the pods of this node (an informer's lister filtered by
// spec.nodeName through a field selector).
type PodLister interface {
	List(selector labels.Selector) ([]*v1.Pod, error)
}

// Handoff finds the scheduler's device choice for a GetPreferredAllocation
// call (DESIGN.md section 4).
//
// The kubelet's request does not name the pod, but the kubelet admits the
// pods of its node one at a time in the order its watch delivered them,
// which is the order this plugin's informer delivers them too (Observe). So
// Handoff keeps the node's pods in that order, each container's request of
// a resource as one entry (with the scheduler's set for it, or none for a
// pod another scheduler placed), and answers for the first entry of the
// requested size not allocated yet: its set when it has one that fits, else
// nothing (the plugin's own choice). When no entry of that size is known yet
// the informer is behind the kubelet; Handoff waits for it up to the
// configured wait.
//
// The choice is read with pkg/protocol's codec of the gpupack.io/devices and
// gpupack.io/assumed-at pod annotations: each container's set, or when there
// is none the pod-level set (the union) for the first container.
type Handoff struct {
	pods PodLister
	wait time.Duration

	mu      sync.Mutex
	seq     map[types.UID]uint64   // informer arrival order
	next    uint64                 // next arrival number
	changed chan struct{}          // closed and replaced on each Observe
	done    map[doneKey]bool       // entries already allocated
	cache   map[types.UID]*decoded // last decode per pod, reused while the annotations are unchanged
}

// HandoffOption configures a Handoff.
type HandoffOption func(*Handoff)

// WithInformerWait makes Choose wait up to d for the informer to deliver the
// pod being admitted when it knows no pod of the requested size.
func WithInformerWait(d time.Duration) HandoffOption { return func(h *Handoff) { h.wait = d } }

// decoded is a pod's choice as last decoded, with the annotation values it came from.
type decoded struct {
	devices, assumedAt string
	d                  *protocol.Devices
	at                 time.Time
	ok                 bool
	err                error
}

type doneKey struct {
	uid       types.UID
	container string // "" for the pod-level set
	resource  string
}

// NewHandoff returns a Handoff over the node's pods.
func NewHandoff(pods PodLister, opts ...HandoffOption) *Handoff {
	h := &Handoff{pods: pods, seq: map[types.UID]uint64{}, changed: make(chan struct{}),
		done: map[doneKey]bool{}, cache: map[types.UID]*decoded{}}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Observe records that the informer delivered pod (add or update), in
// delivery order; call it from the informer's event handler.
func (h *Handoff) Observe(pod *v1.Pod) {
	if h == nil || pod.Spec.NodeName == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.seq[pod.UID]; !ok {
		h.next++
		h.seq[pod.UID] = h.next
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

// entry is one container's request of a resource, with the scheduler's set
// for it when there is one.
type entry struct {
	pod  *v1.Pod
	key  doneKey
	size int
	ids  []string // nil: no choice (another scheduler's pod)
	seq  uint64   // arrival order; unobserved pods sort last
	at   time.Time
}

// choiceOf decodes a pod's scheduler choice; ok=false when it has none.
func choiceOf(pod *v1.Pod) (d *protocol.Devices, at time.Time, ok bool, err error) {
	s, found := pod.Annotations[protocol.DevicesAnnotation]
	if !found {
		return nil, time.Time{}, false, nil
	}
	if d, err = protocol.DecodeDevices(s); err != nil {
		return nil, time.Time{}, false, err
	}
	if a, found := pod.Annotations[protocol.AssumedAtAnnotation]; found {
		if at, err = protocol.ParseAssumedAt(a); err != nil {
			return nil, time.Time{}, false, err
		}
	}
	return d, at, true, nil
}

// entries are the node's pending requests of resource, in admission order.
func (h *Handoff) entries(ctx context.Context, resource string) []entry {
	if h == nil || h.pods == nil {
		return nil
	}
	logger := klog.FromContext(ctx)
	pods, err := h.pods.List(labels.Everything())
	if err != nil {
		logger.Error(err, "Listing the node's pods failed")
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []entry
	seen := make(map[types.UID]bool, len(pods))
	for _, pod := range pods {
		seen[pod.UID] = true
		if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed || pod.DeletionTimestamp != nil {
			continue
		}
		choice, at, _, err := h.choiceOfLocked(pod)
		if err != nil {
			logger.Error(err, "Ignoring the pod's malformed device choice", "pod", klog.KObj(pod))
			choice = nil
		}
		if at.IsZero() {
			at = pod.CreationTimestamp.Time
		}
		seq, ok := h.seq[pod.UID]
		if !ok {
			seq = math.MaxUint64
		}
		for _, e := range podEntries(pod, choice, resource) {
			if !h.done[e.key] {
				e.seq, e.at = seq, at
				out = append(out, e)
			}
		}
	}
	h.forgetLocked(seen)
	slices.SortStableFunc(out, func(a, b entry) int {
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return c
		}
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time)
	})
	return out
}

// podEntries are a pod's requests of resource, init containers first, each
// with its container's set, or the pod-level set for the first container
// without one. Sets for containers the spec does not show (or a pod-level
// set no container took) are entries too.
func podEntries(pod *v1.Pod, choice *protocol.Devices, resource string) []entry {
	var out []entry
	var podLevel []string
	containerSets := map[string][]string{}
	if choice != nil {
		for c, sets := range choice.Containers {
			if ids := sets[resource]; len(ids) > 0 {
				containerSets[c] = ids
			}
		}
		if len(containerSets) == 0 {
			// The pod-level set is the union of the containers' sets; on
			// its own it serves the first container of the resource.
			podLevel = choice.Resources[resource]
		}
	}
	add := func(container string, size int, ids []string) {
		out = append(out, entry{pod: pod, key: doneKey{uid: pod.UID, container: container, resource: resource}, size: size, ids: ids})
	}
	for _, c := range allContainers(pod) {
		n := requestOf(c, resource)
		switch {
		case n == 0:
		case len(containerSets[c.Name]) > 0:
			add(c.Name, len(containerSets[c.Name]), containerSets[c.Name])
			delete(containerSets, c.Name)
		case len(podLevel) > 0:
			add("", len(podLevel), podLevel)
			podLevel = nil
		default:
			add(c.Name, n, nil)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(containerSets)) {
		add(c, len(containerSets[c]), containerSets[c])
	}
	if len(podLevel) > 0 {
		add("", len(podLevel), podLevel)
	}
	return out
}

func allContainers(pod *v1.Pod) []*v1.Container {
	out := make([]*v1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	for i := range pod.Spec.InitContainers {
		out = append(out, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

// requestOf is the container's count of an extended resource (limits, which
// must equal requests for extended resources).
func requestOf(c *v1.Container, resource string) int {
	q, ok := c.Resources.Limits[v1.ResourceName(resource)]
	if !ok {
		q, ok = c.Resources.Requests[v1.ResourceName(resource)]
	}
	if !ok {
		return 0
	}
	return int(q.Value())
}

// choiceOfLocked is choiceOf, memoized per pod while its annotations stay
// the same; h.mu must be held.
func (h *Handoff) choiceOfLocked(pod *v1.Pod) (*protocol.Devices, time.Time, bool, error) {
	devs, at := pod.Annotations[protocol.DevicesAnnotation], pod.Annotations[protocol.AssumedAtAnnotation]
	if c := h.cache[pod.UID]; c != nil && c.devices == devs && c.assumedAt == at {
		return c.d, c.at, c.ok, c.err
	}
	c := &decoded{devices: devs, assumedAt: at}
	c.d, c.at, c.ok, c.err = choiceOf(pod)
	h.cache[pod.UID] = c
	return c.d, c.at, c.ok, c.err
}

// forgetLocked drops the state of pods that left the node; h.mu must be held.
func (h *Handoff) forgetLocked(present map[types.UID]bool) {
	for uid := range h.cache {
		if !present[uid] {
			delete(h.cache, uid)
		}
	}
	for k := range h.done {
		if !present[k.uid] {
			delete(h.done, k)
		}
	}
	for uid := range h.seq {
		if !present[uid] {
			delete(h.seq, uid)
		}
	}
}

// Choose returns the scheduler's set for the pod being admitted: the first
// pending entry of this size, when it has a set that fits; ok=false when
// that entry has no set or its set no longer fits (the plugin chooses).
func (h *Handoff) Choose(ctx context.Context, resource string, available, mustInclude []string, size int) (ids []string, pod *v1.Pod, ok bool) {
	if h == nil {
		return nil, nil, false
	}
	avail := make(map[string]bool, len(available))
	for _, id := range available {
		avail[id] = true
	}
	deadline := time.Now().Add(h.wait)
	for {
		h.mu.Lock()
		changed := h.changed
		h.mu.Unlock()
		if e, found := h.head(ctx, resource, size); found {
			if e.ids == nil || !allIn(e.ids, avail) || !containsAll(e.ids, mustInclude) {
				return nil, e.pod, false
			}
			return slices.Clone(e.ids), e.pod, true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil, false
		}
		select {
		case <-changed:
		case <-time.After(left):
		case <-ctx.Done():
			return nil, nil, false
		}
	}
}

// head is the first pending entry of resource with this size.
func (h *Handoff) head(ctx context.Context, resource string, size int) (entry, bool) {
	for _, e := range h.entries(ctx, resource) {
		if e.size == size {
			return e, true
		}
	}
	return entry{}, false
}

// allocated marks the entry an allocation of ids served: the first pending
// entry whose set is exactly ids, else the first pending entry of that size
// (the kubelet admitted it with other devices).
func (h *Handoff) allocated(resource string, ids []string) {
	if h == nil {
		return
	}
	want := slices.Sorted(slices.Values(ids))
	pending := h.entries(context.Background(), resource)
	mark := func(e entry) {
		h.mu.Lock()
		h.done[e.key] = true
		h.mu.Unlock()
	}
	for _, e := range pending {
		if e.ids != nil && slices.Equal(slices.Sorted(slices.Values(e.ids)), want) {
			mark(e)
			return
		}
	}
	for _, e := range pending {
		if e.size == len(ids) {
			mark(e)
			return
		}
	}
}

func allIn(ids []string, set map[string]bool) bool {
	for _, id := range ids {
		if !set[id] {
			return false
		}
	}
	return true
}

func containsAll(ids, must []string) bool {
	for _, m := range must {
		if !slices.Contains(ids, m) {
			return false
		}
	}
	return true
}
