// Package validation validates GPUPackArgs, returning every error with its
// field path.
package validation

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/score"
)

// MaxWeight bounds the score weights.
const MaxWeight = 100

// ValidateGPUPackArgs returns every problem of args, each with its path.
func ValidateGPUPackArgs(path *field.Path, args *config.GPUPackArgs) field.ErrorList {
	var errs field.ErrorList
	if args == nil {
		return field.ErrorList{field.Required(path, "GPUPackArgs")}
	}
	for _, w := range []struct {
		name string
		v    int64
	}{{"fragmentationWeight", args.FragmentationWeight}, {"topologyWeight", args.TopologyWeight}} {
		if w.v < 0 || w.v > MaxWeight {
			errs = append(errs, field.Invalid(path.Child(w.name), w.v, fmt.Sprintf("must be in 0..%d", MaxWeight)))
		}
	}
	if args.FragmentationWeight == 0 && args.TopologyWeight == 0 {
		errs = append(errs, field.Invalid(path.Child("topologyWeight"), 0, "fragmentationWeight and topologyWeight cannot both be 0"))
	}
	for _, r := range []struct{ name, v string }{
		{"wholeResource", args.WholeResource}, {"sharedResource", args.SharedResource}, {"migResourcePrefix", args.MIGResourcePrefix},
	} {
		if r.v == "" || !strings.Contains(r.v, "/") {
			errs = append(errs, field.Invalid(path.Child(r.name), r.v, "must be a domain-qualified resource name"))
		}
	}
	if args.WholeResource != "" && args.WholeResource == args.SharedResource {
		errs = append(errs, field.Invalid(path.Child("sharedResource"), args.SharedResource, "must differ from wholeResource"))
	}
	if args.ReplicaPolicy != "packed" && args.ReplicaPolicy != "spread" {
		errs = append(errs, field.NotSupported(path.Child("replicaPolicy"), args.ReplicaPolicy, []string{"packed", "spread"}))
	}
	if args.DefaultTopology != "required" && args.DefaultTopology != "preferred" && args.DefaultTopology != "none" {
		errs = append(errs, field.NotSupported(path.Child("defaultTopology"), args.DefaultTopology, []string{"required", "preferred", "none"}))
	}
	errs = append(errs, validateWorkload(path.Child("workload"), &args.Workload)...)
	return errs
}

func validateWorkload(path *field.Path, w *config.WorkloadArgs) field.ErrorList {
	var errs field.ErrorList
	switch {
	case w.PriorWeight < 0:
		errs = append(errs, field.Invalid(path.Child("priorWeight"), w.PriorWeight, "must be >= 0"))
	case w.PriorWeight == 0 && !w.Pin:
		errs = append(errs, field.Invalid(path.Child("priorWeight"), w.PriorWeight, "must be positive unless pin is true"))
	}
	if w.HalfLife < 1 {
		errs = append(errs, field.Invalid(path.Child("halfLife"), w.HalfLife, "must be >= 1"))
	}
	if len(w.Prior) == 0 {
		errs = append(errs, field.Required(path.Child("prior"), "at least one task type"))
	}
	var total int64
	for i, p := range w.Prior {
		pp := path.Child("prior").Index(i)
		t, err := TaskType(p)
		if err != nil {
			errs = append(errs, field.Invalid(pp, p, err.Error()))
			continue
		}
		if err := t.Validate(); err != nil {
			errs = append(errs, field.Invalid(pp, p, err.Error()))
		}
		if p.Weight < 0 {
			errs = append(errs, field.Invalid(pp.Child("weight"), p.Weight, "must be >= 0"))
		}
		total += int64(p.Weight)
	}
	if len(w.Prior) > 0 && total <= 0 {
		errs = append(errs, field.Invalid(path.Child("prior"), total, "weights must add up to more than 0"))
	}
	return errs
}

// TaskType converts a prior entry to a score.TaskType.
func TaskType(p config.TaskTypeWeight) (score.TaskType, error) {
	t := score.TaskType{Count: int(p.Count), Milli: int(p.Milli), MIGProfile: p.MIGProfile, Model: p.Model}
	switch p.Kind {
	case "whole":
		t.Kind = score.KindWhole
	case "shared":
		t.Kind = score.KindShared
	case "mig":
		t.Kind = score.KindMIG
	default:
		return t, fmt.Errorf("kind %q: want whole, shared or mig", p.Kind)
	}
	return t, nil
}
