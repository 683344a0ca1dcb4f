package gpupack

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// ReasonDevicesAnnotationIgnored is the reason of the Warning event on a
// bound pod whose gpupack.io/devices the cache cannot count (malformed, not
// matching the pod's requests, or naming devices another pod holds: a copy
// of its annotations). The pod's GPU requests are then counted as held on
// devices unknown until the node's in-use report names them.
const ReasonDevicesAnnotationIgnored = "GPUDevicesAnnotationIgnored"

// devicesReported remembers, per pod, the gpupack.io/devices value whose
// problem was reported (an error log and a Warning event on the pod), so
// that the pod's other updates (status and condition changes) do not repeat
// it; a changed value is reported again, and the entry goes with the pod
// or once its annotation is counted. The zero value is ready.
type devicesReported struct {
	m sync.Map // types.UID -> string
}

// first reports whether value is not the one last reported for uid, and
// remembers it.
func (r *devicesReported) first(uid types.UID, value string) bool {
	prev, loaded := r.m.Swap(uid, value)
	return !loaded || prev.(string) != value
}

// forget drops uid's entry.
func (r *devicesReported) forget(uid types.UID) { r.m.Delete(uid) }
