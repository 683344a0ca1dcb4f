package deviceplugin

import (
	"context"
	"maps"
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
// call (DESIGN.md section 4): the oldest pod of this node whose choice for the
// resource has the requested size, is contained in available, includes
// mustInclude and was not allocated yet.
//
// The choice is read with pkg/protocol's codec of the gpupack.io/devices and
// gpupack.io/assumed-at pod annotations: the pod-level set of the resource,
// and each container's set.
type Handoff struct {
	pods PodLister

	mu    sync.Mutex
	done  map[doneKey]bool       // choices already allocated
	cache map[types.UID]*decoded // last decode per pod, reused while the annotations are unchanged
}

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
func NewHandoff(pods PodLister) *Handoff {
	return &Handoff{pods: pods, done: map[doneKey]bool{}, cache: map[types.UID]*decoded{}}
}

type candidate struct {
	pod *v1.Pod
	key doneKey
	ids []string
	at  time.Time
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

// candidates are the pods with a choice for resource, oldest first.
func (h *Handoff) candidates(ctx context.Context, resource string) []candidate {
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
	var out []candidate
	seen := make(map[types.UID]bool, len(pods))
	for _, pod := range pods {
		seen[pod.UID] = true
		if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed || pod.DeletionTimestamp != nil {
			continue
		}
		choice, at, ok, err := h.choiceOfLocked(pod)
		if err != nil {
			logger.Error(err, "Ignoring the pod's malformed device choice", "pod", klog.KObj(pod))
			continue
		}
		if !ok {
			continue
		}
		if at.IsZero() {
			at = pod.CreationTimestamp.Time
		}
		add := func(container string, ids []string) {
			key := doneKey{uid: pod.UID, container: container, resource: resource}
			if len(ids) > 0 && !h.done[key] {
				out = append(out, candidate{pod: pod, key: key, ids: ids, at: at})
			}
		}
		for _, c := range slices.Sorted(maps.Keys(choice.Containers)) {
			add(c, choice.Containers[c][resource])
		}
		add("", choice.Resources[resource])
	}
	h.forgetLocked(seen)
	slices.SortStableFunc(out, func(a, b candidate) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time)
	})
	return out
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
}

// Choose returns the oldest fitting scheduler choice, or ok=false.
func (h *Handoff) Choose(ctx context.Context, resource string, available, mustInclude []string, size int) (ids []string, pod *v1.Pod, ok bool) {
	avail := make(map[string]bool, len(available))
	for _, id := range available {
		avail[id] = true
	}
	for _, c := range h.candidates(ctx, resource) {
		if len(c.ids) != size || !allIn(c.ids, avail) || !containsAll(c.ids, mustInclude) {
			continue
		}
		return slices.Clone(c.ids), c.pod, true
	}
	return nil, nil, false
}

// allocated marks the first choice for resource that is exactly ids, so a
// finished allocation is not offered again.
func (h *Handoff) allocated(resource string, ids []string) {
	if h == nil {
		return
	}
	want := slices.Sorted(slices.Values(ids))
	for _, c := range h.candidates(context.Background(), resource) {
		if slices.Equal(slices.Sorted(slices.Values(c.ids)), want) {
			h.mu.Lock()
			h.done[c.key] = true
			h.mu.Unlock()
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
