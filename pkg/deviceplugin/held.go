package deviceplugin

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// holdings is what a Manager knows of the devices the node's containers
// hold (the kubelet's PodResources API), and the devices it withholds
// because of them (sharing.Withheld): a running container that holds a GPU
// under the resource name or device ID of an earlier config (a reload
// renamed it, turned replicas on or off, changed the MIG strategy) keeps
// it, and the kubelet, which counts allocations per name and ID, sees the
// GPU's new devices free. A withheld device is advertised Unhealthy (the
// kubelet never picks it) and Allocate refuses it, until a read no longer
// lists its holder.
//
// The knowledge is kept when the API fails: the last successful answer,
// plus the devices this Manager allocated since (sharing.Holding without a
// pod), and a Manager that replaces another starts from the other's
// (Options.Held). So is the memory of the MIG devices of earlier
// inventories (Options.MIGParents): a container still listed with a MIG
// device that a MIG layout change destroyed keeps its GPU withheld. A nil
// *holdings, or one without a source, withholds nothing.
type holdings struct {
	src       Allocations
	inv       *nvml.Inventory
	resources []sharing.Resource
	metrics   *Metrics
	// earlier are the parents of MIG devices of earlier inventories;
	// never modified.
	earlier sharing.MIGParents
	// gone is told of a holding of a MIG device gone whose GPU is not
	// known (set by New before any read; nil: not told).
	gone GoneMIGEvents

	mu      sync.Mutex
	listing []sharing.Holding // the last successful answer
	since   []noted           // what Allocate gave, since about that answer
	known   bool              // an answer (or a carried one) is in listing
	started uint64            // reads started
	applied uint64            // the number of the read listing holds
	// answer is listing as read (Allocations.Allocated's); nil until one
	// of this Manager's reads succeeded.
	answer map[types.NamespacedName]map[string]map[string][]string
	// answered is set once a read of this Manager's succeeded: known may
	// come from the Manager it replaced (carried), never confirmed.
	answered bool
	// stalled is set while the last read that ended failed and none
	// succeeded since, failed its error; pending is the read under way
	// that started last.
	stalled bool
	failed  error
	pending *heldRead
	// readTimeout bounds a read; stalledWait bounds a refresh's wait
	// while stalled (heldReadTimeout, heldStalledWait).
	readTimeout, stalledWait time.Duration
	// withheld is resource -> device ID -> holder; replaced, never modified.
	withheld map[string]map[string]sharing.Holding
	changed  chan struct{} // closed and replaced when withheld changes
	// noted are the holdings (resource and ID) whose oddity was logged
	// (sharing.Note), while the kubelet lists them: each once, up to
	// maxNoted of them.
	noted *deviceid.Reported
}

// maxNoted bounds holdings.noted: the odd holdings logged, each once.
const maxNoted = 1024

// noted is a device Allocate gave, while reads up to seq had started.
type noted struct {
	seq uint64
	h   sharing.Holding
}

// newHoldings starts from carried, what the Manager this one replaces knew
// held, prev, what it withheld (a held share keeps its replica), and
// earlier, the parents of the MIG devices of earlier inventories.
func newHoldings(src Allocations, inv *nvml.Inventory, earlier sharing.MIGParents, resources []sharing.Resource, carried []sharing.Holding,
	prev map[string]map[string]sharing.Holding, metrics *Metrics) *holdings {
	h := &holdings{src: src, inv: inv, earlier: earlier, resources: resources, metrics: metrics, changed: make(chan struct{}),
		withheld: map[string]map[string]sharing.Holding{}, readTimeout: heldReadTimeout, stalledWait: heldStalledWait,
		noted: deviceid.NewReported(maxNoted)}
	if src != nil && carried != nil {
		h.listing, h.known = slices.Clone(carried), true
		h.withheld = sharing.Withheld(resources, inv, earlier, carried, prev)
	}
	return h
}

// Bounds of the PodResources reads (holdings.readTimeout, stalledWait).
const (
	// heldReadTimeout bounds one read, as the PodResources client does.
	heldReadTimeout = 10 * time.Second
	// heldStalledWait is how long a refresh waits for an answer once a
	// read has failed, until one succeeds: a kubelet that does not answer
	// must not hold every Allocate for heldReadTimeout.
	heldStalledWait = time.Second
)

// errReadUnderWay is refresh's error when it stopped waiting for a read
// (the API stalled): what is known is used meanwhile.
var errReadUnderWay = errors.New("the kubelet's PodResources API failed its last read and has not answered this one yet")

// heldRead is one read of the kubelet's allocations; done is closed when
// it ended, with whether it changed what is withheld, or its error.
type heldRead struct {
	done    chan struct{}
	changed bool
	err     error
}

// refresh reads the kubelet's allocations and recomputes what is withheld;
// on an error what is known stays (and the error is returned). It reports
// whether what is withheld changed.
//
// A read runs apart from the caller, bounded by readTimeout. The caller
// waits for it to end, except while the API is stalled (the last read
// that ended failed, and none succeeded since): then one read at a time
// is under way, every caller waits for that one at most stalledWait, and
// one that stops waiting gets errReadUnderWay. What is known (the last
// answer and the devices allocated since) decides meanwhile, as it does
// after a failed read; the read still applies its answer when it comes.
func (h *holdings) refresh(ctx context.Context, why string) (bool, error) {
	if h == nil || h.src == nil {
		return false, nil
	}
	h.mu.Lock()
	stalled, wait := h.stalled, h.stalledWait
	r := h.pending
	if r == nil || !stalled {
		r = h.startLocked(ctx, why)
	}
	h.mu.Unlock()
	if !stalled {
		select {
		case <-r.done:
			return r.changed, r.err
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.done:
		return r.changed, r.err
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return false, errReadUnderWay
	}
}

// startLocked starts a read (why says what asked, for the log); h.mu must
// be held.
func (h *holdings) startLocked(ctx context.Context, why string) *heldRead {
	h.started++
	n := h.started
	r := &heldRead{done: make(chan struct{})}
	h.pending = r
	// Apart from the caller, which may stop waiting: the answer still
	// counts.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.readTimeout)
	go func() {
		defer cancel()
		defer close(r.done)
		r.changed, r.err = h.read(rctx, n, why)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.pending == r {
			h.pending = nil
		}
	}()
	return r
}

// read is read number n: it asks the kubelet and applies the answer, or
// logs and counts its failure.
func (h *holdings) read(ctx context.Context, n uint64, why string) (bool, error) {
	logger := klog.FromContext(ctx)
	allocated, err := h.src.Allocated(ctx)
	if err != nil {
		h.metrics.podResourcesFailed()
		h.mu.Lock()
		if n > h.applied {
			h.stalled, h.failed = true, err // no later read succeeded
		}
		known := h.known
		h.mu.Unlock()
		if known {
			logger.Error(err, "Reading the kubelet's PodResources failed; keeping what it said last about devices held under other names", "why", why)
		} else {
			logger.Error(err, "Reading the kubelet's PodResources failed; devices held under an earlier config's names cannot be withheld until it answers", "why", why)
		}
		return false, err
	}
	listing := holdingsOf(allocated)
	h.mu.Lock()
	if n <= h.applied {
		h.mu.Unlock()
		return false, nil // a read started later answered first
	}
	h.applied, h.listing, h.answer, h.known, h.answered, h.stalled = n, listing, allocated, true, true, false
	// A device Allocate gave while this read was under way may not be in
	// it yet (the kubelet records it after Allocate answers): kept until a
	// read started after the next one.
	h.since = slices.DeleteFunc(h.since, func(x noted) bool { return n >= x.seq+2 })
	changed, notes := h.recomputeLocked()
	notes, full := h.unnotedLocked(notes)
	h.mu.Unlock()
	logNotes(logger, notes)
	h.tellGone(notes)
	if full {
		logger.Info("The kubelet's PodResources lists more odd devices than are logged; not logging further ones", "logged", maxNoted)
	}
	return changed, nil
}

// recomputeLocked recomputes what is withheld, each held share on the
// replica it was withheld on while that stays free, and returns whether
// it changed and the holdings read oddly; h.mu must be held.
func (h *holdings) recomputeLocked() (bool, []sharing.Note) {
	all := slices.Clone(h.listing)
	for _, x := range h.since {
		all = append(all, x.h)
	}
	w, notes := sharing.WithheldNotes(h.resources, h.inv, h.earlier, all, h.withheld)
	if maps.EqualFunc(w, h.withheld, func(a, b map[string]sharing.Holding) bool { return maps.Equal(a, b) }) {
		return false, notes
	}
	h.withheld = w
	close(h.changed)
	h.changed = make(chan struct{})
	return true, notes
}

// unnotedLocked is notes (those of a whole answer) less those logged
// before and beyond maxNoted, and whether the answer lists more than
// maxNoted, the first time in a row (deviceid.Reported); h.mu must be held.
func (h *holdings) unnotedLocked(notes []sharing.Note) ([]sharing.Note, bool) {
	listed := make([]deviceid.Held, len(notes))
	for i, n := range notes {
		listed[i] = deviceid.Held{Resource: n.Holding.Resource, ID: n.Holding.ID}
	}
	report, full := h.noted.Listed(listed)
	out := make([]sharing.Note, len(report))
	for i, j := range report {
		out[i] = notes[j]
	}
	return out, full
}

// logNotes logs the holdings of a PodResources answer that were skipped,
// or counted although malformed, or that name a MIG device gone
// (sharing.Note): a MIG device gone, an ID of no GPU of this node, a
// malformed entry, at once (a MIG device gone whose GPU is not known as
// an error); another vendor's device at verbosity 4. Values read from the
// answer are quoted, cut to deviceid.MaxQuoted bytes.
func logNotes(logger klog.Logger, notes []sharing.Note) {
	for _, n := range notes {
		h := n.Holding
		kv := []any{"pod", klog.KRef(deviceid.Prefix(h.Namespace, deviceid.MaxQuoted), deviceid.Prefix(h.Pod, deviceid.MaxQuoted)),
			"container", deviceid.Quote(h.Container), "resource", deviceid.Quote(h.Resource), "device", deviceid.Quote(h.ID), "problem", n.Problem}
		switch {
		case n.ParentUnknown:
			logger.Error(nil, "The kubelet's PodResources lists a MIG device no longer on the node, whose GPU is not known "+
				"(the plugin restarted after a MIG layout change): withholding every GPU it may have been on until the kubelet no longer lists it; "+
				"delete the pod to release them", append(kv, "gpus", n.GPUs)...)
		case n.Gone:
			logger.Info("The kubelet's PodResources lists a MIG device no longer on the node (a MIG layout change); withholding its GPU whole until the kubelet no longer lists it",
				append(kv, "gpu", n.GPUs)...)
		case n.Counted:
			logger.Info("The kubelet's PodResources lists a malformed device of one of this node's GPUs; withholding for it as for any holder", kv...)
		case n.OtherVendor:
			logger.V(4).Info("The kubelet's PodResources lists another vendor's device; not ours to withhold for", kv...)
		default:
			logger.Info("The kubelet's PodResources lists a device that is none of this node's GPUs or MIG devices; nothing withheld for it", kv...)
		}
	}
}

// tellGone tells h.gone of each holding of a MIG device gone whose GPU is
// not known, among notes (those not told before: unnotedLocked).
func (h *holdings) tellGone(notes []sharing.Note) {
	if h.gone == nil {
		return
	}
	for _, n := range notes {
		if n.ParentUnknown {
			h.gone.MIGParentUnknown(n.Holding.String(), n.GPUs)
		}
	}
}

// migParents is the memory of MIG devices to carry to the Manager that
// replaces this one (sharing.RememberMIG): the inventory's, and the
// earlier ones a holding known still names; nil without a source (nothing
// is withheld then).
func (h *holdings) migParents() sharing.MIGParents {
	if h == nil || h.src == nil {
		return nil
	}
	return sharing.RememberMIG(h.inv, h.earlier, h.snapshot())
}

// goneMIGParents are the remembered parents of MIG devices of earlier
// inventories that this one no longer has (destroyed, some under running
// pods): MIG UUID -> parent GPU UUID; nil when none.
func (h *holdings) goneMIGParents() map[string]string {
	if h == nil {
		return nil
	}
	var out map[string]string
	for mig, parent := range h.earlier {
		if slices.ContainsFunc(h.inv.MIG, func(m nvml.MIGDevice) bool { return m.UUID == mig }) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[mig] = parent
	}
	return out
}

// of is resource's withheld devices: ID -> holder; not to be modified.
func (h *holdings) of(resource string) map[string]sharing.Holding {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.withheld[resource]
}

// all is every withheld device: resource -> ID -> holder; not to be modified.
func (h *holdings) all() map[string]map[string]sharing.Holding {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.withheld
}

// Changed is closed when what is withheld changes; nil (never) without
// holdings.
func (h *holdings) Changed() <-chan struct{} {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// lastAnswer is the last answer of the kubelet applied (nil before one);
// not to be modified.
func (h *holdings) lastAnswer() map[types.NamespacedName]map[string]map[string][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answer
}

// readsStarted is the number of reads started so far: an answer of a read
// started later (answerAfter) was read after this call.
func (h *holdings) readsStarted() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// answerAfter is the last answer when a read started after the first
// `before` ones gave it; false when the last answer is older (a read the
// caller joined had started before it asked).
func (h *holdings) answerAfter(before uint64) (map[types.NamespacedName]map[string]map[string][]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answer, h.applied > before
}

// withholding reports whether a device is withheld.
func (h *holdings) withholding() bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ids := range h.withheld {
		if len(ids) > 0 {
			return true
		}
	}
	return false
}

// HeldKnowledge is what a Manager withholds for while the kubelet's
// PodResources API does not answer (WithheldEvents.HoldingsUnknown).
type HeldKnowledge int

const (
	// HeldUnknown: nothing is known of what containers hold; nothing is
	// withheld for holders under other names.
	HeldUnknown HeldKnowledge = iota
	// HeldCarried: what the Manager this one replaced knew (Options.Held),
	// never confirmed by an answer to this one.
	HeldCarried
	// HeldLastAnswer: the Manager's own last answer, and the devices it
	// allocated since.
	HeldLastAnswer
)

// outage reports whether the API is down (the last read that ended failed
// and none succeeded since), what is known meanwhile and that read's error.
func (h *holdings) outage() (bool, HeldKnowledge, error) {
	if h == nil || h.src == nil {
		return false, HeldLastAnswer, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	known := HeldUnknown
	switch {
	case h.answered:
		known = HeldLastAnswer
	case h.known:
		known = HeldCarried
	}
	return h.stalled, known, h.failed
}

// noteAllocated records that Allocate gave ids of resource: held, by a pod
// the next answers name.
func (h *holdings) noteAllocated(resource string, ids []string) {
	if h == nil || h.src == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		x := noted{seq: h.started, h: sharing.Holding{Resource: resource, ID: id}}
		// One entry per device, at its latest Allocate: while reads fail
		// (nothing prunes) the list stays within the node's devices
		// instead of growing with every Allocate.
		if i := slices.IndexFunc(h.since, func(y noted) bool { return y.h == x.h }); i >= 0 {
			h.since[i].seq = max(h.since[i].seq, x.seq)
			continue
		}
		h.since = append(h.since, x)
	}
}

// snapshot is what is known of the holdings, for the Manager that
// replaces this one (Options.Held); nil when nothing is known.
func (h *holdings) snapshot() []sharing.Holding {
	if h == nil || h.src == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.known && len(h.since) == 0 {
		return nil
	}
	out := slices.Clone(h.listing)
	for _, x := range h.since {
		out = append(out, x.h)
	}
	if out == nil {
		out = []sharing.Holding{}
	}
	return out
}

// holdingsOf flattens the PodResources answer.
func holdingsOf(allocated map[types.NamespacedName]map[string]map[string][]string) []sharing.Holding {
	var out []sharing.Holding
	for pod, containers := range allocated {
		for container, byRes := range containers {
			for res, ids := range byRes {
				for _, id := range ids {
					out = append(out, sharing.Holding{Namespace: pod.Namespace, Pod: pod.Name, Container: container, Resource: res, ID: id})
				}
			}
		}
	}
	if out == nil {
		out = []sharing.Holding{}
	}
	return out
}

// WithheldEvents is told when the devices withheld for holders under
// another name change, and when they cannot be known (HealthEvents
// implementations may implement it; NodeEvents does).
type WithheldEvents interface {
	// Withheld: ids of resource are withheld (empty: none any more).
	Withheld(resource string, ids []string, holders []string)
	// HoldingsUnknown: the kubelet's PodResources API does not answer the
	// Manager: once per outage (from a failed read until one succeeds),
	// and once more by a Manager that replaces one during an outage.
	// known is what is withheld meanwhile, not updated until it answers
	// (carried knowledge is no answer either: it may hold only what the
	// Manager it replaced allocated).
	HoldingsUnknown(err error, known HeldKnowledge)
	// HoldingsKnown: the API answers again after HoldingsUnknown (told by
	// this Manager, or by the one it replaced: Options.PodResourcesDown).
	HoldingsKnown()
}

// GoneMIGEvents is told of a running container the kubelet lists with a
// MIG device no longer on the node whose GPU is not known (HealthEvents
// implementations may implement it; NodeEvents does).
type GoneMIGEvents interface {
	// MIGParentUnknown: holder (sharing.Holding.String) holds such a MIG
	// device; gpus (UUIDs) are withheld for it until the kubelet no
	// longer lists it. Told once per Manager while it is listed.
	MIGParentUnknown(holder string, gpus []string)
}

// refreshHeld reads the holdings again and logs, counts and records what
// changed since last told (a carried knowledge is told at the first); why
// says what asked. It returns the read's error (refresh's).
func (m *Manager) refreshHeld(ctx context.Context, why string) error {
	logger := klog.FromContext(ctx)
	_, err := m.held.refresh(ctx, why)
	if errors.Is(err, errReadUnderWay) {
		// The read's failure is logged by the read.
		logger.V(2).Info("The kubelet's PodResources has not answered yet; using what is known", "why", why)
	}
	m.reportOutage(ctx)
	m.reportWithheld(ctx)
	return err
}

// reportOutage records that the kubelet's PodResources API stopped
// answering, once per outage (and once per Manager), and that it answers
// again; it follows what the reads found last, not the caller's read (an
// older read may end after a newer one).
func (m *Manager) reportOutage(ctx context.Context) {
	if m.opts.PodResources == nil {
		return
	}
	m.reportMu.Lock()
	defer m.reportMu.Unlock()
	// Read under reportMu: two callers tell in the order they saw.
	down, known, err := m.held.outage()
	e, _ := m.opts.Events.(WithheldEvents)
	switch {
	case down && !m.outageTold:
		m.outageTold, m.podResourcesDown = true, true
		if e != nil {
			e.HoldingsUnknown(err, known)
		}
	case !down && m.podResourcesDown:
		m.outageTold, m.podResourcesDown = false, false
		klog.FromContext(ctx).Info("The kubelet's PodResources API answers again")
		if e != nil {
			e.HoldingsKnown()
		}
	}
}

// PodResourcesDown reports whether m told that the kubelet's PodResources
// API does not answer and has not told it answers again, for the Manager
// that replaces it (Options.PodResourcesDown).
func (m *Manager) PodResourcesDown() bool {
	m.reportMu.Lock()
	defer m.reportMu.Unlock()
	return m.podResourcesDown
}

// handoffReads are a Manager's reads of the kubelet's PodResources as the
// Allocations its plugins' handoff reads (Plugin.allocs): a read is
// refreshHeld's, so that a kubelet whose PodResources hangs costs
// GetPreferredAllocation and Allocate at most heldStalledWait once a read
// has failed, not the client's 10 s each, and one read at a time is under
// way however many ask. Only an answer read now is given: on a failed
// read, or one still under way (errReadUnderWay), the handoff decides with
// its own record, as it did after a failed read (an earlier answer may
// name a pod deleted and created again under its name).
type handoffReads struct{ m *Manager }

func (r handoffReads) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	before := r.m.held.readsStarted()
	if err := r.m.refreshHeld(ctx, "handoff"); err != nil {
		return nil, err
	}
	// While the API counts as down a caller joins the read under way,
	// which may have started before it asked: its answer is not "now".
	answer, fresh := r.m.held.answerAfter(before)
	if !fresh {
		return nil, errStaleRead
	}
	return answer, nil
}

// errStaleRead: the read the handoff joined had started before it asked.
var errStaleRead = errors.New("the kubelet's PodResources answered a read started before this question")

// readAnswer is one read's outcome as Allocations: Allocate's read, which
// the handoff's marking of what the call served reuses.
type readAnswer struct {
	answer map[types.NamespacedName]map[string]map[string][]string
	err    error
}

func (r readAnswer) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	return r.answer, r.err
}

// askHeld asks watchHeld for a read of the holdings (why it is asked); an
// ask made while one waits joins it.
func (m *Manager) askHeld(why string) {
	select {
	case m.heldAsk <- why:
	default:
	}
}

// watchHeld reads the holdings again apart from Run's loop, one read at a
// time, until ctx ends: when asked (askHeld: the resync), and while a
// device is withheld, every WithheldPollPeriod (doubled after each failed
// read, up to ResyncPeriod, until one succeeds) and when a pod of the node
// ended (PodEnds), so that a withheld device comes back soon after its
// holder is gone, not at the next resync. With nothing withheld, a poll or
// a pod's end reads nothing: what a reload makes held is read at the
// Manager's start. Asks and ends that come while a read is under way make
// one read after it.
func (m *Manager) watchHeld(ctx context.Context) {
	period := m.opts.WithheldPollPeriod
	delay := period
	poll := m.opts.Clock.NewTimer(delay)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case why := <-m.heldAsk:
			_ = m.refreshHeld(ctx, why)
		case <-m.opts.PodEnds.ended():
			if m.held.withholding() {
				_ = m.refreshHeld(ctx, "a pod of the node ended")
			}
		case <-poll.C():
			if !m.held.withholding() {
				delay = period
			} else if err := m.refreshHeld(ctx, "devices withheld"); err == nil {
				delay = period
			} else if !errors.Is(err, errReadUnderWay) {
				// A read that failed backs off; one merely slower than the
				// wait (it may still answer) keeps the delay.
				delay = min(2*delay, max(m.opts.ResyncPeriod, period))
			}
			poll.Reset(delay)
		}
	}
}

// PodEnds carries the ends of the node's pods to the running Manager
// (Options.PodEnds): the node's pod informer tells it of each pod that
// finished (Observe of a pod in phase Succeeded or Failed) or was deleted
// (Deleted). While the Manager withholds devices it then reads the
// kubelet's PodResources again, so that a device comes back as soon as the
// kubelet no longer lists its holder. Ends are coalesced: however many
// come while a read is under way, one read follows it. A nil *PodEnds
// carries nothing. It outlives the Managers (a reload builds a new one
// with the same PodEnds); one Manager runs at a time.
type PodEnds struct {
	c chan struct{}
}

// NewPodEnds returns a PodEnds for the Managers of a node.
func NewPodEnds() *PodEnds { return &PodEnds{c: make(chan struct{}, 1)} }

// Observe is told of each add and update of a pod of the node: a pod that
// finished ended.
func (e *PodEnds) Observe(pod *v1.Pod) {
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		e.pulse()
	}
}

// Deleted is told of each deletion of a pod of the node: it ended.
func (e *PodEnds) Deleted() { e.pulse() }

// pulse says that a pod ended.
func (e *PodEnds) pulse() {
	if e == nil {
		return
	}
	select {
	case e.c <- struct{}{}:
	default: // one is waiting already
	}
}

// ended is ready once a pod ended since it was last read; nil (never)
// without a PodEnds.
func (e *PodEnds) ended() <-chan struct{} {
	if e == nil {
		return nil
	}
	return e.c
}

// reportWithheld logs and records the resources whose withheld devices
// changed since last reported.
func (m *Manager) reportWithheld(ctx context.Context) {
	logger := klog.FromContext(ctx)
	m.reportMu.Lock()
	defer m.reportMu.Unlock()
	after := m.held.all()
	for _, p := range m.plugins {
		res := p.Name()
		if maps.Equal(m.reported[res], after[res]) {
			continue
		}
		ids := slices.Sorted(maps.Keys(after[res]))
		holders := make([]string, 0, len(ids))
		for _, id := range ids {
			if s := after[res][id].String(); !slices.Contains(holders, s) {
				holders = append(holders, s)
			}
		}
		if len(ids) == 0 {
			logger.Info("No device withheld any more: their holders under other names are gone", "resource", res)
		} else {
			logger.Info("Withholding devices a running container holds under another resource name or device ID (advertised unhealthy until released)",
				"resource", res, "devices", ids, "holders", holders)
		}
		if e, ok := m.opts.Events.(WithheldEvents); ok {
			e.Withheld(res, ids, holders)
		}
	}
	m.reported = after
}
