// Package config holds the internal type of the GPUPack plugin's args,
// registered in kube-scheduler's config scheme under
// kubescheduler.config.k8s.io as kind GPUPackArgs. Deep copies are
// generated (hack/update-codegen.sh); defaults live in v1/defaults.go,
// validation in validation/.
package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpupack/gpupack/pkg/topology"
)

// GPUPackArgs configures the GPUPack plugin (internal version).
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type GPUPackArgs struct {
	metav1.TypeMeta

	// FragmentationWeight weighs the fragmentation score in a node's score.
	FragmentationWeight int64
	// TopologyWeight weighs the link-quality score in a node's score.
	TopologyWeight int64
	// WholeResource is the resource name of whole GPUs.
	WholeResource string
	// SharedResource is the resource name of time-shared replicas.
	SharedResource string
	// MIGResourcePrefix prefixes MIG resources: <prefix><profile>.
	MIGResourcePrefix string
	// ReplicaPolicy places the replicas of one container.
	ReplicaPolicy ReplicaPolicy
	// DefaultTopology is the hint for pods without the annotation.
	DefaultTopology TopologyHint
	// Workload is the workload distribution's prior and learning.
	Workload WorkloadArgs
}

// WorkloadArgs configures the workload distribution.
type WorkloadArgs struct {
	// Prior is the task mix assumed before pods are seen.
	Prior []TaskTypeWeight
	// PriorWeight is how many observed pods the prior is worth.
	PriorWeight int32
	// HalfLife is the number of observed pods after which one counts half.
	HalfLife int32
	// Pin keeps the distribution at the prior.
	Pin bool
}

// TaskTypeWeight is one task type of the prior with its relative weight.
type TaskTypeWeight struct {
	// Kind is the kind of device the task type asks.
	Kind TaskKind
	// Count is GPUs (whole) or MIG devices (mig).
	Count int32
	// Milli is the share of one GPU (shared), 1..1000.
	Milli int32
	// MIGProfile is the MIG profile (mig).
	MIGProfile string
	// Model restricts the GPU model ("" any).
	Model string
	// Weight is the relative popularity.
	Weight int32
}

// ReplicaPolicy places the replicas of one time-shared request (for nodes
// that do not publish their own policy).
type ReplicaPolicy string

// Replica policies, spelled as in the node's resource table.
const (
	// ReplicaPolicyPacked puts all replicas of a request on one GPU.
	ReplicaPolicyPacked ReplicaPolicy = topology.PolicyPacked
	// ReplicaPolicySpread puts each replica on a distinct GPU.
	ReplicaPolicySpread ReplicaPolicy = topology.PolicySpread
)

// SupportedReplicaPolicies are the valid ReplicaPolicy values.
var SupportedReplicaPolicies = []ReplicaPolicy{ReplicaPolicyPacked, ReplicaPolicySpread}

// TopologyHint is the link-quality hint of pods without the
// gpupack.io/topology annotation (the annotation's values).
type TopologyHint string

// Topology hints.
const (
	TopologyRequired  TopologyHint = "required"
	TopologyPreferred TopologyHint = "preferred"
	TopologyNone      TopologyHint = "none"
)

// SupportedTopologyHints are the valid TopologyHint values.
var SupportedTopologyHints = []TopologyHint{TopologyRequired, TopologyPreferred, TopologyNone}

// TaskKind is the kind of device a prior's task type asks.
type TaskKind string

// Task kinds.
const (
	TaskWhole  TaskKind = "whole"
	TaskShared TaskKind = "shared"
	TaskMIG    TaskKind = "mig"
)

// SupportedTaskKinds are the valid TaskKind values.
var SupportedTaskKinds = []TaskKind{TaskWhole, TaskShared, TaskMIG}
