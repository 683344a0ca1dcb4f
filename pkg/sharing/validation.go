package sharing

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpupack/gpupack/pkg/topology"
)

// MaxReplicas bounds time-slicing replicas per device. It is the limit of
// the gpupack.io/topology annotation the node publishes (a config the codec
// could not carry would leave the node unpublished, silently): one limit,
// checked when the config is loaded.
const MaxReplicas = topology.MaxReplicas

// ResourcePrefix is the vendor prefix of every resource we advertise.
const ResourcePrefix = "nvidia.com/"

// Validate checks a defaulted config and returns every error with its field path.
func Validate(c *Config) field.ErrorList {
	var errs field.ErrorList
	if c.Version != Version {
		errs = append(errs, field.NotSupported(field.NewPath("version"), c.Version, []string{Version}))
	}
	errs = append(errs, validateFlags(&c.Flags, field.NewPath("flags"))...)
	errs = append(errs, validateTimeSlicing(&c.Sharing.TimeSlicing, field.NewPath("sharing", "timeSlicing"))...)
	errs = append(errs, validateHealth(&c.Health, field.NewPath("health"))...)
	if d := c.Publish.InUseInterval; d != nil && d.Duration <= 0 {
		errs = append(errs, field.Invalid(field.NewPath("publish", "inUseInterval"), d.Duration.String(), "must be positive"))
	}
	return errs
}

func validateFlags(f *Flags, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.MigStrategy != nil {
		switch *f.MigStrategy {
		case MIGStrategyNone, MIGStrategySingle, MIGStrategyMixed:
		default:
			errs = append(errs, field.NotSupported(p.Child("migStrategy"), *f.MigStrategy,
				[]string{MIGStrategyNone, MIGStrategySingle, MIGStrategyMixed}))
		}
	}
	if f.Plugin != nil {
		pp := p.Child("plugin")
		if s := f.Plugin.DeviceListStrategy; s != nil && *s != defaultDeviceListStrategy {
			errs = append(errs, field.NotSupported(pp.Child("deviceListStrategy"), *s, []string{defaultDeviceListStrategy}))
		}
		if s := f.Plugin.DeviceIDStrategy; s != nil && *s != defaultDeviceIDStrategy {
			errs = append(errs, field.NotSupported(pp.Child("deviceIDStrategy"), *s, []string{defaultDeviceIDStrategy}))
		}
	}
	return errs
}

func validateTimeSlicing(ts *TimeSlicing, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch ts.ReplicaPolicy {
	case ReplicaPolicyPacked, ReplicaPolicySpread:
	default:
		errs = append(errs, field.NotSupported(p.Child("replicaPolicy"), ts.ReplicaPolicy,
			[]string{ReplicaPolicyPacked, ReplicaPolicySpread}))
	}
	names := sets.New[string]()
	for i, r := range ts.Resources {
		rp := p.Child("resources").Index(i)
		if err := validateResourceName(r.Name); err != "" {
			errs = append(errs, field.Invalid(rp.Child("name"), r.Name, err))
		} else if names.Has(r.Name) {
			errs = append(errs, field.Duplicate(rp.Child("name"), r.Name))
		}
		names.Insert(r.Name)
		if r.Rename != "" {
			if err := validateResourceName(r.Rename); err != "" {
				errs = append(errs, field.Invalid(rp.Child("rename"), r.Rename, err))
			}
		}
		if r.Replicas < 1 || r.Replicas > MaxReplicas {
			errs = append(errs, field.Invalid(rp.Child("replicas"), r.Replicas, fmt.Sprintf("must be between 1 and %d", MaxReplicas)))
		}
		for j, idx := range r.Devices.Indexes {
			if idx < 0 {
				errs = append(errs, field.Invalid(rp.Child("devices").Index(j), idx, "a GPU index must not be negative"))
			}
		}
		for j, u := range r.Devices.UUIDs {
			if !strings.HasPrefix(u, "GPU-") && !strings.HasPrefix(u, "MIG-") {
				errs = append(errs, field.Invalid(rp.Child("devices").Index(len(r.Devices.Indexes)+j), u, "want a GPU index or a GPU-/MIG- UUID"))
			}
		}
	}
	return append(errs, validateTargets(ts, p)...)
}

// validateTargets rejects configs under which two different sets of devices
// would be advertised under one resource name (a silent merge): two
// resources renamed to one name, a resource renamed to another configured
// resource's name, or renamed to a name gpupack itself advertises for other
// devices (nvidia.com/gpu, nvidia.com/mig-<profile>). Sharing.Build checks
// the same against the devices a node has.
func validateTargets(ts *TimeSlicing, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]int{}
	for i, r := range ts.Resources {
		if _, dup := names[r.Name]; !dup {
			names[r.Name] = i
		}
	}
	targets := map[string]int{}
	for i := range ts.Resources {
		r := &ts.Resources[i]
		target := ts.Target(r)
		fp := targetPath(p, i, r)
		if j, dup := targets[target]; dup {
			errs = append(errs, field.Invalid(fp, target, fmt.Sprintf(
				"resources[%d] (%s) is advertised as %s too: two resources cannot share one name", j, ts.Resources[j].Name, target)))
			continue
		}
		targets[target] = i
		if target == r.Name {
			continue
		}
		if j, ok := names[target]; ok {
			errs = append(errs, field.Invalid(fp, target, fmt.Sprintf(
				"is the name of resources[%d]: its devices and the renamed replicas would be one resource", j)))
			continue
		}
		if kind := reservedName(target); kind != "" {
			errs = append(errs, field.Invalid(fp, target, fmt.Sprintf(
				"is the resource name of %s: renaming %s into it merges two kinds of devices", kind, r.Name)))
		}
	}
	return errs
}

// targetPath is the field that sets a resource's advertised name.
func targetPath(p *field.Path, i int, r *ReplicatedResource) *field.Path {
	rp := p.Child("resources").Index(i)
	if r.Rename != "" {
		return rp.Child("rename")
	}
	return rp.Child("name")
}

// migProfile matches NVIDIA MIG profile names: 1g.5gb, 1c.2g.10gb,
// 1g.10gb+me, 1g.24gb+gfx, 1g.12gb-me, 1g.20gb+me.all ...
var migProfile = regexp.MustCompile(`^([0-9]+c\.)?[0-9]+g\.[0-9]+gb([+-][a-z]+(\.[a-z]+)*)*$`)

// reservedName says which devices gpupack advertises under name without any
// renaming ("" when none).
func reservedName(name string) string {
	switch {
	case name == ResourceGPU:
		return "whole GPUs (and MIG devices under migStrategy single)"
	case strings.HasPrefix(name, MIGResourcePrefix) && migProfile.MatchString(strings.TrimPrefix(name, MIGResourcePrefix)):
		return "MIG devices of profile " + strings.TrimPrefix(name, MIGResourcePrefix)
	}
	return ""
}

// validateResourceName accepts nvidia.com/gpu, nvidia.com/gpu.shared-like
// names and nvidia.com/mig-<profile>; it returns "" when the name is valid.
func validateResourceName(name string) string {
	if !strings.HasPrefix(name, ResourcePrefix) {
		return "must start with " + ResourcePrefix
	}
	short := strings.TrimPrefix(name, ResourcePrefix)
	if msgs := validation.IsQualifiedName(name); len(msgs) > 0 {
		return strings.Join(msgs, "; ")
	}
	if short == "" {
		return "has no name after the prefix"
	}
	return ""
}

func validateHealth(h *Health, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, x := range h.SkippedXIDs {
		if x == 0 {
			errs = append(errs, field.Invalid(p.Child("skippedXIDs").Index(i), x, "XIDs start at 1"))
		}
	}
	r := &h.Recovery
	rp := p.Child("recovery")
	if r.Checks < 1 {
		errs = append(errs, field.Invalid(rp.Child("checks"), r.Checks, "must be at least 1"))
	}
	if r.Interval != nil && r.Interval.Duration <= 0 {
		errs = append(errs, field.Invalid(rp.Child("interval"), r.Interval.Duration.String(), "must be positive"))
	}
	return errs
}
