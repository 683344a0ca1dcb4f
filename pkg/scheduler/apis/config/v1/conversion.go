package v1

import (
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
)

// The conversions conversion-gen cannot write (zz_generated.conversion.go
// says which fields): v1's optional pointers to the internal typed values.

// Convert_v1_GPUPackArgs_To_config_GPUPackArgs converts defaulted v1 args to
// the internal type (unset fields stay zero).
func Convert_v1_GPUPackArgs_To_config_GPUPackArgs(in *GPUPackArgs, out *config.GPUPackArgs, s conversion.Scope) error { //nolint:revive // the scheme's naming
	if err := autoConvert_v1_GPUPackArgs_To_config_GPUPackArgs(in, out, s); err != nil {
		return err
	}
	out.ReplicaPolicy = config.ReplicaPolicy(ptr.Deref(in.ReplicaPolicy, ""))
	out.DefaultTopology = config.TopologyHint(ptr.Deref(in.DefaultTopology, ""))
	out.Workload = config.WorkloadArgs{}
	if in.Workload == nil {
		return nil
	}
	return Convert_v1_WorkloadArgs_To_config_WorkloadArgs(in.Workload, &out.Workload, s)
}

// Convert_config_GPUPackArgs_To_v1_GPUPackArgs converts internal args to v1.
func Convert_config_GPUPackArgs_To_v1_GPUPackArgs(in *config.GPUPackArgs, out *GPUPackArgs, s conversion.Scope) error { //nolint:revive // the scheme's naming
	if err := autoConvert_config_GPUPackArgs_To_v1_GPUPackArgs(in, out, s); err != nil {
		return err
	}
	out.ReplicaPolicy = ptr.To(string(in.ReplicaPolicy))
	out.DefaultTopology = ptr.To(string(in.DefaultTopology))
	out.Workload = &WorkloadArgs{}
	return Convert_config_WorkloadArgs_To_v1_WorkloadArgs(&in.Workload, out.Workload, s)
}

// ToInternal is obj (v1 GPUPackArgs, internal GPUPackArgs or nil for none)
// as defaulted internal args: what the plugin reads.
func ToInternal(obj any) (*config.GPUPackArgs, bool, error) {
	var v *GPUPackArgs
	switch a := obj.(type) {
	case *config.GPUPackArgs:
		return a, true, nil
	case *GPUPackArgs:
		v = a.DeepCopy()
	case nil:
		v = &GPUPackArgs{}
	default:
		return nil, false, nil
	}
	SetDefaults_GPUPackArgs(v)
	var out config.GPUPackArgs
	if err := Convert_v1_GPUPackArgs_To_config_GPUPackArgs(v, &out, nil); err != nil {
		return nil, true, err
	}
	return &out, true, nil
}
