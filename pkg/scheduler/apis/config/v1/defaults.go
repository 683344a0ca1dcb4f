package v1

import (
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/score"
)

// Defaults of the plugin's args, in one place: the placement figures are
// pkg/score's own defaults (which gpusim uses too), the rest the plugin's.
const (
	DefaultFragmentationWeight int64 = score.DefaultFragWeight
	DefaultTopologyWeight      int64 = score.DefaultTopoWeight
	DefaultWholeResource             = "nvidia.com/gpu"
	DefaultSharedResource            = "nvidia.com/gpu.shared"
	DefaultMIGResourcePrefix         = "nvidia.com/mig-"
	DefaultReplicaPolicy             = string(config.ReplicaPolicyPacked)
	DefaultTopology                  = string(config.TopologyPreferred)
	DefaultPriorWeight         int32 = score.DefaultPriorWeight
	DefaultHalfLife            int32 = score.DefaultHalfLife
)

// DefaultPrior is score.DefaultPrior with per-mille weights.
func DefaultPrior() []TaskTypeWeight {
	var out []TaskTypeWeight
	for _, w := range score.DefaultPrior() {
		out = append(out, TaskTypeWeight{
			Kind: w.Type.Kind.String(), Count: int32(w.Type.Count), Milli: int32(w.Type.Milli),
			MIGProfile: w.Type.MIGProfile, Model: w.Type.Model, Weight: int32(w.Weight*1000 + 0.5),
		})
	}
	return out
}

// SetDefaults_GPUPackArgs fills every unset field of args.
func SetDefaults_GPUPackArgs(args *GPUPackArgs) { //nolint:revive // the scheme's naming
	if args.FragmentationWeight == nil {
		args.FragmentationWeight = ptr.To(DefaultFragmentationWeight)
	}
	if args.TopologyWeight == nil {
		args.TopologyWeight = ptr.To(DefaultTopologyWeight)
	}
	if args.WholeResource == nil {
		args.WholeResource = ptr.To(DefaultWholeResource)
	}
	if args.SharedResource == nil {
		args.SharedResource = ptr.To(DefaultSharedResource)
	}
	if args.MIGResourcePrefix == nil {
		args.MIGResourcePrefix = ptr.To(DefaultMIGResourcePrefix)
	}
	if args.ReplicaPolicy == nil {
		args.ReplicaPolicy = ptr.To(DefaultReplicaPolicy)
	}
	if args.DefaultTopology == nil {
		args.DefaultTopology = ptr.To(DefaultTopology)
	}
	if args.Workload == nil {
		args.Workload = &WorkloadArgs{}
	}
	w := args.Workload
	if w.Prior == nil {
		w.Prior = DefaultPrior()
	}
	if w.PriorWeight == nil {
		w.PriorWeight = ptr.To(DefaultPriorWeight)
	}
	if w.HalfLife == nil {
		w.HalfLife = ptr.To(DefaultHalfLife)
	}
	if w.Pin == nil {
		w.Pin = ptr.To(false)
	}
}
