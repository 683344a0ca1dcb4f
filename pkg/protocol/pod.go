package protocol

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/gpupack/gpupack/pkg/score"
)

// MaxDevices bounds the devices one container may ask of one resource
// before the request is rejected as malformed.
const MaxDevices = 1 << 20

// DeviceCount is how many devices of resource the container asks: its
// limit, else its request (the API server makes an extended resource's
// request equal its limit), 0 when it asks none. A quantity that is not a
// whole number from 0 to MaxDevices is an error.
func DeviceCount(c *v1.Container, resource string) (int, error) {
	q, ok := c.Resources.Limits[v1.ResourceName(resource)]
	if !ok {
		q, ok = c.Resources.Requests[v1.ResourceName(resource)]
	}
	if !ok {
		return 0, nil
	}
	n, whole := q.AsInt64()
	switch {
	case q.Sign() < 0:
		return 0, fmt.Errorf("container %q: %s quantity %s is negative", c.Name, resource, q.String())
	case whole && n <= MaxDevices:
		return int(n), nil
	case q.Cmp(*apiresource.NewQuantity(MaxDevices, apiresource.DecimalSI)) > 0:
		return 0, fmt.Errorf("container %q: %s quantity %s is more than the %d devices a container may ask", c.Name, resource, q.String(), MaxDevices)
	}
	return 0, fmt.Errorf("container %q: %s quantity %s is not a whole number of devices", c.Name, resource, q.String())
}

// TopologyHintOf is the pod's gpupack.io/topology hint; def when the pod
// has no such annotation. A malformed value is an error (and def).
func TopologyHintOf(pod *v1.Pod, def score.TopologyHint) (score.TopologyHint, error) {
	v, ok := pod.Annotations[TopologyHintAnnotation]
	if !ok {
		return def, nil
	}
	h, err := ParseTopologyHint(v)
	if err != nil {
		return def, fmt.Errorf("annotation %s: %w", TopologyHintAnnotation, err)
	}
	return h, nil
}

// ReplicaPolicyOf is the pod's gpupack.io/replica-policy: set is false when
// the pod has no such annotation (the node's policy applies). A malformed
// value is an error.
func ReplicaPolicyOf(pod *v1.Pod) (p score.ReplicaPolicy, set bool, err error) {
	v, ok := pod.Annotations[ReplicaPolicyAnnotation]
	if !ok {
		return score.Packed, false, nil
	}
	p, err = ParseReplicaPolicy(v)
	if err != nil {
		return score.Packed, false, fmt.Errorf("annotation %s: %w", ReplicaPolicyAnnotation, err)
	}
	return p, true, nil
}
