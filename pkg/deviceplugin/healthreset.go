package deviceplugin

import (
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/nvml"
)

// Reasons of the Node events a refused recovery records.
const (
	// ReasonGPUResetRequired: an unhealthy GPU answers its checks but must
	// be reset (nvidia-smi -r, or a node reboot) before it is served again.
	ReasonGPUResetRequired = "GPUResetRequired"
	// ReasonGPUNeedsService: an unhealthy GPU's memory row remapping
	// failed; no reset clears it.
	ReasonGPUNeedsService = "GPUNeedsService"
)

// RecoveryEvents is told when an unhealthy GPU's recovery is refused
// because it needs a reset or service (err wraps nvml.ErrResetRequired or
// nvml.ErrNeedsService), once per unhealthy episode and verdict; a
// HealthEvents that implements it (NodeEvents) gets these too. Calls are
// made with the health tracker's lock held: implementations must not block.
type RecoveryEvents interface {
	RecoveryRefused(gpu int, uuid string, err error)
}

var _ RecoveryEvents = (*NodeEvents)(nil)

// RecoveryRefused records a Warning GPUResetRequired (or GPUNeedsService)
// event saying what the GPU needs and why.
func (e *NodeEvents) RecoveryRefused(gpu int, uuid string, err error) {
	if errors.Is(err, nvml.ErrNeedsService) {
		e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonGPUNeedsService, actionHealthCheck,
			"%s needs service: a memory row remapping failed, which no reset clears; its devices stay unhealthy (%v)",
			deviceName(gpu, uuid, ""), err)
		return
	}
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonGPUResetRequired, actionHealthCheck,
		"%s needs a reset before it can recover: run nvidia-smi -r on it once no process uses it, or reboot the node; "+
			"its devices stay unhealthy until then (%v)", deviceName(gpu, uuid, ""), err)
}

// refusal is what a check's error says the GPU needs before it is served
// again: nvml.ErrNeedsService, nvml.ErrResetRequired, or nil (nothing of
// the kind: it passed, or failed for another reason).
func refusal(err error) error {
	switch {
	case errors.Is(err, nvml.ErrNeedsService):
		return nvml.ErrNeedsService
	case errors.Is(err, nvml.ErrResetRequired):
		return nvml.ErrResetRequired
	default:
		return nil
	}
}

// noteRefusalLocked logs, and records as a Node event, that GPU i's check
// (err) says it needs a reset or service before it is served again: once
// when that verdict first comes in an unhealthy episode, not at every probe
// (the probe's own "still failing" line repeats it at V(4)). A passing
// check ends the episode; a check failing for another reason (a transient
// NVML error) does not. h.mu must be held.
func (h *Health) noteRefusalLocked(logger klog.Logger, i int, g *gpuState, err error) {
	if err == nil {
		g.refused = nil
		return
	}
	why := refusal(err)
	if why == nil || why == g.refused {
		return
	}
	g.refused = why
	if why == nvml.ErrNeedsService {
		logger.Info("GPU needs service: a memory row remapping failed, which no reset clears; it stays unhealthy",
			"gpu", i, "uuid", g.uuid, "err", err)
	} else {
		logger.Info("GPU needs a reset before it can recover (nvidia-smi -r once no process uses it, or a node reboot); it stays unhealthy until then",
			"gpu", i, "uuid", g.uuid, "err", err)
	}
	if re, ok := h.opts.Events.(RecoveryEvents); ok {
		re.RecoveryRefused(i, g.uuid, err)
	}
}
