// Package config holds the internal type of the GPUPack plugin's args,
// registered in kube-scheduler's config scheme under
// kubescheduler.config.k8s.io as kind GPUPackArgs.
package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// GPUPackArgs configures the GPUPack plugin (internal version).
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
	// ReplicaPolicy places the replicas of one container: packed or spread.
	ReplicaPolicy string
	// DefaultTopology is the hint for pods without the annotation:
	// required, preferred or none.
	DefaultTopology string
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
	// Kind is whole, shared or mig.
	Kind string
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

// DeepCopyInto copies in into out.
func (in *GPUPackArgs) DeepCopyInto(out *GPUPackArgs) {
	*out = *in
	out.Workload.Prior = append([]TaskTypeWeight(nil), in.Workload.Prior...)
}

// DeepCopy returns a copy of in.
func (in *GPUPackArgs) DeepCopy() *GPUPackArgs {
	if in == nil {
		return nil
	}
	out := new(GPUPackArgs)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *GPUPackArgs) DeepCopyObject() runtime.Object {
	return in.DeepCopy()
}
