// Package v1 is the versioned (kubescheduler.config.k8s.io/v1) GPUPackArgs,
// with its defaults (defaults.go, the one place) and conversion (generated,
// hack/update-codegen.sh, plus conversion.go).
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GPUPackArgs configures the GPUPack plugin.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type GPUPackArgs struct {
	metav1.TypeMeta `json:",inline"`

	// FragmentationWeight weighs the fragmentation score (default 1).
	FragmentationWeight *int64 `json:"fragmentationWeight,omitempty"`
	// TopologyWeight weighs the link-quality score (default 2).
	TopologyWeight *int64 `json:"topologyWeight,omitempty"`
	// WholeResource is the resource of whole GPUs (default nvidia.com/gpu).
	WholeResource *string `json:"wholeResource,omitempty"`
	// SharedResource is the resource of time-shared replicas (default
	// nvidia.com/gpu.shared).
	SharedResource *string `json:"sharedResource,omitempty"`
	// MIGResourcePrefix prefixes MIG resources (default nvidia.com/mig-).
	MIGResourcePrefix *string `json:"migResourcePrefix,omitempty"`
	// ReplicaPolicy is packed (default) or spread.
	ReplicaPolicy *string `json:"replicaPolicy,omitempty"`
	// DefaultTopology is the hint for pods without the gpupack.io/topology
	// annotation: required, preferred (default) or none.
	DefaultTopology *string `json:"defaultTopology,omitempty"`
	// Workload configures the workload distribution.
	Workload *WorkloadArgs `json:"workload,omitempty"`
}

// WorkloadArgs configures the workload distribution.
type WorkloadArgs struct {
	// Prior is the task mix assumed before pods are seen (default: the
	// openb-like mix of pkg/score.DefaultPrior, weights in per-mille).
	Prior []TaskTypeWeight `json:"prior,omitempty"`
	// PriorWeight is how many observed pods the prior is worth (default 100).
	PriorWeight *int32 `json:"priorWeight,omitempty"`
	// HalfLife is the number of observed pods after which one counts half
	// (default 1000).
	HalfLife *int32 `json:"halfLife,omitempty"`
	// Pin keeps the distribution at the prior (default false).
	Pin *bool `json:"pin,omitempty"`
}

// TaskTypeWeight is one task type of the prior with its relative weight.
type TaskTypeWeight struct {
	// Kind is whole, shared or mig.
	Kind string `json:"kind"`
	// Count is GPUs (whole) or MIG devices (mig).
	Count int32 `json:"count,omitempty"`
	// Milli is the share of one GPU (shared), 1..1000.
	Milli int32 `json:"milli,omitempty"`
	// MIGProfile is the MIG profile (mig).
	MIGProfile string `json:"migProfile,omitempty"`
	// Model restricts the GPU model ("" any).
	Model string `json:"model,omitempty"`
	// Weight is the relative popularity.
	Weight int32 `json:"weight"`
}
