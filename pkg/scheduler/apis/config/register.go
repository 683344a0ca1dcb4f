package config

import (
	"k8s.io/apimachinery/pkg/runtime"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
)

// SchemeGroupVersion is kube-scheduler's internal config group version.
var SchemeGroupVersion = schedconfig.SchemeGroupVersion

// AddToScheme registers GPUPackArgs (internal).
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &GPUPackArgs{})
	return nil
}

func init() {
	// The plugin-arg conversion scheme is built lazily from the scheduler's
	// scheme builders; the main scheme already exists.
	schedconfig.SchemeBuilder.Register(AddToScheme)
	if err := AddToScheme(schedscheme.Scheme); err != nil {
		panic(err)
	}
}
