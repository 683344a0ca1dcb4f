package deviceplugin

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/gpupack/gpupack/pkg/nvml"
)

// Reasons of the Node events a health change records.
const (
	ReasonGPUUnhealthy = "GPUUnhealthy"
	ReasonGPURecovered = "GPURecovered"
	// actionHealthCheck is the events.k8s.io action of both.
	actionHealthCheck = "HealthCheck"
	// ReasonConfigRefused: a new per-node config does not load or does
	// not fit the node; the running one is kept.
	ReasonConfigRefused = "DevicePluginConfigRefused"
	actionReloadConfig  = "ReloadConfig"
	// ReasonDevicesWithheld: devices of a resource are advertised
	// unhealthy because a running container holds their GPU under another
	// resource name or device ID (a config reload); ReasonDevicesReleased:
	// none is any more.
	ReasonDevicesWithheld = "GPUDevicesWithheld"
	ReasonDevicesReleased = "GPUDevicesReleased"
	// ReasonPodResourcesUnreadable: the kubelet's PodResources API stopped
	// answering: what is withheld is what was known (nothing, what the
	// Manager replaced knew, or the last answer), not updated until it
	// answers again; ReasonPodResourcesRecovered: it answers again.
	ReasonPodResourcesUnreadable = "PodResourcesUnreadable"
	ReasonPodResourcesRecovered  = "PodResourcesRecovered"
	actionWithhold               = "Withhold"
	// ReasonHeldMIGDeviceGone: a running container holds a MIG device no
	// longer on the node whose GPU is not known: every GPU it may have
	// been on is withheld.
	ReasonHeldMIGDeviceGone = "HeldMIGDeviceGone"
)

var (
	_ WithheldEvents = (*NodeEvents)(nil)
	_ GoneMIGEvents  = (*NodeEvents)(nil)
)

// HealthEvents is told of each health change of a GPU or a MIG device
// (mig is the MIG device's UUID, "" for the whole GPU). Calls are made with
// the health tracker's lock held: implementations must not block.
type HealthEvents interface {
	Unhealthy(gpu int, uuid, mig string, ev nvml.Event)
	Recovered(gpu int, uuid, mig string)
}

// NodeEvents records health changes as events on the Node
// (events.k8s.io/v1, the recorder sends them asynchronously).
type NodeEvents struct {
	recorder events.EventRecorder
	node     *corev1.ObjectReference
}

var _ HealthEvents = (*NodeEvents)(nil)

// NewNodeEvents records on the Node named node, referred to as the kubelet
// does (its UID is its name).
func NewNodeEvents(recorder events.EventRecorder, node string) *NodeEvents {
	return &NodeEvents{recorder: recorder, node: &corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node)}}
}

// Unhealthy records a Warning GPUUnhealthy event naming the GPU and the cause (XID).
func (e *NodeEvents) Unhealthy(gpu int, uuid, mig string, ev nvml.Event) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonGPUUnhealthy, actionHealthCheck,
		"%s is unhealthy: %s; its devices are reported unhealthy to the kubelet", deviceName(gpu, uuid, mig), cause(ev))
}

// Recovered records a Normal GPURecovered event.
func (e *NodeEvents) Recovered(gpu int, uuid, mig string) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeNormal, ReasonGPURecovered, actionHealthCheck,
		"%s passed its health checks again; its devices are reported healthy", deviceName(gpu, uuid, mig))
}

func deviceName(gpu int, uuid, mig string) string {
	if mig != "" {
		return fmt.Sprintf("MIG device %s on GPU %d (%s)", mig, gpu, uuid)
	}
	return fmt.Sprintf("GPU %d (%s)", gpu, uuid)
}

// cause says what an event was, with its XID.
func cause(ev nvml.Event) string {
	switch ev.Kind {
	case nvml.EventXID:
		return fmt.Sprintf("XID %d", ev.XID)
	default:
		return ev.Kind.String()
	}
}

// ConfigRefused records a Warning event: the per-node config name was
// refused (err) and the plugin keeps serving the running one.
func (e *NodeEvents) ConfigRefused(name, running string, err error) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonConfigRefused, actionReloadConfig,
		"device plugin config %q refused, still serving config %q: %v", name, running, err)
}

// Withheld records a Warning event naming the withheld devices of resource
// and their holders, or a Normal one when none is withheld any more.
func (e *NodeEvents) Withheld(resource string, ids, holders []string) {
	if len(ids) == 0 {
		e.recorder.Eventf(e.node, nil, corev1.EventTypeNormal, ReasonDevicesReleased, actionWithhold,
			"%s: no device withheld any more; their holders under other names are gone", resource)
		return
	}
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonDevicesWithheld, actionWithhold,
		"%s: %d devices %v reported unhealthy until released, their GPU held under another name or ID: %s",
		resource, len(ids), ids, strings.Join(holders, "; "))
}

// HoldingsUnknown records a Warning event: PodResources did not answer
// (err). With nothing known, devices held under an earlier config's names
// are not withheld; else what is known (the previous config's knowledge,
// or the last answer) is withheld, not updated.
func (e *NodeEvents) HoldingsUnknown(err error, known HeldKnowledge) {
	switch known {
	case HeldCarried:
		e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonPodResourcesUnreadable, actionWithhold,
			"the kubelet's PodResources API did not answer: withholding what the previous config knew held, not updated until it does "+
				"(devices of holders that ended stay withheld): %v", err)
	case HeldLastAnswer:
		e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonPodResourcesUnreadable, actionWithhold,
			"the kubelet's PodResources API stopped answering: withholding what it answered last, not updated until it answers again "+
				"(devices of holders that ended stay withheld): %v", err)
	default:
		e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonPodResourcesUnreadable, actionWithhold,
			"the kubelet's PodResources API did not answer: devices held under an earlier config's names cannot be withheld until it does: %v", err)
	}
}

// HoldingsKnown records a Normal event: PodResources answers again after
// HoldingsUnknown.
func (e *NodeEvents) HoldingsKnown() {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeNormal, ReasonPodResourcesRecovered, actionWithhold,
		"the kubelet's PodResources API answers again; devices held under other names are withheld as it answers")
}

// MIGParentUnknown records a Warning event: holder holds a MIG device no
// longer on the node whose GPU is not known; gpus are withheld for it
// until the kubelet no longer lists it.
func (e *NodeEvents) MIGParentUnknown(holder string, gpus []string) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonHeldMIGDeviceGone, actionWithhold,
		"%s, a MIG device no longer on the node whose GPU is not known (the plugin restarted after a MIG layout change): "+
			"withholding every GPU it may have been on (%d: %v) until the kubelet no longer lists it; delete the pod to release them",
		holder, len(gpus), gpus)
}
