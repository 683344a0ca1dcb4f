package protocol

import (
	"fmt"
	"strings"
)

// ReplicaPolicyAnnotation is the pod annotation with which a pod asks where
// the replicas of its time-shared requests go: packed (all on one GPU, a
// share r/R of it) or spread (r distinct GPUs). Without it a pod gets the
// policy the node publishes for the resource (gpupack.io/topology).
const ReplicaPolicyAnnotation = "gpupack.io/replica-policy"

// Replica policies, as written in the annotation and in the node's
// resource table.
const (
	ReplicaPolicyPacked = "packed"
	ReplicaPolicySpread = "spread"
)

// ParseReplicaPolicy checks the annotation's value and returns it trimmed.
func ParseReplicaPolicy(s string) (string, error) {
	switch v := strings.TrimSpace(s); v {
	case ReplicaPolicyPacked, ReplicaPolicySpread:
		return v, nil
	}
	return "", fmt.Errorf("annotation %s: %q, want %s or %s", ReplicaPolicyAnnotation, s, ReplicaPolicyPacked, ReplicaPolicySpread)
}
