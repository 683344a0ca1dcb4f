package deviceplugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
// The kubelet's request does not name the pod, so Handoff models the order in
// which the kubelet admits the pods of its node (kubelet.HandlePodAdditions):
//
//   - pods that reach a running kubelet one by one are admitted in the order
//     its watch delivered them, which is the order this plugin's informer
//     delivers them too (Observe);
//   - a batch, the pods a kubelet finds when it (re)starts (kubelet restart,
//     node reboot), is admitted sorted by creation time
//     (sort.Sort(sliceutils.PodsByCreationTime(pods))) before any pod that
//     arrives later. KubeletRestarted marks the pods observed so far as such
//     a batch; within one creation second the kubelet's order is not defined
//     (an unstable sort of second-granular timestamps over a map's order),
//     and Handoff breaks the tie by the scheduler's assumed-at, then arrival;
//   - the pods of this plugin's own first list (its informer's, at its start
//     or late under load) reached a kubelet that kept running, which admitted
//     them in its watch order: their bind order, which the scheduler's
//     assumed-at gives (the list's own order says nothing). A node reboot,
//     where the kubelet found them as a batch, is not told apart from this.
//
// Each container's request of a resource is one entry (with the scheduler's
// set for it, or none for a pod another scheduler placed). Handoff answers for
// the first entry of the requested size not allocated yet: its set when it
// has one that fits, else nothing (the plugin's own choice for that pod),
// never another pod's set. When no entry of that size is known yet the
// informer is behind the kubelet; Handoff waits for it up to the configured
// wait.
//
// What is allocated already comes from two records (allocatedLocked):
//
//   - this process's own record: each Allocate it served marks the entry it
//     served when the pod is certain (servedLocked), and the devices it gave
//     (mine). It is exact and never lags, and nothing else can make an
//     entry it marked look pending;
//   - the kubelet's PodResources API (WithAllocations), for allocations this
//     process did not make: pods admitted before it started (its own
//     restart), or admitted with no entry to mark (the informer behind the
//     kubelet). A container PodResources lists with devices of which none
//     is in mine counts as allocated, and is added to the own record (it
//     stays allocated when the API fails later). A listing whose devices
//     this process gave out was already accounted for by the own record:
//     it is ignored, so a PodResources answer that lags (a pod deleted and
//     recreated under its name, a stale list) cannot consume a pending
//     pod's turn. mine maps device IDs, not pods, so it stays as small as
//     the node. The API does not know a pod it is still admitting: it can
//     only add, never decide alone.
//
// The choice is read with pkg/protocol's codec of the gpupack.io/devices and
// gpupack.io/assumed-at pod annotations: each container's set, or when there
// is none the pod-level set (the union) for the first container.
type Handoff struct {
	pods   PodLister
	wait   time.Duration
	allocs Allocations

	mu         sync.Mutex
	seq        map[types.UID]uint64            // informer arrival order, of the node's live pods only
	next       uint64                          // last arrival number given
	batchEnd   uint64                          // pods with seq <= batchEnd are the kubelet's last start batch
	initialEnd uint64                          // pods with seq <= initialEnd came in the informer's first list
	synced     bool                            // the informer delivered its initial list
	changed    chan struct{}                   // closed and replaced on each Observe and Synced
	done       map[doneKey]bool                // entries already allocated (own record, and what PodResources added)
	mine       map[string]map[string]types.UID // resource -> device ID -> pod this process last gave it to
	answered   map[string][]answer             // resource -> this process's last GetPreferredAllocation answers
	turn       map[string]doneKey              // resource -> the entry Choose last left to the plugin's own choice
	consulted  map[string]consultation         // resource -> the entry the last GetPreferredAllocation was answered for, until the next Allocate
	cache      map[types.UID]*decoded          // last decode per pod, reused while the annotations are unchanged
	// kubelet is the kubelet instance (kubeletIdentity) the Managers using
	// this Handoff saw last: it outlives them, so that the next Manager of
	// a rebuild tells a kubelet that started in between (sawKubelet).
	kubelet string
	// registered is set once a plugin of this process registered with a
	// kubelet (pluginRegistered): from then on it may have served an
	// admission. listedBefore are the pods the kubelet's PodResources
	// listed in the read a Manager made before that (beforeRegistration),
	// which started at listedAt (nil: none yet, or every read failed).
	registered   bool
	listedBefore map[types.NamespacedName]bool
	listedAt     time.Time
}

// HandoffOption configures a Handoff.
type HandoffOption func(*Handoff)

// WithInformerWait makes ScheduledSet wait up to d for the informer to deliver the
// pod being admitted when it knows no pod of the requested size.
func WithInformerWait(d time.Duration) HandoffOption { return func(h *Handoff) { h.wait = d } }

// WithUnsynced says the informer is still delivering its initial list: until
// Synced, ScheduledSet waits for it (up to the informer wait) and then answers
// without the scheduler's choices rather than from a partial list.
func WithUnsynced() HandoffOption { return func(h *Handoff) { h.synced = false } }

// WithAllocations makes the kubelet's answer (the PodResources API) decide
// which containers hold devices already, instead of this process's memory of
// its own Allocate calls, which starts empty after a restart.
func WithAllocations(a Allocations) HandoffOption { return func(h *Handoff) { h.allocs = a } }

// Allocations are the devices the kubelet has given to the containers of
// the node's pods.
type Allocations interface {
	// Allocated returns pod -> container -> resource -> device IDs.
	Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error)
}

// PodNames is an Allocations that also names every pod the kubelet lists,
// with devices or without (PodResources does): a pod whose only request of
// a resource is a regular init container's is listed without devices.
type PodNames interface {
	ListedPods(ctx context.Context) ([]types.NamespacedName, error)
}

// beforeRegistration is called by a Manager before it registers its
// plugins with the kubelet. Until one read succeeded, and as long as no
// plugin of this process has registered with a kubelet (pluginRegistered),
// it reads the pods the kubelet lists (src, else the Handoff's own
// Allocations, when it is PodNames): no pod asking a resource the plugin
// serves is admitted while no plugin of it is registered (the kubelet's
// device manager fails the admission), so each of them had its admission
// over, allocated or refused, before this process could serve it
// (admittedBefore). A read that failed (the kubelet restarting while the
// plugin starts) is made again by the next Manager (a rebuild, a retry):
// with the first call's read only, it was never made again although no
// registration had succeeded. Once a plugin registered, nothing is read:
// this process may have served the kubelet since, and its own record
// holds what it served.
func (h *Handoff) beforeRegistration(ctx context.Context, src Allocations) {
	if h == nil {
		return
	}
	h.mu.Lock()
	read := !h.registered && h.listedBefore == nil
	if src == nil {
		src = h.allocs
	}
	h.mu.Unlock()
	names, ok := src.(PodNames)
	if !read || !ok {
		return
	}
	logger := klog.FromContext(ctx)
	at := time.Now()
	listed, err := names.ListedPods(ctx)
	if err != nil {
		logger.Error(fmt.Errorf("reading the pods the kubelet admitted before this process started: %w", err),
			"A running pod whose only request of a resource is a regular init container's stays pending in the handoff until a read before the first registration succeeds")
		return
	}
	set := make(map[types.NamespacedName]bool, len(listed))
	for _, n := range listed {
		set[n] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.registered {
		// A plugin registered during the read (an earlier Manager's
		// registration in flight): the kubelet may have admitted a pod
		// with its devices meanwhile.
		logger.V(2).Info("A plugin registered while the kubelet's pods were read: not using the read")
		return
	}
	h.listedBefore, h.listedAt = set, at
	logger.V(2).Info("Pods the kubelet admitted before this process registered", "pods", len(set))
}

// pluginRegistered records that a plugin of this process registered with a
// kubelet (Plugin.Register succeeded, or a kubelet opened its ListAndWatch
// stream, which it does only for a plugin it registered, also when its
// answer to the registration was lost): the kubelet may admit pods with
// its devices from then on, and beforeRegistration reads no more.
func (h *Handoff) pluginRegistered() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.registered = true
}

// admittedBeforeLocked reports whether pod's admission was over before this
// process first registered with the kubelet: the kubelet listed it then
// (beforeRegistration), it was created before that read (in a second
// before: a pod created again under the name after the read is not the
// one listed), and the kubelet started it (status.startTime: a pod listed
// while its admission was under way, the kubelet lists it from the start
// of its admission, is not started yet; its admission then failed). Its
// entries are served. PodResources never lists a regular init container,
// and this process's own record starts empty: without this, after a
// restart, the entry of a pod whose only request of the resource is a
// regular init container's stayed pending for the pod's life, ahead of
// every later pod of its size, and each of them got its predecessor's
// set. status.startTime alone is no record of the device manager (kwok
// writes it before the kubelet admits the pod). h.mu must be held.
func (h *Handoff) admittedBeforeLocked(pod *v1.Pod) bool {
	return h.listedBefore[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}] &&
		pod.Status.StartTime != nil &&
		pod.CreationTimestamp.Time.Before(h.listedAt.Truncate(time.Second))
}

// decoded is a pod's choice as last decoded, with the annotation values it came from.
type decoded struct {
	devices, assumedAt string
	d                  *protocol.Devices
	at                 time.Time
	ok                 bool
	err                error
}

// answer is a set Choose handed out for an entry, so that the Allocate
// that follows marks that entry.
type answer struct {
	ids []string // sorted
	key doneKey
}

// maxAnswers bounds the answers kept per resource (the kubelet allocates
// one container at a time; a few cover answers it did not use).
const maxAnswers = 8

// consultation is the entry a GetPreferredAllocation was answered for,
// with the devices the kubelet offered (available): the Allocate that
// follows it gives some of them.
type consultation struct {
	key   doneKey
	avail map[string]bool
}

type doneKey struct {
	uid       types.UID
	container string // "" for the pod-level set
	resource  string
}

// Ordering classes of entries.
const (
	classBatch   = iota // pods the kubelet found at its (re)start: by creation time
	classInitial        // the informer's first list: by the scheduler's assumed-at (bind order)
	classStream         // pods that reached the running kubelet: by arrival
	classUnknown        // not delivered by the informer: last
)

// SetLister sets the lister of the node's pods, for a Handoff made before
// its informer (so that it observes every delivery).
func (h *Handoff) SetLister(pods PodLister) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pods = pods
}

// NewHandoff returns a Handoff over the node's pods.
func NewHandoff(pods PodLister, opts ...HandoffOption) *Handoff {
	h := &Handoff{pods: pods, seq: map[types.UID]uint64{}, changed: make(chan struct{}),
		done: map[doneKey]bool{}, mine: map[string]map[string]types.UID{}, answered: map[string][]answer{}, turn: map[string]doneKey{}, consulted: map[string]consultation{},
		cache: map[types.UID]*decoded{}, synced: true}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Observe records that the informer delivered pod (add or update), in
// delivery order; call it from the informer's event handler. A pod that
// finished or is being deleted will never be admitted: it is forgotten.
func (h *Handoff) Observe(pod *v1.Pod) {
	if h == nil || pod.Spec.NodeName == "" {
		return
	}
	if !live(pod) {
		h.Forget(pod.UID)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.seq[pod.UID]; !ok {
		h.next++
		h.seq[pod.UID] = h.next
		h.notifyLocked()
	}
}

// Forget drops what Handoff keeps about a pod; call it from the informer's
// delete handler. Without it the state of a node that runs many short pods
// would grow with every pod ever seen.
func (h *Handoff) Forget(uid types.UID) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.seq, uid)
	delete(h.cache, uid)
	for k := range h.done {
		if k.uid == uid {
			delete(h.done, k)
		}
	}
}

// Synced records that the informer delivered the node's pods as they were
// at its first list. The list's order says nothing of the kubelet's; the
// running kubelet admitted the pending ones among them in its watch order,
// which is their bind order (the scheduler's assumed-at), before the pods
// that arrive later.
func (h *Handoff) Synced() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.synced = true
	h.initialEnd = h.next
	h.notifyLocked()
}

// KubeletRestarted records that the kubelet started again: it admits every
// pod still pending as one batch, sorted by creation time, before the pods
// that reach it afterwards. What the kubelet that stopped asked
// (GetPreferredAllocation's answers, the question it asked last) is
// forgotten: an Allocate it did not make will not come, and the new
// kubelet asks again for the pods it admits.
func (h *Handoff) KubeletRestarted() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.batchEnd = h.next
	clear(h.consulted)
	clear(h.turn)
	clear(h.answered)
}

// sawKubelet records id (kubeletIdentity; "" records nothing) as the
// kubelet instance a Manager saw last and returns the one recorded before
// ("" when none): a Manager that replaces another one (a reload, a
// rediscovery) tells a kubelet that restarted while neither ran, whose
// first pods are a batch (KubeletRestarted), from the one the other had.
func (h *Handoff) sawKubelet(id string) string {
	if h == nil {
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.kubelet
	if id != "" {
		h.kubelet = id
	}
	return prev
}

// refused records that an Allocate of resource, of these device IDs per
// container, was refused: the kubelet fails the admission of the pod it
// was for (it does not ask again), so neither the question it asked last,
// nor the answers given for that question's entry or handing those IDs
// out, serve a later Allocate, which is another pod's.
func (h *Handoff) refused(resource string, containers [][]string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, asked := h.consulted[resource]
	delete(h.consulted, resource)
	delete(h.turn, resource)
	refused := make([][]string, 0, len(containers))
	for _, ids := range containers {
		refused = append(refused, slices.Sorted(slices.Values(ids)))
	}
	h.answered[resource] = slices.DeleteFunc(h.answered[resource], func(a answer) bool {
		return (asked && a.key == c.key) || slices.ContainsFunc(refused, func(ids []string) bool { return slices.Equal(a.ids, ids) })
	})
}

// Len is the number of pods whose arrival Handoff remembers.
func (h *Handoff) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seq)
}

func (h *Handoff) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func live(pod *v1.Pod) bool {
	return pod.Status.Phase != v1.PodSucceeded && pod.Status.Phase != v1.PodFailed && pod.DeletionTimestamp == nil
}

// entry is one container's request of a resource, with the scheduler's set
// for it when there is one.
type entry struct {
	pod       *v1.Pod
	key       doneKey
	container string // the container the entry serves (key.container may be "")
	// regularInit: the container is a regular init container (not a
	// sidecar), which the kubelet's PodResources never lists.
	regularInit bool
	size        int
	ids         []string // nil: no choice (another scheduler's pod)
	class       int      // classBatch, classStream, classUnknown
	seq         uint64   // arrival order
	at          time.Time
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
	if err = fitsSpec(pod, d); err != nil {
		return nil, time.Time{}, false, err
	}
	return d, at, true, nil
}

// fitsSpec checks a decoded choice against the pod's spec. The kubelet asks
// for each container's own count of a resource (GetPreferredAllocation's
// size), so a set for a container the spec does not have, of another size
// than its container asks, or a pod-level set no container of that size
// takes, is never asked for: as an entry it stayed first in its size's
// queue and handed its set to the next pod admitted, every later pod then
// getting its predecessor's set. Such a choice is malformed (the scheduler
// writes each container's set of its container's count): the pod is handled
// as one without a choice.
func fitsSpec(pod *v1.Pod, d *protocol.Devices) error {
	byName := map[string]*v1.Container{}
	for _, c := range allContainers(pod) {
		byName[c.Name] = c
	}
	withSets := map[string]bool{} // resources some container has a set of
	for _, name := range slices.Sorted(maps.Keys(d.Containers)) {
		for _, res := range slices.Sorted(maps.Keys(d.Containers[name])) {
			ids := d.Containers[name][res]
			if len(ids) == 0 {
				continue
			}
			withSets[res] = true
			c, ok := byName[name]
			if !ok {
				return fmt.Errorf("%s: container %q has a set of %s but the pod has no such container", protocol.DevicesAnnotation, name, res)
			}
			if n, _ := protocol.DeviceCount(c, res); n != len(ids) {
				return fmt.Errorf("%s: container %q: %d devices of %s for a request of %d", protocol.DevicesAnnotation, name, len(ids), res, n)
			}
		}
	}
	for _, res := range slices.Sorted(maps.Keys(d.Resources)) {
		ids := d.Resources[res]
		if len(ids) == 0 || withSets[res] {
			continue
		}
		// The pod-level set alone serves the first container asking res.
		n := 0
		for _, c := range allContainers(pod) {
			if n, _ = protocol.DeviceCount(c, res); n > 0 {
				break
			}
		}
		if n != len(ids) {
			return fmt.Errorf("%s: %d devices of %s for the pod, without containers' sets, but its first container asking %s asks %d", protocol.DevicesAnnotation, len(ids), res, res, n)
		}
	}
	return nil
}

// entries are the node's pending requests of resource, in admission order,
// with the Handoff's own reads of the kubelet's allocations.
func (h *Handoff) entries(ctx context.Context, resource string) []entry {
	return h.entriesFrom(ctx, nil, resource)
}

// entriesFrom is entries with the kubelet's allocations read from src (nil:
// the Handoff's own, WithAllocations).
func (h *Handoff) entriesFrom(ctx context.Context, src Allocations, resource string) []entry {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	lister := h.pods
	// Pods observed after this were delivered after the list below was
	// taken: their absence from it says nothing.
	listedAt := h.next
	h.mu.Unlock()
	if lister == nil {
		return nil
	}
	logger := klog.FromContext(ctx)
	pods, err := lister.List(labels.Everything())
	if err != nil {
		logger.Error(err, "Listing the node's pods failed")
		return nil
	}
	held := h.held(ctx, src)
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []entry
	seen := make(map[types.UID]bool, len(pods))
	for _, pod := range pods {
		seen[pod.UID] = true
		if !live(pod) {
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
		class, seq := h.classLocked(pod.UID)
		before := h.admittedBeforeLocked(pod)
		for _, e := range podEntries(pod, choice, resource) {
			if before {
				h.done[e.key] = true // kept: the listing is not read again
			}
			if h.allocatedLocked(held, e) {
				continue
			}
			e.class, e.seq, e.at = class, seq, at
			out = append(out, e)
		}
	}
	h.forgetLocked(seen, listedAt)
	slices.SortStableFunc(out, compareEntries)
	return out
}

// classLocked is where the pod stands in the kubelet's admission order.
func (h *Handoff) classLocked(uid types.UID) (int, uint64) {
	seq, ok := h.seq[uid]
	switch {
	case !ok:
		return classUnknown, math.MaxUint64
	case seq <= h.batchEnd:
		return classBatch, seq
	case seq <= h.initialEnd:
		return classInitial, seq
	default:
		return classStream, seq
	}
}

// compareEntries orders entries as the kubelet admits their pods: the batch
// by creation time, the informer's first list by assumed-at, then the stream
// by arrival; the scheduler's assumed-at
// and then arrival break ties.
func compareEntries(a, b entry) int {
	if c := cmp.Compare(a.class, b.class); c != 0 {
		return c
	}
	if a.class == classBatch {
		if c := a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time); c != 0 {
			return c
		}
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	}
	if a.class == classInitial {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if c := a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	}
	if c := cmp.Compare(a.seq, b.seq); c != 0 {
		return c
	}
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time)
}

// held asks the kubelet which containers hold devices, through src (nil:
// the Handoff's own reads); nil when there is no PodResources API or it did
// not answer (then this process's memory counts).
func (h *Handoff) held(ctx context.Context, src Allocations) map[types.NamespacedName]map[string]map[string][]string {
	if src == nil {
		src = h.allocs
	}
	if src == nil {
		return nil
	}
	held, err := src.Allocated(ctx)
	if errors.Is(err, errReadUnderWay) {
		// The API failed its last read: said when it failed.
		klog.FromContext(ctx).V(2).Info("The kubelet's PodResources has not answered yet; using this process's own record")
		return nil
	}
	if err != nil {
		klog.FromContext(ctx).Error(err, "Reading the kubelet's allocations failed; using this process's own record")
		return nil
	}
	if held == nil {
		held = map[types.NamespacedName]map[string]map[string][]string{}
	}
	return held
}

// allocatedLocked reports whether the entry's container holds devices of
// its resource already. The own record decides for what this process
// allocated (the kubelet lists a pod it is still admitting only later);
// the kubelet's PodResources answer adds what it did not allocate (before
// its start, or with no entry to mark), and what it adds is kept. h.mu must
// be held.
func (h *Handoff) allocatedLocked(held map[types.NamespacedName]map[string]map[string][]string, e entry) bool {
	if h.done[e.key] || held == nil {
		return h.done[e.key]
	}
	containers := held[types.NamespacedName{Namespace: e.pod.Namespace, Name: e.pod.Name}]
	var ids []string
	if e.container == "" || e.regularInit {
		// A pod-level set no container of the spec took: any container of
		// the pod holding the resource served it. A regular init
		// container, which PodResources never lists (app containers and
		// sidecars only): the kubelet allocates every container of a pod
		// at its admission, init containers first, so the pod's app
		// containers or sidecars holding the resource say it was served.
		// Without this, after this process restarted, a running pod's
		// init container entry stayed pending for the pod's life, ahead of
		// every later pod, and the pods after it of its size each got
		// their predecessor's set.
		for _, byRes := range containers {
			ids = append(ids, byRes[e.key.resource]...)
		}
	} else {
		ids = containers[e.container][e.key.resource]
	}
	if len(ids) == 0 {
		return false
	}
	mine := h.mine[e.key.resource]
	for _, id := range ids {
		if _, ok := mine[id]; ok {
			// This process gave that device out: its own record already
			// says which entry it served; the listing is the kubelet's
			// later (or stale) view of the same allocation.
			return false
		}
	}
	h.done[e.key] = true
	return true
}

// podEntries are a pod's requests of resource, init containers first, each
// with its container's set, or the pod-level set for the first container
// without one. The choice fits the spec (fitsSpec): each set is of its
// container's count, so each entry's size is what the kubelet asks.
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
	add := func(key, container string, size int, ids []string) {
		out = append(out, entry{pod: pod, key: doneKey{uid: pod.UID, container: key, resource: resource}, container: container, size: size, ids: ids,
			regularInit: isRegularInit(pod, container)})
	}
	for _, c := range allContainers(pod) {
		n, _ := protocol.DeviceCount(c, resource) // malformed: the kubelet admits no such container
		switch {
		case n == 0:
		case len(containerSets[c.Name]) > 0:
			add(c.Name, c.Name, len(containerSets[c.Name]), containerSets[c.Name])
			delete(containerSets, c.Name)
		case len(podLevel) > 0:
			add("", c.Name, len(podLevel), podLevel)
			podLevel = nil
		default:
			add(c.Name, c.Name, n, nil)
		}
	}
	return out
}

// isRegularInit reports whether name is one of pod's regular init
// containers (restartPolicy other than Always: not a sidecar).
func isRegularInit(pod *v1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; c.Name == name {
			return c.RestartPolicy == nil || *c.RestartPolicy != v1.ContainerRestartPolicyAlways
		}
	}
	return false
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

// forgetLocked drops the state of pods that left the node: absent from a
// list taken when the last arrival number was listedAt. A pod observed
// after that (the informer delivers it after updating the lister's store)
// is kept: dropping it lost its arrival (it came back as a new arrival, at
// the end of the queue) and its own-record allocation, so it looked pending
// again and took the next pod's turn; the PodResources call between the
// list and this lock made that window wide. h.mu must be held.
func (h *Handoff) forgetLocked(present map[types.UID]bool, listedAt uint64) {
	gone := func(uid types.UID) bool {
		if present[uid] {
			return false
		}
		seq, ok := h.seq[uid]
		return !ok || seq <= listedAt
	}
	for uid := range h.cache {
		if gone(uid) {
			delete(h.cache, uid)
		}
	}
	for k := range h.done {
		if gone(k.uid) {
			delete(h.done, k)
		}
	}
	for uid := range h.seq {
		if gone(uid) {
			delete(h.seq, uid)
		}
	}
}

// ScheduledSet looks up the scheduler's set for the pod being admitted: the
// first pending entry of this size, when it has a set that fits; ok=false
// when that entry has no set or its set no longer fits (the plugin then
// chooses, with pkg/score). It chooses nothing itself.
func (h *Handoff) ScheduledSet(ctx context.Context, resource string, available, mustInclude []string, size int) (ids []string, pod *v1.Pod, ok bool) {
	return h.scheduledSet(ctx, nil, resource, available, mustInclude, size)
}

// scheduledSet is ScheduledSet with the kubelet's allocations read from src
// (nil: the Handoff's own reads): a Plugin passes its Manager's, bounded
// as Allocate's are.
func (h *Handoff) scheduledSet(ctx context.Context, src Allocations, resource string, available, mustInclude []string, size int) (ids []string, pod *v1.Pod, ok bool) {
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
		h.mu.Lock()
		synced := h.synced
		h.mu.Unlock()
		if e, found := h.head(ctx, src, resource, size); found && synced {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.consulted[resource] = consultation{key: e.key, avail: avail}
			if e.ids == nil || !allIn(e.ids, avail) || !containsAll(e.ids, mustInclude) {
				h.turn[resource] = e.key
				return nil, e.pod, false
			}
			delete(h.turn, resource)
			h.answeredLocked(resource, e.ids, e.key)
			return slices.Clone(e.ids), e.pod, true
		}
		left := time.Until(deadline)
		if left <= 0 {
			h.mu.Lock()
			delete(h.consulted, resource)
			h.mu.Unlock()
			if !synced {
				klog.FromContext(ctx).Info("The pod informer has not synced: not using the scheduler's choices for this allocation", "resource", resource, "size", size)
			}
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
func (h *Handoff) head(ctx context.Context, src Allocations, resource string, size int) (entry, bool) {
	for _, e := range h.entriesFrom(ctx, src, resource) {
		if e.size == size {
			return e, true
		}
	}
	return entry{}, false
}

// OwnChoice records that the plugin answered ids (its own choice) for the
// entry Choose last left to it, so that the Allocate that follows marks
// that entry.
func (h *Handoff) OwnChoice(resource string, ids []string) {
	if h == nil || len(ids) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if key, ok := h.turn[resource]; ok {
		delete(h.turn, resource)
		h.answeredLocked(resource, ids, key)
	}
}

// answeredLocked remembers that Choose handed ids out for the entry key;
// h.mu must be held.
func (h *Handoff) answeredLocked(resource string, ids []string, key doneKey) {
	a := append(h.answered[resource], answer{ids: slices.Sorted(slices.Values(ids)), key: key})
	if len(a) > maxAnswers {
		a = slices.Delete(a, 0, len(a)-maxAnswers)
	}
	h.answered[resource] = a
}

// allocated records an Allocate of ids in the own record: it marks the
// pending entry the allocation served when its pod is certain
// (servedLocked), and records ids as given by this process to that pod.
// When it is not (no pending entry is known: the informer is behind the
// kubelet; or the kubelet chose devices on its own, asking nothing first),
// nothing is marked and ids are no longer counted as this process's: the
// kubelet's PodResources answer, which names the pod, then marks its entry
// (allocatedLocked).
func (h *Handoff) allocated(resource string, ids []string) {
	h.allocatedFrom(nil, resource, ids)
}

// allocatedFrom is allocated with the kubelet's allocations read from src
// (nil: the Handoff's own reads).
func (h *Handoff) allocatedFrom(src Allocations, resource string, ids []string) {
	if h == nil {
		return
	}
	// Recorded even with the kubelet's PodResources answer: the kubelet
	// lists a pod there only once its admission is through, and the next
	// pod's GetPreferredAllocation may come before.
	want := slices.Sorted(slices.Values(ids))
	pending := h.entriesFrom(context.Background(), src, resource)
	h.mu.Lock()
	defer h.mu.Unlock()
	key, found := h.servedLocked(resource, pending, want)
	// The answer of the last GetPreferredAllocation serves this Allocate
	// only: the kubelet asks right before the Allocate it serves.
	delete(h.consulted, resource)
	mine := h.mine[resource]
	if mine == nil {
		mine = map[string]types.UID{}
		h.mine[resource] = mine
	}
	for _, id := range ids {
		if found {
			mine[id] = key.uid
		} else {
			delete(mine, id)
		}
	}
	if found {
		h.done[key] = true
		h.earlierServedLocked(pending, key)
	}
}

// earlierServedLocked marks the pending entries of key's pod that come
// before key (pending keeps each pod's entries in the kubelet's order: init
// containers, then app containers): the kubelet allocated them before key,
// in the same admission, even when their Allocate was not marked (the
// kubelet chose on its own, asking nothing). PodResources never lists a
// regular init container, so nothing else would mark it, and it stayed
// pending ahead of the pods after it, each of its size then getting its
// predecessor's set. h.mu must be held.
func (h *Handoff) earlierServedLocked(pending []entry, key doneKey) {
	var before []doneKey
	for _, e := range pending {
		switch {
		case e.key == key:
			for _, k := range before {
				h.done[k] = true
			}
			return
		case e.key.uid == key.uid:
			before = append(before, e.key)
		}
	}
}

// servedLocked is the pending entry an allocation of want (sorted) served,
// when its pod is certain; h.mu must be held. In this order:
//
//   - reuse: every device was last given by this process to one pod that
//     has a pending entry of that size. The kubelet (v1.37
//     devicesToAllocate) gives an app container devices from the pool its
//     pod's regular init containers left first, and picks them itself when
//     the pool holds enough, asking nothing; devices a live pod holds go to
//     no other pod. Its first such entry (containers in the kubelet's
//     order);
//   - the pending entry whose set is exactly want, when only one is (two
//     alike are told apart by the answers below);
//   - the entry a GetPreferredAllocation answer handed want out for;
//   - the entry the last GetPreferredAllocation was answered for, when of
//     that size and want is among the devices it offered: the kubelet asks
//     right before the Allocate it serves, and may allocate other devices
//     than the answer (topology alignment, or no answer), but always among
//     those. A question whose Allocate will not come is forgotten: the
//     Allocate refused (refused), the kubelet restarted (KubeletRestarted).
//
// Otherwise nothing is certain: the first pending entry of that size may
// be another pod's, whose turn marking it would take.
func (h *Handoff) servedLocked(resource string, pending []entry, want []string) (doneKey, bool) {
	if key, ok := h.reusedLocked(resource, pending, want); ok {
		return key, true
	}
	answered := h.answerFor(resource, pending, want)
	c, asked := h.consulted[resource]
	// The kubelet allocates among the devices it offered when it asked:
	// an Allocate of another is not the one the question was for (the
	// kubelet gave up on that pod, and asked nothing for this one).
	asked = asked && allIn(want, c.avail)
	consulted := c.key
	var exact []entry
	for _, e := range pending {
		if e.ids != nil && slices.Equal(slices.Sorted(slices.Values(e.ids)), want) {
			exact = append(exact, e)
		}
	}
	if len(exact) == 1 {
		return exact[0].key, true
	}
	for _, e := range exact {
		if answered != nil && e.key == *answered {
			h.dropAnswerLocked(resource, e.key, want)
			return e.key, true
		}
		if asked && e.key == consulted {
			return e.key, true
		}
	}
	if len(exact) > 1 {
		return doneKey{}, false // alike sets, none the kubelet asked about
	}
	if answered != nil {
		h.dropAnswerLocked(resource, *answered, want)
		return *answered, true
	}
	if asked {
		for _, e := range pending {
			if e.key == consulted && e.size == len(want) {
				return e.key, true
			}
		}
	}
	return doneKey{}, false
}

// reusedLocked is the first pending entry of len(want) of the one pod this
// process last gave every device of want to; h.mu must be held.
func (h *Handoff) reusedLocked(resource string, pending []entry, want []string) (doneKey, bool) {
	mine := h.mine[resource]
	var pod types.UID
	for i, id := range want {
		uid, ok := mine[id]
		if !ok || (i > 0 && uid != pod) {
			return doneKey{}, false
		}
		pod = uid
	}
	for _, e := range pending {
		if e.key.uid == pod && e.size == len(want) {
			return e.key, true
		}
	}
	return doneKey{}, false
}

// answerFor is the pending entry the latest answer handing want out was
// for, nil if none; h.mu must be held.
func (h *Handoff) answerFor(resource string, pending []entry, want []string) *doneKey {
	answers := h.answered[resource]
	for i := len(answers) - 1; i >= 0; i-- {
		if !slices.Equal(answers[i].ids, want) {
			continue
		}
		for _, e := range pending {
			if e.key == answers[i].key {
				return &e.key
			}
		}
	}
	return nil
}

// dropAnswerLocked forgets the answer of want for key; h.mu must be held.
func (h *Handoff) dropAnswerLocked(resource string, key doneKey, want []string) {
	h.answered[resource] = slices.DeleteFunc(h.answered[resource], func(a answer) bool {
		return a.key == key && slices.Equal(a.ids, want)
	})
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
