package nvml

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// XIDGPULost is the XID the driver reports when a GPU has fallen off the bus.
const XIDGPULost = 79

// watchedEvents are the event types WatchEvents registers (as far as each
// GPU supports them).
const watchedEvents = gonvml.EventTypeXidCriticalError |
	gonvml.EventTypeDoubleBitEccError |
	gonvml.EventTypeSingleBitEccError

// noInstance is the GPU/compute instance id of an event that concerns the
// whole GPU.
const noInstance = 0xFFFFFFFF

// eventBufferSize is the channel buffer of WatchEvents.
const eventBufferSize = 64

// maxRegisterBackoff bounds the wait between two tries to register a GPU
// whose registration failed, in event timeouts.
const maxRegisterBackoff = 32

// maxWaitFailures is how many EventSet.Wait calls in a row may fail (other
// than GPU_IS_LOST) before the set is freed and the GPU registered again on
// a new one: a set the driver no longer serves (a driver reload, a set
// invalidated) would otherwise leave the GPU unwatched for good.
const maxWaitFailures = 3

// watchTarget is one watched GPU.
type watchTarget struct {
	index int
	uuid  string
	dev   gonvml.Device
}

// errNoEvents: the GPU supports none of the watched event types.
var errNoEvents = errors.New("GPU supports no health events")

// WatchEvents watches each GPU on its own event set, so that one GPU whose
// registration fails (lost, or a driver error) does not blind the others: it
// is retried with backoff until it succeeds or ctx is done. Every GPU's
// first registration is tried before WatchEvents returns, so events that
// happen after it returns are seen. A UUID NVML does not know is logged and
// not watched. The channel is closed when every watcher has stopped.
//
// Event sets belong to the NVML session they were made on: when the driver
// is reloaded under the plugin (Wait or a registration answers a
// session-level error, IsSessionError), the watcher opens a new session
// (reinit, paced while the driver is missing) and registers its GPU again
// on it.
func (l *lib) WatchEvents(ctx context.Context, gpuUUIDs []string) (<-chan Event, error) {
	l.mu.Lock()
	initialized := l.initialized
	l.mu.Unlock()
	if !initialized {
		return nil, errNotInitialized
	}
	ch := make(chan Event, eventBufferSize)
	var wg sync.WaitGroup
	for _, id := range gpuUUIDs {
		set, target, gen, err := l.registerOne(id)
		wg.Go(func() { l.watchGPU(ctx, id, set, target, gen, err, ch) })
	}
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch, nil
}

// watchGPU streams one GPU's events until ctx is done, registering it again
// (with backoff) while registration fails. set, target, gen and err are
// the result of the first registerOne.
func (l *lib) watchGPU(ctx context.Context, id string, set *eventSet, target watchTarget, gen uint64, err error, ch chan<- Event) {
	logger := klog.FromContext(ctx).WithValues("gpu", id)
	backoff := 1
	failures := 0
	// lostSent: the GPU's loss was reported and no registration has
	// answered otherwise since (any other answer means the GPU is back, so
	// its next loss is reported again, as eventLoop does).
	lostSent := false
	// registered: the GPU was registered once, so NVML knew its UUID; not
	// finding it later means it left the driver's list (lost), not a UUID
	// given by mistake.
	registered := err == nil
	// again: the last registration was made at once on a session just
	// opened (reinit); if it fails too, the next waits its backoff.
	again := false
	for ctx.Err() == nil {
		unknown := errors.Is(err, gonvml.ERROR_NOT_FOUND) || errors.Is(err, gonvml.ERROR_INVALID_ARGUMENT)
		if registered && unknown {
			err = fmt.Errorf("%w: NVML no longer finds it: %w", ErrGPULost, err)
		}
		if !errors.Is(err, ErrGPULost) {
			lostSent = false
		}
		switch {
		case errors.Is(err, errNoEvents):
			logger.Info("GPU supports no health events; relying on checks")
			return
		case unknown && !registered:
			logger.Error(err, "NVML does not know this GPU; not watching its health events")
			return
		case err != nil:
			if IsSessionError(err) && !again {
				// The session the GPU was (to be) registered on is
				// gone: register it on a new one, at once when one
				// opens (reinit paces its tries).
				if rerr := l.reinit(logger, gen, err); rerr == nil {
					again = true
					set, target, gen, err = l.registerOne(id)
					continue
				}
			}
			again = false
			if failures == 0 {
				logger.Error(err, "Registering the GPU for health events failed; retrying with backoff")
			} else {
				logger.V(2).Info("Registering the GPU for health events failed again", "err", err, "tries", failures+1)
			}
			failures++
			if errors.Is(err, ErrGPULost) && !lostSent {
				lostSent = send(ctx, ch, Event{GPUIndex: -1, UUID: id, Kind: EventGPULost, GIID: -1, CIID: -1})
			}
			l.pauseFor(ctx, time.Duration(backoff)*l.eventTimeout)
			backoff = min(2*backoff, maxRegisterBackoff)
			set, target, gen, err = l.registerOne(id)
			continue
		}
		if failures > 0 {
			logger.Info("GPU registered for health events", "tries", failures+1)
		}
		registered, again = true, false
		answered, werr := l.eventLoop(ctx, set, target, ch)
		set = nil // freed by eventLoop
		if werr == nil {
			return
		}
		if IsSessionError(werr) {
			// The driver was reloaded under the set: watch on a new
			// session (its error, if none opens, is the registration's).
			logger.Info("NVML session lost under the event watch; registering the GPU for health events on a new session", "err", werr)
			if err = l.reinit(logger, gen, werr); err == nil {
				again = true
				set, target, gen, err = l.registerOne(id)
			}
			failures = 0
			continue
		}
		// The set keeps failing: watch the GPU on a new one. A set that
		// never answered backs off as a failed registration does.
		if answered {
			backoff = 1
		}
		logger.Error(werr, "NVML EventSet.Wait keeps failing; registering the GPU for health events again", "delay", time.Duration(backoff)*l.eventTimeout)
		failures = 0
		l.pauseFor(ctx, time.Duration(backoff)*l.eventTimeout)
		backoff = min(2*backoff, maxRegisterBackoff)
		set, target, gen, err = l.registerOne(id)
	}
	if set != nil { // ctx ended before the loop took the set
		l.freeSet(set)
	}
}

// registerOne puts one GPU on a new event set for the watched event types it
// supports, on the session held: gen is that session (or the one whose loss
// the error reports).
func (l *lib) registerOne(id string) (*eventSet, watchTarget, uint64, error) {
	release, gen, err := l.acquire()
	if err != nil {
		return nil, watchTarget{}, gen, err
	}
	defer release()
	set, target, err := l.register(id)
	if err != nil {
		return nil, watchTarget{}, gen, err
	}
	return l.addSet(set, gen), target, gen, nil
}

// register is registerOne on the session held.
func (l *lib) register(id string) (gonvml.EventSet, watchTarget, error) {
	dev, ret := l.iface.DeviceGetHandleByUUID(id)
	if ret != gonvml.SUCCESS {
		return nil, watchTarget{}, callError(id, "DeviceGetHandleByUUID", ret)
	}
	if dev == nil {
		return nil, watchTarget{}, fmt.Errorf("GPU %s: DeviceGetHandleByUUID returned no handle", id)
	}
	index, ret := dev.GetIndex()
	if ret != gonvml.SUCCESS {
		return nil, watchTarget{}, callError(id, "GetIndex", ret)
	}
	supported, ret := dev.GetSupportedEventTypes()
	if ret != gonvml.SUCCESS && ret != gonvml.ERROR_NOT_SUPPORTED {
		return nil, watchTarget{}, callError(id, "GetSupportedEventTypes", ret)
	}
	mask := uint64(watchedEvents) & supported
	if mask == 0 {
		return nil, watchTarget{}, errNoEvents
	}
	set, ret := l.iface.EventSetCreate()
	if ret != gonvml.SUCCESS {
		return nil, watchTarget{}, fmt.Errorf("GPU %s: nvml EventSetCreate: %w", id, ret)
	}
	if set == nil {
		return nil, watchTarget{}, fmt.Errorf("GPU %s: nvml EventSetCreate returned no event set", id)
	}
	switch ret := dev.RegisterEvents(mask, set); ret {
	case gonvml.SUCCESS:
	case gonvml.ERROR_NOT_SUPPORTED:
		set.Free()
		return nil, watchTarget{}, errNoEvents
	default:
		set.Free()
		return nil, watchTarget{}, callError(id, "RegisterEvents", ret)
	}
	return set, watchTarget{index: index, uuid: id, dev: dev}, nil
}

// eventLoop waits on one GPU's set until ctx is done (nil) or Wait failed
// maxWaitFailures times in a row (that error), then frees the set. Failed
// Waits are spaced one, then two, ... event timeouts apart. answered says
// whether any Wait answered (an event or a timeout). A session-level
// answer (IsSessionError: the driver was reloaded) ends it at once: the set
// belongs to a session that is gone.
func (l *lib) eventLoop(ctx context.Context, set *eventSet, t watchTarget, ch chan<- Event) (answered bool, err error) {
	logger := klog.FromContext(ctx)
	defer l.freeSet(set)
	timeoutMs := uint32(l.eventTimeout / time.Millisecond)
	targets := []watchTarget{t}
	// lost: the GPU's loss was reported and Wait has not answered since.
	// Any answer (an event or a timeout) means the GPU is back, so its
	// next loss is reported again.
	lost := false
	failures := 0
	for ctx.Err() == nil {
		data, ret := l.wait(set, timeoutMs)
		if ret == gonvml.SUCCESS || ret == gonvml.ERROR_TIMEOUT {
			lost, failures, answered = false, 0, true
		}
		switch ret {
		case gonvml.SUCCESS:
			ev, ok := toEvent(data, targets)
			if !ok {
				logger.V(2).Info("Skipping NVML event", "type", data.EventType, "data", data.EventData)
				continue
			}
			if !send(ctx, ch, ev) {
				return answered, nil
			}
		case gonvml.ERROR_TIMEOUT:
		case gonvml.ERROR_GPU_IS_LOST:
			gone := errors.Is(l.CheckGPU(t.uuid), ErrGPULost)
			if gone && !lost {
				if !send(ctx, ch, Event{GPUIndex: t.index, UUID: t.uuid, Kind: EventGPULost, GIID: -1, CIID: -1}) {
					return answered, nil
				}
			}
			lost = gone
			l.pause(ctx)
		case gonvml.ERROR_UNINITIALIZED, gonvml.ERROR_DRIVER_NOT_LOADED, gonvml.ERROR_LIB_RM_VERSION_MISMATCH:
			return answered, fmt.Errorf("GPU %s: nvml EventSet.Wait: %w", t.uuid, ret)
		default:
			failures++
			if failures >= maxWaitFailures {
				return answered, fmt.Errorf("GPU %s: nvml EventSet.Wait failed %d times in a row: %w", t.uuid, failures, ret)
			}
			if failures == 1 {
				logger.Error(ret, "NVML EventSet.Wait failed; retrying", "gpu", t.uuid)
			}
			l.pauseFor(ctx, time.Duration(failures)*l.eventTimeout)
		}
	}
	return answered, nil
}

// pause waits one event timeout (or until ctx is done) so a failing Wait does
// not spin.
func (l *lib) pause(ctx context.Context) { l.pauseFor(ctx, l.eventTimeout) }

// pauseFor waits d or until ctx is done.
func (l *lib) pauseFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// send delivers ev unless ctx is done first.
func send(ctx context.Context, ch chan<- Event, ev Event) bool {
	select {
	case ch <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// toEvent maps NVML event data to an Event of a watched GPU.
func toEvent(data gonvml.EventData, targets []watchTarget) (Event, bool) {
	t, ok := findTarget(data.Device, targets)
	if !ok {
		return Event{}, false
	}
	ev := Event{GPUIndex: t.index, UUID: t.uuid, GIID: instanceID(data.GpuInstanceId), CIID: instanceID(data.ComputeInstanceId)}
	switch {
	case data.EventType&gonvml.EventTypeXidCriticalError != 0:
		ev.XID = data.EventData
		ev.Kind = EventXID
		if ev.XID == XIDGPULost {
			ev.Kind = EventGPULost
		}
	case data.EventType&gonvml.EventTypeDoubleBitEccError != 0:
		ev.Kind = EventECCDoubleBit
	case data.EventType&gonvml.EventTypeSingleBitEccError != 0:
		ev.Kind = EventECCSingleBit
	default:
		return Event{}, false
	}
	return ev, true
}

// findTarget identifies the event's GPU by UUID, or by handle when the GPU
// no longer answers (a lost GPU).
func findTarget(dev gonvml.Device, targets []watchTarget) (watchTarget, bool) {
	if dev == nil {
		return watchTarget{}, false
	}
	if id, ret := dev.GetUUID(); ret == gonvml.SUCCESS {
		for _, t := range targets {
			if t.uuid == id {
				return t, true
			}
		}
		return watchTarget{}, false
	}
	if !reflect.TypeOf(dev).Comparable() {
		return watchTarget{}, false
	}
	for _, t := range targets {
		if t.dev == dev {
			return t, true
		}
	}
	return watchTarget{}, false
}

func instanceID(id uint32) int {
	if id == noInstance {
		return -1
	}
	return int(id)
}
