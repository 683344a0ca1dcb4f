package fake

import (
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// noInstance is NVML's GPU/compute instance id of an event that concerns the
// whole GPU.
const noInstance = 0xFFFFFFFF

// supportedEvents are the event types every fake GPU supports.
const supportedEvents = gonvml.EventTypeXidCriticalError |
	gonvml.EventTypeDoubleBitEccError |
	gonvml.EventTypeSingleBitEccError

// eventQueue backs one event set: the GPUs registered on it with their event
// masks, and the events not yet taken by Wait.
type eventQueue struct {
	mu     sync.Mutex
	regs   map[int]uint64
	items  []gonvml.EventData
	freed  bool
	notify chan struct{} // capacity 1: "items changed"
}

// InjectXID delivers an XID critical error event for GPU gpu to every event
// set it is registered on.
func (m *Machine) InjectXID(gpu int, xid uint64) {
	m.emit(gpu, gonvml.EventTypeXidCriticalError, xid, noInstance, noInstance)
}

// InjectMIGXID delivers an XID event that names a MIG instance of GPU gpu.
func (m *Machine) InjectMIGXID(gpu, giID, ciID int, xid uint64) {
	m.emit(gpu, gonvml.EventTypeXidCriticalError, xid, uint32(giID), uint32(ciID))
}

// InjectECC delivers a double-bit (uncorrectable) or single-bit ECC event
// and counts the error in GetTotalEccErrors (volatile and aggregate). A
// double-bit one also leaves the GPU needing a reset, as on real hardware: a
// row remapping pending on Ampere and later, a page pending retirement
// before (ResetGPU clears both).
func (m *Machine) InjectECC(gpu int, doubleBit bool) {
	m.countECC(gpu, doubleBit)
	kind := uint64(gonvml.EventTypeSingleBitEccError)
	if doubleBit {
		kind = gonvml.EventTypeDoubleBitEccError
	}
	m.emit(gpu, kind, 0, noInstance, noInstance)
}

// emit queues an event on every set where GPU gpu registered for its type.
func (m *Machine) emit(gpu int, kind, data uint64, gi, ci uint32) {
	if !m.valid(gpu) {
		return
	}
	ev := gonvml.EventData{Device: m.devs[gpu], EventType: kind, EventData: data, GpuInstanceId: gi, ComputeInstanceId: ci}
	m.mu.Lock()
	queues := make([]*eventQueue, 0, len(m.sets))
	for _, q := range m.sets {
		queues = append(queues, q)
	}
	m.mu.Unlock()
	for _, q := range queues {
		q.push(gpu, ev)
	}
}

// newEventSet implements EventSetCreate.
func (m *Machine) newEventSet() (gonvml.EventSet, gonvml.Return) {
	q := &eventQueue{regs: map[int]uint64{}, notify: make(chan struct{}, 1)}
	set := &mock.EventSet{}
	set.WaitFunc = q.wait
	m.gate(set) // Wait answers ERROR_UNINITIALIZED while the session is stale
	set.FreeFunc = func() gonvml.Return {
		m.mu.Lock()
		delete(m.sets, set)
		m.mu.Unlock()
		ret := q.free()
		if m.isStale() {
			return gonvml.ERROR_UNINITIALIZED
		}
		return ret
	}
	m.mu.Lock()
	m.sets[set] = q
	m.mu.Unlock()
	return set, gonvml.SUCCESS
}

// installEvents wires GPU i's event registration.
func (m *Machine) installEvents(i int, d *server.Device) {
	d.GetSupportedEventTypesFunc = func() (uint64, gonvml.Return) {
		if m.isLost(i) {
			return 0, gonvml.ERROR_GPU_IS_LOST
		}
		return supportedEvents, gonvml.SUCCESS
	}
	d.RegisterEventsFunc = func(types uint64, set gonvml.EventSet) gonvml.Return {
		s, ok := set.(*mock.EventSet)
		if !ok {
			return gonvml.ERROR_INVALID_ARGUMENT
		}
		m.mu.Lock()
		q, ok := m.sets[s]
		lost := m.lost[i]
		m.mu.Unlock()
		switch {
		case !ok:
			return gonvml.ERROR_INVALID_ARGUMENT
		case lost:
			return gonvml.ERROR_GPU_IS_LOST
		case m.faultOf(i, CallRegisterEvents) != gonvml.SUCCESS:
			return m.faultOf(i, CallRegisterEvents)
		case types&^supportedEvents != 0:
			return gonvml.ERROR_NOT_SUPPORTED
		}
		return q.register(i, types)
	}
}

func (q *eventQueue) register(gpu int, types uint64) gonvml.Return {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.freed {
		return gonvml.ERROR_INVALID_ARGUMENT
	}
	q.regs[gpu] |= types
	return gonvml.SUCCESS
}

func (q *eventQueue) push(gpu int, ev gonvml.EventData) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.freed || q.regs[gpu]&ev.EventType == 0 {
		return
	}
	q.items = append(q.items, ev)
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// wait implements EventSet.Wait: the oldest queued event, or ERROR_TIMEOUT
// after timeoutMs milliseconds.
func (q *eventQueue) wait(timeoutMs uint32) (gonvml.EventData, gonvml.Return) {
	timer := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
	defer timer.Stop()
	for {
		q.mu.Lock()
		switch {
		case q.freed:
			q.mu.Unlock()
			return gonvml.EventData{}, gonvml.ERROR_INVALID_ARGUMENT
		case len(q.items) > 0:
			ev := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return ev, gonvml.SUCCESS
		}
		q.mu.Unlock()
		select {
		case <-q.notify:
		case <-timer.C:
			return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
		}
	}
}

func (q *eventQueue) free() gonvml.Return {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.freed {
		return gonvml.ERROR_INVALID_ARGUMENT
	}
	q.freed = true
	q.items = nil
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return gonvml.SUCCESS
}

// Registered reports whether GPU gpu is registered for events on set (an
// event set of this machine): tests that wrap sets tell them apart by it.
func (m *Machine) Registered(set gonvml.EventSet, gpu int) bool {
	s, ok := set.(*mock.EventSet)
	if !ok {
		return false
	}
	m.mu.Lock()
	q, ok := m.sets[s]
	m.mu.Unlock()
	if !ok {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.regs[gpu] != 0
}
