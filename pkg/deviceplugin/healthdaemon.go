package deviceplugin

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// Reasons of the Node events a daemon's health change records.
const (
	ReasonGPUDaemonDown = "GPUDaemonDown"
	ReasonGPUDaemonUp   = "GPUDaemonUp"
)

// DaemonEvents is told when a daemon a GPU's devices depend on goes down
// or comes back; a HealthEvents that implements it (NodeEvents) gets these
// too. Calls are made with the health tracker's lock held.
type DaemonEvents interface {
	DaemonDown(gpu int, uuid string, err error)
	DaemonUp(gpu int, uuid string)
}

var _ DaemonEvents = (*NodeEvents)(nil)

// DaemonDown records a Warning GPUDaemonDown event with the reason.
func (e *NodeEvents) DaemonDown(gpu int, uuid string, err error) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonGPUDaemonDown, actionHealthCheck,
		"%s: its MPS control daemon is down (%v); its devices are reported unhealthy to the kubelet until it is restarted", deviceName(gpu, uuid, ""), err)
}

// DaemonUp records a Normal GPUDaemonUp event.
func (e *NodeEvents) DaemonUp(gpu int, uuid string) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeNormal, ReasonGPUDaemonUp, actionHealthCheck,
		"%s: its MPS control daemon answers again", deviceName(gpu, uuid, ""))
}

// SetDaemonHealth records the health of a daemon the devices of GPU gpu
// depend on (its MPS control daemon): while err is not nil every device of
// the GPU is unhealthy, whatever NVML says; when the daemon is back the
// devices follow NVML's health again. Subscribers see each change as one
// update, as for NVML events.
func (h *Health) SetDaemonHealth(ctx context.Context, gpu int, err error) {
	logger := klog.FromContext(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.gpus[gpu]
	if !ok {
		logger.Info("Daemon health for an unknown GPU ignored", "gpu", gpu, "err", err)
		return
	}
	was := h.down[gpu]
	if (was == nil) == (err == nil) {
		if err != nil {
			h.down[gpu] = err // the latest reason
		}
		return
	}
	de, _ := h.opts.Events.(DaemonEvents)
	if err != nil {
		h.down[gpu] = err
		logger.Info("GPU's devices unhealthy: a daemon serving them is down", "gpu", gpu, "uuid", g.uuid, "err", err)
		if de != nil {
			de.DaemonDown(gpu, g.uuid, err)
		}
	} else {
		delete(h.down, gpu)
		logger.Info("GPU's daemon is back", "gpu", gpu, "uuid", g.uuid, "healthy", g.healthy)
		if de != nil {
			de.DaemonUp(gpu, g.uuid)
		}
	}
	h.notifyLocked()
}
