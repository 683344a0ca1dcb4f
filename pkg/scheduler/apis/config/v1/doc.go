// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=github.com/gpupack/gpupack/pkg/scheduler/apis/config

package v1
