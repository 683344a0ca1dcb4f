package sharing

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxReplicas bounds time-slicing replicas per device.
const MaxReplicas = 1024

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
	return errs
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
