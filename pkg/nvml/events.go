package nvml

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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

// watchTarget is one watched GPU.
type watchTarget struct {
	index int
	uuid  string
	dev   gonvml.Device
}

// WatchEvents registers the GPUs on a new EventSet and streams their events.
func (l *lib) WatchEvents(ctx context.Context, gpuUUIDs []string) (<-chan Event, error) {
	if err := l.ready(); err != nil {
		return nil, err
	}
	set, ret := l.iface.EventSetCreate()
	if ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("nvml EventSetCreate: %w", ret)
	}
	if set == nil {
		return nil, errors.New("nvml EventSetCreate returned no event set")
	}
	targets, err := l.register(ctx, set, gpuUUIDs)
	if err != nil {
		set.Free()
		return nil, err
	}
	ch := make(chan Event, eventBufferSize)
	go l.eventLoop(ctx, set, targets, ch)
	return ch, nil
}

// register adds each GPU to the set for the watched event types it supports.
// A GPU that supports none of them is watched by CheckGPU only.
func (l *lib) register(ctx context.Context, set gonvml.EventSet, gpuUUIDs []string) ([]watchTarget, error) {
	logger := klog.FromContext(ctx)
	targets := make([]watchTarget, 0, len(gpuUUIDs))
	for _, id := range gpuUUIDs {
		dev, ret := l.iface.DeviceGetHandleByUUID(id)
		if ret != gonvml.SUCCESS {
			return nil, callError(id, "DeviceGetHandleByUUID", ret)
		}
		index, ret := dev.GetIndex()
		if ret != gonvml.SUCCESS {
			return nil, callError(id, "GetIndex", ret)
		}
		supported, ret := dev.GetSupportedEventTypes()
		if ret != gonvml.SUCCESS && ret != gonvml.ERROR_NOT_SUPPORTED {
			return nil, callError(id, "GetSupportedEventTypes", ret)
		}
		mask := uint64(watchedEvents) & supported
		if mask != 0 {
			ret = dev.RegisterEvents(mask, set)
		}
		switch {
		case mask == 0 || ret == gonvml.ERROR_NOT_SUPPORTED:
			logger.Info("GPU supports no health events; relying on checks", "gpu", id)
		case ret != gonvml.SUCCESS:
			return nil, callError(id, "RegisterEvents", ret)
		}
		targets = append(targets, watchTarget{index: index, uuid: id, dev: dev})
	}
	return targets, nil
}

// eventLoop waits on the set until ctx is done, then frees the set and closes ch.
func (l *lib) eventLoop(ctx context.Context, set gonvml.EventSet, targets []watchTarget, ch chan<- Event) {
	logger := klog.FromContext(ctx)
	defer close(ch)
	defer set.Free()
	timeoutMs := uint32(l.eventTimeout / time.Millisecond)
	lost := map[int]bool{}
	for ctx.Err() == nil {
		data, ret := set.Wait(timeoutMs)
		switch ret {
		case gonvml.SUCCESS:
			ev, ok := toEvent(data, targets)
			if !ok {
				logger.V(2).Info("Skipping NVML event", "type", data.EventType, "data", data.EventData)
				continue
			}
			if !send(ctx, ch, ev) {
				return
			}
		case gonvml.ERROR_TIMEOUT:
		case gonvml.ERROR_GPU_IS_LOST:
			// The set does not say which GPU: ask each one.
			for _, t := range targets {
				gone := errors.Is(l.CheckGPU(t.uuid), ErrGPULost)
				if gone && !lost[t.index] {
					if !send(ctx, ch, Event{GPUIndex: t.index, UUID: t.uuid, Kind: EventGPULost, GIID: -1, CIID: -1}) {
						return
					}
				}
				lost[t.index] = gone
			}
			l.pause(ctx)
		default:
			logger.Error(ret, "NVML EventSet.Wait failed")
			l.pause(ctx)
		}
	}
}

// pause waits one event timeout (or until ctx is done) so a failing Wait does
// not spin.
func (l *lib) pause(ctx context.Context) {
	t := time.NewTimer(l.eventTimeout)
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
