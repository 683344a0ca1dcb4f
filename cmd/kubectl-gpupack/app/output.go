package app

import (
	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
)

// APIVersion is the apiVersion of every -o json|yaml object. The objects
// are views, not API resources: nothing serves them; the version says
// which schema a script reads (docs/kubectl.md).
const APIVersion = "gpupack.io/v1alpha1"

// Kinds of the -o json|yaml objects, one per command: each a list whose
// items are the rows of the command's table.
const (
	kindNodeList = "GPUNodeList"
	kindPodList  = "GPUPodList"
	kindFragList = "NodeFragmentationList"
	kindFitList  = "NodeFitList"
)

// typeMeta is the apiVersion and kind every -o json|yaml object starts
// with.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func newTypeMeta(kind string) typeMeta { return typeMeta{APIVersion: APIVersion, Kind: kind} }

// nodeList is nodes' object: every GPU node's map, with the workload its
// fragmentation figures assume.
type nodeList struct {
	typeMeta
	Workload gpuview.WorkloadView `json:"workload"`
	Items    []gpuview.NodeView   `json:"items"`
}

// podList is pods' object.
type podList struct {
	typeMeta
	Items []gpuview.PodView `json:"items"`
}

// fragList is frag's object: per node its fragmentation (items), the
// total over them and each task type's part, under the workload.
type fragList struct {
	typeMeta
	Workload gpuview.WorkloadView `json:"workload"`
	// Total is the sum over the items, in GPUs.
	Total float64            `json:"total"`
	Types []gpuview.TypeFrag `json:"types"`
	Items []gpuview.NodeFrag `json:"items"`
}

// fitList is explain's object: per node, whether the pod fits as GPUPack's
// Filter decides (items).
type fitList struct {
	typeMeta
	Pod string `json:"pod"`
	// BoundTo is the node the pod is bound to ("" pending).
	BoundTo string `json:"boundTo,omitempty"`
	// SchedulerName is the pod's spec.schedulerName; GPUPackProfile
	// whether it is a GPUPack profile (else GPUPack does not schedule the
	// pod, and Note says so: the items are what it would do).
	SchedulerName  string               `json:"schedulerName"`
	GPUPackProfile bool                 `json:"gpupackProfile"`
	Note           string               `json:"note,omitempty"`
	Workload       gpuview.WorkloadView `json:"workload"`
	Items          []gpupack.NodeFit    `json:"items"`
}

// nonNil is s, or an empty slice for nil: items are [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
