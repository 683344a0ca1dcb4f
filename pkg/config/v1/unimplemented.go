package v1

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Unimplemented lists the NVIDIA fields that are set in c but have no
// effect in gpupack: one warning per field, naming its path. A field whose
// absence would change the devices advertised (compared with NVIDIA's
// plugin reading the same file) is an error instead. A field NVIDIA's
// plugin ignores too, but whose absence means the node does not advertise
// what the field asks for (resources renamed by pattern, a resource's
// rename or devices, a sharing section beside another), is a warning
// marked NotServed.
func Unimplemented(c *Config) (Warnings, field.ErrorList) {
	var warnings Warnings
	var errs field.ErrorList
	add := func(kind WarningKind, notServed bool, p *field.Path, why string) {
		warnings = append(warnings, Warning{Kind: kind, Field: p.String(), Message: why, NotServed: notServed})
	}
	// warn: ignored, nothing advertised depends on it.
	warn := func(p *field.Path, why string) { add(WarningIgnoredField, false, p, why) }
	// notServed: ignored, and what it asks to advertise is not advertised.
	notServed := func(p *field.Path, why string) { add(WarningIgnoredField, true, p, why) }
	f := &c.Flags
	fp := field.NewPath("flags")
	if p := f.ResourceNamePrefix; p != nil && *p != "" && *p != DefaultResourceNamePrefix {
		errs = append(errs, field.NotSupported(fp.Child("resourceNamePrefix"), *p, []string{DefaultResourceNamePrefix}))
		errs[len(errs)-1].Detail += "; gpupack advertises under " + DefaultResourceNamePrefix +
			" only (NVIDIA's plugin would advertise " + *p + "/gpu, and pods asking for it would not be served)"
	}
	if f.UseNodeFeatureAPI != nil {
		warn(fp.Child("useNodeFeatureAPI"), "ignored: a GPU Feature Discovery setting; gpupack writes its labels on the Node itself")
	}
	if pf := f.Plugin; pf != nil {
		pp := fp.Child("plugin")
		if pf.CDIFeatureFlags != nil && len(*pf.CDIFeatureFlags) > 0 {
			warn(pp.Child("cdiFeatureFlags"), "ignored")
		}
		if pf.SharedDevicesAllocationPolicy != nil {
			warn(pp.Child("sharedDevicesAllocationPolicy"), "ignored: gpupack places replicas by sharing.timeSlicing.replicaPolicy and the scheduler's choice")
		}
	}
	rp := field.NewPath("resources")
	if len(c.Resources.GPUs) > 0 {
		notServed(rp.Child("gpus"), "ignored, as NVIDIA's plugin ignores it: resource renaming by pattern (GPUs are advertised as nvidia.com/gpu)")
	}
	if len(c.Resources.MIGs) > 0 {
		notServed(rp.Child("mig"), "ignored, as NVIDIA's plugin ignores it: resource renaming by pattern (MIG devices are advertised as nvidia.com/mig-<profile>)")
	}
	for _, ts := range []struct {
		s *TimeSlicing
		p *field.Path
	}{{&c.Sharing.TimeSlicing, field.NewPath("sharing", "timeSlicing")}, {c.Sharing.MPS, field.NewPath("sharing", "mps")}} {
		if ts.s == nil {
			continue
		}
		for i := range ts.s.Resources {
			r := &ts.s.Resources[i]
			rp := ts.p.Child("resources").Index(i)
			if r.Rename != "" {
				notServed(rp.Child("rename"), "ignored, as NVIDIA's plugin ignores it (replicas are advertised as name, or name.shared with renameByDefault); gpupack's own field is gpupackRename")
			}
			if r.Devices != nil && !r.Devices.All {
				notServed(rp.Child("devices"), "ignored, as NVIDIA's plugin ignores it (every device of the resource is shared); gpupack's own field is gpupackDevices")
			}
		}
	}
	if m := c.Sharing.MPS; m != nil {
		mp := field.NewPath("sharing", "mps")
		if len(m.Resources) == 0 {
			add(WarningNoEffect, true, mp, "no resources to share: nothing is shared, and sharing.timeSlicing is ignored beside it (NVIDIA's plugin refuses to start on an empty sharing.mps)")
		}
		if len(c.Sharing.TimeSlicing.Resources) > 0 {
			notServed(field.NewPath("sharing", "timeSlicing"), "ignored, as NVIDIA's plugin ignores it when sharing.mps is set: the MPS section is the one in force")
		}
		if m.ReplicaPolicy == ReplicaPolicySpread {
			add(WarningNoEffect, false, mp.Child("replicaPolicy"), "no effect: an MPS request gets one replica (failRequestsGreaterThanOne is always true under MPS)")
		}
	}
	return warnings, errs
}
