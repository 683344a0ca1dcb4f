package v1

import (
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	schedv1 "k8s.io/kube-scheduler/config/v1"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
)

// SchemeGroupVersion is kubescheduler.config.k8s.io/v1.
var SchemeGroupVersion = schedv1.SchemeGroupVersion

// AddToScheme registers GPUPackArgs (v1), its defaults and conversions.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &GPUPackArgs{})
	s.AddTypeDefaultingFunc(&GPUPackArgs{}, func(obj any) { SetDefaults_GPUPackArgs(obj.(*GPUPackArgs)) })
	if err := s.AddConversionFunc((*GPUPackArgs)(nil), (*config.GPUPackArgs)(nil), func(a, b any, _ conversion.Scope) error {
		Convert_v1_GPUPackArgs_To_config_GPUPackArgs(a.(*GPUPackArgs), b.(*config.GPUPackArgs))
		return nil
	}); err != nil {
		return err
	}
	return s.AddConversionFunc((*config.GPUPackArgs)(nil), (*GPUPackArgs)(nil), func(a, b any, _ conversion.Scope) error {
		Convert_config_GPUPackArgs_To_v1_GPUPackArgs(a.(*config.GPUPackArgs), b.(*GPUPackArgs))
		return nil
	})
}

func init() {
	schedv1.SchemeBuilder.Register(AddToScheme)
	if err := AddToScheme(schedscheme.Scheme); err != nil {
		panic(err)
	}
}

// Convert_v1_GPUPackArgs_To_config_GPUPackArgs converts defaulted v1 args to
// the internal type (unset fields stay zero).
func Convert_v1_GPUPackArgs_To_config_GPUPackArgs(in *GPUPackArgs, out *config.GPUPackArgs) { //nolint:revive
	*out = config.GPUPackArgs{
		FragmentationWeight: ptr.Deref(in.FragmentationWeight, 0),
		TopologyWeight:      ptr.Deref(in.TopologyWeight, 0),
		WholeResource:       ptr.Deref(in.WholeResource, ""),
		SharedResource:      ptr.Deref(in.SharedResource, ""),
		MIGResourcePrefix:   ptr.Deref(in.MIGResourcePrefix, ""),
		ReplicaPolicy:       ptr.Deref(in.ReplicaPolicy, ""),
		DefaultTopology:     ptr.Deref(in.DefaultTopology, ""),
	}
	if w := in.Workload; w != nil {
		out.Workload = config.WorkloadArgs{
			PriorWeight: ptr.Deref(w.PriorWeight, 0),
			HalfLife:    ptr.Deref(w.HalfLife, 0),
			Pin:         ptr.Deref(w.Pin, false),
		}
		for _, p := range w.Prior {
			out.Workload.Prior = append(out.Workload.Prior, config.TaskTypeWeight(p))
		}
	}
}

// Convert_config_GPUPackArgs_To_v1_GPUPackArgs converts internal args to v1.
func Convert_config_GPUPackArgs_To_v1_GPUPackArgs(in *config.GPUPackArgs, out *GPUPackArgs) { //nolint:revive
	*out = GPUPackArgs{
		FragmentationWeight: ptr.To(in.FragmentationWeight),
		TopologyWeight:      ptr.To(in.TopologyWeight),
		WholeResource:       ptr.To(in.WholeResource),
		SharedResource:      ptr.To(in.SharedResource),
		MIGResourcePrefix:   ptr.To(in.MIGResourcePrefix),
		ReplicaPolicy:       ptr.To(in.ReplicaPolicy),
		DefaultTopology:     ptr.To(in.DefaultTopology),
		Workload: &WorkloadArgs{
			PriorWeight: ptr.To(in.Workload.PriorWeight),
			HalfLife:    ptr.To(in.Workload.HalfLife),
			Pin:         ptr.To(in.Workload.Pin),
		},
	}
	for _, p := range in.Workload.Prior {
		out.Workload.Prior = append(out.Workload.Prior, TaskTypeWeight(p))
	}
}
