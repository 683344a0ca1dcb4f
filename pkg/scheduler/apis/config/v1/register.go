package v1

import (
	"k8s.io/apimachinery/pkg/runtime"
	schedv1 "k8s.io/kube-scheduler/config/v1"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
)

// SchemeGroupVersion is kubescheduler.config.k8s.io/v1.
var SchemeGroupVersion = schedv1.SchemeGroupVersion

// localSchemeBuilder receives the generated registrations
// (zz_generated.conversion.go's init); AddToScheme applies them itself, as
// it runs from this file's init, before the generated file's.
var localSchemeBuilder runtime.SchemeBuilder

// AddToScheme registers GPUPackArgs (v1), its defaults and conversions.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &GPUPackArgs{})
	s.AddTypeDefaultingFunc(&GPUPackArgs{}, func(obj any) { SetDefaults_GPUPackArgs(obj.(*GPUPackArgs)) })
	return RegisterConversions(s)
}

func init() {
	schedv1.SchemeBuilder.Register(AddToScheme)
	if err := AddToScheme(schedscheme.Scheme); err != nil {
		panic(err)
	}
}
