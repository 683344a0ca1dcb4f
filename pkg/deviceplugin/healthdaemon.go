package deviceplugin

import (
	"context"

	"k8s.io/klog/v2"
)

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
	if err != nil {
		h.down[gpu] = err
		logger.Info("GPU's devices unhealthy: a daemon serving them is down", "gpu", gpu, "uuid", g.uuid, "err", err)
	} else {
		delete(h.down, gpu)
		logger.Info("GPU's daemon is back", "gpu", gpu, "uuid", g.uuid, "healthy", g.healthy)
	}
	h.notifyLocked()
}
