package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// HealthOptions configure a Health tracker.
type HealthOptions struct {
	// Critical says whether an XID makes a GPU unhealthy
	// (configv1.Health.Critical); nil: every XID does.
	Critical func(xid uint64) bool
	// Watched says whether events of a kind are acted on (NVIDIA's
	// health.eventTypes); nil: every kind.
	Watched func(nvml.EventKind) bool
	// Recover probes unhealthy GPUs every Interval and brings a GPU back
	// after Checks consecutive passing checks.
	Recover  bool
	Checks   int
	Interval time.Duration
	// Clock drives the recovery ticker (a fake clock in tests).
	Clock clock.WithTicker
	// Metrics may be nil.
	Metrics *Metrics
	// Events is told of each change (Node events); may be nil.
	Events HealthEvents
	// Unhealthy are the UUIDs of GPUs and MIG devices that start unhealthy:
	// the marks of the tracker this one replaces (UnhealthyUUIDs), so that
	// rebuilding the plugin (a config reload, a rediscovery) does not bring
	// a failed device back without its checks. Unknown UUIDs are ignored.
	Unhealthy []string
}

// migKey names a MIG device by its parent and instance IDs, as events do.
type migKey struct{ gpu, gi, ci int }

// View is a consistent snapshot of the health of GPUs and MIG devices.
type View struct {
	gpus    map[int]bool
	migSick map[string]bool
	// Version counts changes.
	Version uint64
}

// GPU reports whether the GPU with that index is healthy.
func (v View) GPU(index int) bool { return v.gpus[index] }

// Device reports whether a device is healthy: its GPU is, and, for a MIG
// device, no event named its instance.
func (v View) Device(gpu int, migUUID string) bool {
	return v.gpus[gpu] && (migUUID == "" || !v.migSick[migUUID])
}

// gpuState is the health of one physical GPU.
type gpuState struct {
	uuid    string
	healthy bool
	passes  int
	// degraded: discovery could not read the GPU; it recovers by a full
	// read (RecheckGPUs, one discovery per probe round), after which the node must be discovered again.
	degraded bool
	// faults counts the failure events of the GPU and its MIG devices: a
	// check that began before the last one is no pass (Probe).
	faults uint64
	// refused is what the GPU's checks last said it needs before it is
	// served again (nvml.ErrResetRequired or nvml.ErrNeedsService), logged
	// and recorded once (noteRefusalLocked); nil after a passing check.
	refused error
}

// Health tracks the health of a node's GPUs. An unhealthy GPU makes every
// device on it (whole, replicas, MIG) unhealthy; subscribers see each change
// as one closed channel, so they publish all of a GPU's devices in one update.
type Health struct {
	lib  nvml.Lib
	opts HealthOptions

	mu      sync.Mutex
	gpus    map[int]*gpuState
	byUUID  map[string]int
	migs    map[migKey]string    // MIG instance -> MIG UUID
	migSick map[string]*migState // unhealthy MIG devices by UUID
	changed chan struct{}
	version uint64
	// down are GPUs whose devices a daemon serving them (MPS) cannot serve
	// now, with why (healthdaemon.go): unhealthy whatever NVML says.
	down map[int]error
	// gone are the MIG devices discovered that the driver no longer has (a
	// MIG layout change, MarkGone), and goneGPUs the GPUs whose MIG mode
	// changed: unhealthy until this tracker is replaced, and no fault (not
	// in UnhealthyUUIDs).
	gone     map[string]bool
	goneGPUs map[int]bool
	// rediscover is closed when a GPU that discovery degraded reads in full
	// again: what the node serves must be discovered again.
	rediscover     chan struct{}
	rediscoverOnce sync.Once
	// discovered are the GPUs of the discovery this tracker was made from,
	// by what it read of their identity: a degraded GPU is checked as the
	// GPU with its identity in a new discovery (RecheckGPUs), not as the
	// one with its index; never modified.
	discovered []nvml.GPURef
	// unread are the carried marks (HealthOptions.Unhealthy) that name no
	// device this tracker serves while discovery could not read a GPU:
	// they may be that GPU's (or its MIG devices'), under the UUID it gets
	// back once read, so they are carried on (UnhealthyUUIDs) rather than
	// dropped; never modified.
	unread []string
}

// migState is an unhealthy MIG device (an XID named its instance).
type migState struct {
	gpu    int
	passes int
}

// NewHealth returns a tracker with every GPU of inv healthy.
func NewHealth(lib nvml.Lib, inv *nvml.Inventory, opts HealthOptions) *Health {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Checks < 1 {
		opts.Checks = 1
	}
	h := &Health{lib: lib, opts: opts, gpus: map[int]*gpuState{}, byUUID: map[string]int{},
		migs: map[migKey]string{}, migSick: map[string]*migState{}, changed: make(chan struct{}), down: map[int]error{}, gone: map[string]bool{}, goneGPUs: map[int]bool{},
		rediscover: make(chan struct{})}
	for _, g := range inv.GPUs {
		st := &gpuState{uuid: g.UUID, healthy: true}
		if g.Degraded != nil {
			// Listed so the node keeps its capacity, never served until read.
			st.healthy, st.degraded = false, true
		}
		h.gpus[g.Index] = st
		h.byUUID[g.UUID] = g.Index
		h.discovered = append(h.discovered, g.Ref())
	}
	for _, m := range inv.MIG {
		h.migs[migKey{m.ParentIndex, m.GIID, m.CIID}] = m.UUID
	}
	degraded := slices.ContainsFunc(inv.GPUs, func(g nvml.GPU) bool { return g.Degraded != nil })
	for _, uuid := range opts.Unhealthy {
		if i, ok := h.byUUID[uuid]; ok && !h.gpus[i].degraded {
			h.gpus[i].healthy = false
			continue
		}
		found := false
		for _, m := range inv.MIG {
			if m.UUID == uuid {
				h.migSick[uuid] = &migState{gpu: m.ParentIndex}
				found = true
			}
		}
		if !found && degraded && !slices.Contains(h.unread, uuid) {
			// A GPU that faulted and then could not be read at a
			// rediscovery (a transient NVML error, still off the bus):
			// its fault must not end with the rebuild that reads it again.
			h.unread = append(h.unread, uuid)
		}
	}
	return h
}

// UnhealthyUUIDs are the UUIDs of the GPUs and MIG devices unhealthy now
// by their own faults (not those discovery could not read, nor those a
// sharing daemon cannot serve for now), sorted: what a tracker replacing
// this one starts with (HealthOptions.Unhealthy). The marks this one was
// given for devices it could not tell, a GPU discovery could not read
// being there, are among them: that GPU, read again, is still unhealthy.
func (h *Health) UnhealthyUUIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.unread)
	for _, g := range h.gpus {
		if !g.healthy && !g.degraded {
			out = append(out, g.uuid)
		}
	}
	for uuid := range h.migSick {
		out = append(out, uuid)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Healthy reports whether the GPU with that index is healthy.
func (h *Health) Healthy(gpu int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.gpus[gpu]
	return ok && g.healthy && h.down[gpu] == nil
}

// AnyUnhealthy reports whether a GPU or MIG device went unhealthy through an
// event (GPUs that discovery could not read, unhealthy from the start, do
// not count: they have their own way back, Rediscover).
func (h *Health) AnyUnhealthy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range h.gpus {
		if !g.healthy && !g.degraded {
			return true
		}
	}
	return len(h.migSick) > 0
}

// Snapshot returns the current health of every GPU and MIG device.
func (h *Health) Snapshot() View {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := View{gpus: make(map[int]bool, len(h.gpus)), migSick: make(map[string]bool, len(h.migSick)), Version: h.version}
	for i, g := range h.gpus {
		v.gpus[i] = g.healthy && h.down[i] == nil && !h.goneGPUs[i]
	}
	for u := range h.migSick {
		v.migSick[u] = true
	}
	for u := range h.gone {
		v.migSick[u] = true
	}
	return v
}

// MarkGone makes MIG devices the driver no longer has, and GPUs whose MIG
// mode changed (a MIG layout change under the running plugin), unhealthy,
// so that the kubelet gives them to no pod until this tracker is replaced
// by one of a new discovery. It is no fault: a replacing tracker does not
// start with it.
func (h *Health) MarkGone(ctx context.Context, gpus []int, migUUIDs []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := false
	for _, uuid := range migUUIDs {
		if !h.gone[uuid] {
			h.gone[uuid] = true
			changed = true
		}
	}
	for _, i := range gpus {
		if !h.goneGPUs[i] {
			h.goneGPUs[i] = true
			changed = true
		}
	}
	if changed {
		klog.FromContext(ctx).Info("MIG devices gone from the driver, and GPUs whose MIG mode changed, marked unhealthy until the node is discovered again",
			"mig", migUUIDs, "gpus", gpus)
		h.notifyLocked()
	}
}

// Changed returns a channel that is closed at the next health change. Take
// it before reading the state to never miss a change.
func (h *Health) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// notifyLocked wakes every subscriber; h.mu must be held.
func (h *Health) notifyLocked() {
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
}

// Handle applies one NVML event.
func (h *Health) Handle(ctx context.Context, ev nvml.Event) {
	logger := klog.FromContext(ctx)
	if h.opts.Watched != nil && !h.opts.Watched(ev.Kind) {
		logger.V(4).Info("Event of a type not watched ignored", "gpu", ev.GPUIndex, "uuid", ev.UUID, "kind", ev.Kind.String())
		return
	}
	h.opts.Metrics.observeEvent(ev)
	switch ev.Kind {
	case nvml.EventECCSingleBit:
		logger.V(4).Info("Single-bit ECC error counted", "gpu", ev.GPUIndex, "uuid", ev.UUID)
		return
	case nvml.EventXID:
		if h.opts.Critical != nil && !h.opts.Critical(ev.XID) {
			logger.V(2).Info("Skipping XID that is not critical", "gpu", ev.GPUIndex, "uuid", ev.UUID, "xid", ev.XID)
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	idx, ok := h.resolve(ev)
	if !ok {
		// An event we cannot tie to one GPU must not take the node out.
		logger.Info("Health event for an unknown GPU ignored", "gpu", ev.GPUIndex, "uuid", ev.UUID, "kind", ev.Kind.String(), "xid", ev.XID)
		return
	}
	if ev.Kind == nvml.EventXID && ev.GIID >= 0 && h.hasMIGLocked(idx) {
		h.handleMIGLocked(logger, idx, ev)
		return
	}
	g := h.gpus[idx]
	g.passes = 0
	g.faults++
	if !g.healthy {
		return
	}
	g.healthy = false
	logger.Info("GPU marked unhealthy", "gpu", idx, "uuid", g.uuid, "kind", ev.Kind.String(), "xid", ev.XID)
	if h.opts.Events != nil {
		h.opts.Events.Unhealthy(idx, g.uuid, "", ev)
	}
	h.notifyLocked()
}

// handleMIGLocked applies an XID that names a GPU instance: the MIG devices
// of that instance go unhealthy (all its compute instances when the event
// names none, CIID -1), never the whole GPU. An instance the node does not
// serve changes nothing. h.mu must be held.
func (h *Health) handleMIGLocked(logger klog.Logger, idx int, ev nvml.Event) {
	var hit []string
	for k, uuid := range h.migs {
		if k.gpu == idx && k.gi == ev.GIID && (ev.CIID < 0 || k.ci == ev.CIID) {
			hit = append(hit, uuid)
		}
	}
	if len(hit) == 0 {
		logger.Info("XID for a MIG instance the node does not serve ignored", "gpu", idx, "gi", ev.GIID, "ci", ev.CIID, "xid", ev.XID)
		return
	}
	slices.Sort(hit)
	h.gpus[idx].faults++
	changed := false
	for _, uuid := range hit {
		if m := h.migSick[uuid]; m != nil {
			m.passes = 0
			continue
		}
		h.migSick[uuid] = &migState{gpu: idx}
		changed = true
		logger.Info("MIG device marked unhealthy", "gpu", idx, "mig", uuid, "gi", ev.GIID, "ci", ev.CIID, "xid", ev.XID)
		if h.opts.Events != nil {
			h.opts.Events.Unhealthy(idx, h.gpus[idx].uuid, uuid, ev)
		}
	}
	if changed {
		h.notifyLocked()
	}
}

// hasMIGLocked reports whether GPU idx has MIG devices (instance ids in its
// events mean something); h.mu must be held.
func (h *Health) hasMIGLocked(idx int) bool {
	for k := range h.migs {
		if k.gpu == idx {
			return true
		}
	}
	return false
}

// watched says whether events of kind k are acted on under health.eventTypes.
// A lost GPU (handle errors, not an NVML event type) always is.
func watched(h *configv1.Health, k nvml.EventKind) bool {
	switch k {
	case nvml.EventXID:
		return h.Watches(configv1.EventTypeXidCriticalError)
	case nvml.EventECCDoubleBit:
		return h.Watches(configv1.EventTypeDoubleBitEccError)
	case nvml.EventECCSingleBit:
		return h.Watches(configv1.EventTypeSingleBitEccError)
	default:
		return true
	}
}

// Rediscover is closed when a GPU that discovery could not read reads in
// full again (the probe checked it): the node must be discovered again to
// serve it under its real identity.
func (h *Health) Rediscover() <-chan struct{} { return h.rediscover }

// resolve finds the GPU an event is about: by UUID first, else by index.
func (h *Health) resolve(ev nvml.Event) (int, bool) {
	if ev.UUID != "" {
		i, ok := h.byUUID[ev.UUID]
		return i, ok
	}
	_, ok := h.gpus[ev.GPUIndex]
	return ev.GPUIndex, ok
}

// Run consumes events until ctx is done and, when recovery is on, probes
// unhealthy GPUs on every tick. With recovery off it still probes, every
// Interval, the GPUs that discovery could not read (Degraded): they never
// faulted, and a full read brings them back through a new discovery
// (Rediscover), as a restarted plugin would serve them; faulted GPUs stay
// out. A closed (or nil) event channel stops event handling, not probing.
func (h *Health) Run(ctx context.Context, events <-chan nvml.Event) {
	var tick <-chan time.Time
	degradedOnly := !h.opts.Recover
	if h.opts.Interval > 0 && (h.opts.Recover || h.AnyDegraded()) {
		t := h.opts.Clock.NewTicker(h.opts.Interval)
		defer t.Stop()
		tick = t.C()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			h.Handle(ctx, ev)
		case <-tick:
			h.probe(ctx, degradedOnly)
		}
	}
}

// AnyDegraded reports whether a GPU is served unhealthy because discovery
// could not read it.
func (h *Health) AnyDegraded() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range h.gpus {
		if g.degraded {
			return true
		}
	}
	return false
}

// Probe runs one recovery check on every unhealthy GPU.
func (h *Health) Probe(ctx context.Context) { h.probe(ctx, false) }

// probe is Probe, on the degraded GPUs alone when degradedOnly.
func (h *Health) probe(ctx context.Context, degradedOnly bool) {
	logger := klog.FromContext(ctx)
	h.mu.Lock()
	var sick []int
	for i, g := range h.gpus {
		if !g.healthy && (g.degraded || !degradedOnly) {
			sick = append(sick, i)
		}
	}
	for _, m := range h.migSick {
		if !degradedOnly && !slices.Contains(sick, m.gpu) {
			sick = append(sick, m.gpu)
		}
	}
	slices.Sort(sick)
	// The degraded GPUs are read by discovering the node again: one
	// discovery for all of them, not one each (RecheckGPUs), each found
	// there by its identity: its index names another GPU once a GPU
	// before it is no longer listed. Their fault counts are taken before
	// it begins.
	var atIndexes []int
	atFaults := map[int]uint64{}
	for _, i := range sick {
		if g := h.gpus[i]; g.degraded {
			atIndexes = append(atIndexes, i)
			atFaults[i] = g.faults
		}
	}
	h.mu.Unlock()
	atErrs := map[int]error{}
	if len(atIndexes) > 0 {
		// NVML outside the lock: it may be slow.
		errs := h.lib.RecheckGPUs(h.discovered, atIndexes)
		for k, i := range atIndexes {
			if k >= len(errs) {
				errs = append(errs, fmt.Errorf("GPU %d: no answer from its check (%d asked, %d answered)", i, len(atIndexes), len(errs)))
			}
			atErrs[i] = errs[k]
		}
	}
	for _, i := range sick {
		h.mu.Lock()
		uuid, faults := h.gpus[i].uuid, h.gpus[i].faults
		h.mu.Unlock()
		var err error
		if f, ok := atFaults[i]; ok {
			err, faults = atErrs[i], f
		} else {
			err = h.lib.CheckGPU(uuid) // NVML outside the lock
		}
		h.mu.Lock()
		if h.gpus[i].faults != faults && err == nil {
			// The GPU failed again while its check ran: the check says
			// nothing about the GPU since, and counts as no pass.
			h.mu.Unlock()
			continue
		}
		h.probeMIG(ctx, i, err)
		g := h.gpus[i]
		h.noteRefusalLocked(logger, i, g, err)
		switch {
		case g.healthy:
		case err != nil:
			g.passes = 0
			logger.V(4).Info("GPU still failing its check", "gpu", i, "uuid", uuid, "err", err)
		default:
			g.passes++
			if g.passes >= h.opts.Checks && g.degraded {
				// Its device IDs are placeholders: serving it needs a new
				// discovery, not a health flip.
				logger.Info("GPU that discovery could not read answers again; discovering the node again", "gpu", i, "checks", h.opts.Checks)
				h.rediscoverOnce.Do(func() { close(h.rediscover) })
				g.passes = 0
			} else if g.passes >= h.opts.Checks {
				g.healthy, g.passes = true, 0
				logger.Info("GPU recovered", "gpu", i, "uuid", uuid, "checks", h.opts.Checks)
				h.opts.Metrics.recovered()
				if h.opts.Events != nil {
					h.opts.Events.Recovered(i, uuid, "")
				}
				h.notifyLocked()
			}
		}
		h.mu.Unlock()
	}
}

// probeMIG counts one check of GPU gpu for its unhealthy MIG devices; h.mu
// must be held.
func (h *Health) probeMIG(ctx context.Context, gpu int, err error) {
	for uuid, m := range h.migSick {
		if m.gpu != gpu {
			continue
		}
		if err != nil {
			m.passes = 0
			continue
		}
		if m.passes++; m.passes >= h.opts.Checks {
			delete(h.migSick, uuid)
			klog.FromContext(ctx).Info("MIG device recovered", "gpu", gpu, "mig", uuid, "checks", h.opts.Checks)
			h.opts.Metrics.recovered()
			if h.opts.Events != nil {
				h.opts.Events.Recovered(gpu, h.gpus[gpu].uuid, uuid)
			}
			h.notifyLocked()
		}
	}
}
