// Package sharing turns a node's GPUs into Kubernetes extended resources:
// whole GPUs, MIG devices (strategies none, single and mixed) and
// time-shared replicas, with the device IDs the kubelet sees. What the
// config file says lives in pkg/config/v1; this package says what it means
// for a node's devices.
package sharing
