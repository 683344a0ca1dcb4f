package v1

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpupack/gpupack/pkg/topology"
)

// MaxReplicas bounds time-slicing replicas per device: the most one
// kubelet ListAndWatch message carries, for a node of one GPU (see
// topology.MaxReplicas for the arithmetic). One limit, checked when the
// config is loaded; the device plugin checks each node's exact
// ListAndWatch size at start and names that node's limit.
const MaxReplicas = topology.MaxReplicas

// maxResourceNameLength is NVIDIA's bound on a fully-qualified resource name.
const maxResourceNameLength = 63

// Supported values, for error messages.
var (
	migStrategies        = []string{MIGStrategyNone, MIGStrategySingle, MIGStrategyMixed}
	deviceListStrategies = []string{DeviceListStrategyEnvvar, DeviceListStrategyVolumeMounts,
		DeviceListStrategyCDIAnnotations, DeviceListStrategyCDICRI}
	deviceIDStrategies  = []string{DeviceIDStrategyUUID, DeviceIDStrategyIndex}
	discoveryStrategies = []string{DeviceDiscoveryAuto, DeviceDiscoveryNVML, DeviceDiscoveryTegra, DeviceDiscoveryWSL}
	allocationPolicies  = []string{"distributed", "packed"}
	replicaPolicies     = []string{ReplicaPolicyPacked, ReplicaPolicySpread}
	// healthEventTypes are the NVML event types NVIDIA's health section names.
	healthEventTypes = []string{EventTypeXidCriticalError, EventTypeDoubleBitEccError, EventTypeSingleBitEccError}
)

// Validate checks a defaulted config and returns every error with its field path.
func Validate(c *Config) field.ErrorList {
	var errs field.ErrorList
	if c.Version != Version {
		errs = append(errs, field.NotSupported(field.NewPath("version"), c.Version, []string{Version}))
	}
	errs = append(errs, validateFlags(&c.Flags, field.NewPath("flags"))...)
	errs = append(errs, validateTimeSlicing(&c.Sharing.TimeSlicing, field.NewPath("sharing", "timeSlicing"))...)
	if c.Sharing.MPS != nil {
		errs = append(errs, validateTimeSlicing(c.Sharing.MPS, field.NewPath("sharing", "mps"))...)
	}
	errs = append(errs, validateMPS(c)...)
	errs = append(errs, validateImex(&c.Imex, field.NewPath("imex"))...)
	errs = append(errs, validateHealth(&c.Health, field.NewPath("health"))...)
	// Each refresh lists the kubelet's PodResources API (rate-limited per
	// node, shared with its other readers) and may patch the Node.
	errs = append(errs, validatePeriod(field.NewPath("publish", "inUseInterval"), c.Publish.InUseInterval)...)
	// A long bad value (a 900 KB resource name) is quoted by its start.
	for _, e := range errs {
		e.BadValue = brief(e.BadValue)
	}
	return errs
}

func oneOf(p *field.Path, v *string, supported []string) field.ErrorList {
	if v == nil || slices.Contains(supported, *v) {
		return nil
	}
	return field.ErrorList{field.NotSupported(p, *v, supported)}
}

// minSleepInterval is the shortest flags.gfd.sleepInterval: each relabel
// applies the Node.
const minSleepInterval = time.Second

// bareNanoseconds explains a duration under a millisecond, which is most
// likely a bare number of seconds read as nanoseconds (sleepInterval: 60),
// suggesting the number with a unit; "" for a longer one.
func bareNanoseconds(d time.Duration) string {
	if d <= 0 || d >= time.Millisecond {
		return ""
	}
	return fmt.Sprintf(" (a bare number is nanoseconds, so %d is %s: write \"%ds\" for %d seconds)", int64(d), d, int64(d), int64(d))
}

func validateFlags(f *Flags, p *field.Path) field.ErrorList {
	errs := oneOf(p.Child("migStrategy"), f.MigStrategy, migStrategies)
	errs = append(errs, oneOf(p.Child("deviceDiscoveryStrategy"), f.DeviceDiscoveryStrategy, discoveryStrategies)...)
	if s := f.DeviceDiscoveryStrategy; s != nil && (*s == DeviceDiscoveryTegra || *s == DeviceDiscoveryWSL) {
		errs = append(errs, field.Invalid(p.Child("deviceDiscoveryStrategy"), *s,
			"gpupack discovers GPUs through NVML only; ignoring this would advertise other devices than NVIDIA's plugin (use auto or nvml)"))
	}
	errs = append(errs, absolutePath(p.Child("nvidiaDriverRoot"), f.NvidiaDriverRoot)...)
	errs = append(errs, absolutePath(p.Child("nvidiaDevRoot"), f.NvidiaDevRoot)...)
	if f.GFD != nil {
		// Read under the host root (--host-root), as GFD reads it under /.
		errs = append(errs, absolutePath(p.Child("gfd", "machineTypeFile"), f.GFD.MachineTypeFile)...)
		// Written by the device plugin at each publication (NFD's local source).
		errs = append(errs, absolutePath(p.Child("gfd", "outputFile"), f.GFD.OutputFile)...)
		switch d := f.GFD.SleepInterval; {
		case d == nil:
		case *d <= 0:
			errs = append(errs, field.Invalid(p.Child("gfd", "sleepInterval"), time.Duration(*d).String(),
				"must be positive (GFD relabels every sleepInterval; oneshot: true publishes once)"))
		case time.Duration(*d) < minSleepInterval:
			// Each relabel is a server-side apply of the Node: 90 (a bare
			// number is nanoseconds, as in NVIDIA's config) would apply
			// the Node as fast as the apiserver answers.
			errs = append(errs, field.Invalid(p.Child("gfd", "sleepInterval"), time.Duration(*d).String(),
				fmt.Sprintf("must be at least %s%s", minSleepInterval, bareNanoseconds(time.Duration(*d)))))
		}
	}
	if f.Plugin == nil {
		return errs
	}
	pp := p.Child("plugin")
	errs = append(errs, absolutePath(pp.Child("containerDriverRoot"), f.Plugin.ContainerDriverRoot)...)
	errs = append(errs, absolutePath(pp.Child("kubeletSocket"), f.Plugin.KubeletSocket)...)
	// The CDI spec's hooks run these; OCI wants a hook's path absolute.
	errs = append(errs, absolutePath(pp.Child("nvidiaCDIHookPath"), f.Plugin.NvidiaCDIHookPath)...)
	errs = append(errs, absolutePath(pp.Child("nvidiaCTKPath"), f.Plugin.NvidiaCTKPath)...)
	// A strategy listed twice is the same strategy: NVIDIA's plugin keeps
	// the list as a set and loads [envvar, envvar].
	if l := f.Plugin.DeviceListStrategy; l != nil {
		if len(*l) == 0 { // "" or []: NVIDIA's plugin refuses both at start
			errs = append(errs, field.Required(pp.Child("deviceListStrategy"),
				fmt.Sprintf("empty: NVIDIA's plugin refuses it; give one or more of %v, or leave the field out for %s", deviceListStrategies, DeviceListStrategyEnvvar)))
		}
		for i, s := range *l {
			if !slices.Contains(deviceListStrategies, s) {
				errs = append(errs, field.NotSupported(pp.Child("deviceListStrategy").Index(i), s, deviceListStrategies))
			}
		}
	}
	errs = append(errs, oneOf(pp.Child("deviceIDStrategy"), f.Plugin.DeviceIDStrategy, deviceIDStrategies)...)
	errs = append(errs, oneOf(pp.Child("sharedDevicesAllocationPolicy"), f.Plugin.SharedDevicesAllocationPolicy, allocationPolicies)...)
	if s := f.Plugin.CDIAnnotationPrefix; s != nil && !strings.HasSuffix(*s, "/") {
		errs = append(errs, field.Invalid(pp.Child("cdiAnnotationPrefix"), *s, "must end in '/' (e.g. cdi.k8s.io/)"))
	}
	return errs
}

// absolutePath refuses a relative root, socket or hook path: it would be
// resolved against the plugin's working directory, and the CDI spec and
// device specs would carry it to the runtime as is (hostPath
// "run/nvidia/driver/dev/nvidia0"). Unset or empty means the default.
func absolutePath(p *field.Path, v *string) field.ErrorList {
	if v == nil || *v == "" || strings.HasPrefix(*v, "/") {
		return nil
	}
	return field.ErrorList{field.Invalid(p, *v, "must be an absolute path")}
}

// UsesCDI reports whether a device list strategy needs the node's CDI spec.
func (f *PluginFlags) UsesCDI() bool {
	return f.DeviceListStrategy != nil &&
		(slices.Contains(*f.DeviceListStrategy, DeviceListStrategyCDIAnnotations) ||
			slices.Contains(*f.DeviceListStrategy, DeviceListStrategyCDICRI))
}

// Includes reports whether the device list strategy s is in force.
func (f *PluginFlags) Includes(s string) bool {
	return f.DeviceListStrategy != nil && slices.Contains(*f.DeviceListStrategy, s)
}

func validateTimeSlicing(ts *TimeSlicing, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ts.Strategy != "" {
		errs = append(errs, field.NotSupported(p.Child("strategy"), ts.Strategy, []string{""}))
	}
	errs = append(errs, oneOf(p.Child("replicaPolicy"), &ts.ReplicaPolicy, replicaPolicies)...)
	names := sets.New[string]()
	for i := range ts.Resources {
		r := &ts.Resources[i]
		rp := p.Child("resources").Index(i)
		if msg := nvidiaResourceName(r.Name); msg != "" {
			errs = append(errs, field.Invalid(rp.Child("name"), r.Name, msg))
		} else if names.Has(r.Name) {
			errs = append(errs, field.Duplicate(rp.Child("name"), r.Name))
		}
		names.Insert(r.Name)
		if r.Rename != "" {
			if msg := nvidiaResourceName(r.Rename); msg != "" {
				errs = append(errs, field.Invalid(rp.Child("rename"), r.Rename, msg))
			}
		}
		if r.GPUPackRename != "" {
			if msg := ownResourceName(r.GPUPackRename); msg != "" {
				errs = append(errs, field.Invalid(rp.Child("gpupackRename"), r.GPUPackRename, msg))
			}
		}
		if r.Replicas < 2 || r.Replicas > MaxReplicas {
			errs = append(errs, field.Invalid(rp.Child("replicas"), r.Replicas, fmt.Sprintf(
				"must be between 2 and %d (NVIDIA's plugin wants at least 2; %d devices are the most one kubelet ListAndWatch message carries; a node with more GPUs carries fewer each, checked at start)",
				MaxReplicas, MaxReplicas)))
		}
		if r.Devices != nil {
			errs = append(errs, validateDeviceRefs(r.Devices, rp.Child("devices"), validUUIDRef)...)
		}
		if r.GPUPackDevices != nil {
			errs = append(errs, validateDeviceRefs(r.GPUPackDevices, rp.Child("gpupackDevices"), DeviceRef.isUUIDPrefixed)...)
			errs = append(errs, duplicateRefs(r.GPUPackDevices, rp.Child("gpupackDevices"))...)
			errs = append(errs, someSharedUnderOwnName(ts, r, rp.Child("gpupackDevices"))...)
			if d := r.GPUPackDevices; !d.All && d.Count == 0 && len(d.List) == 0 {
				// [] would select nothing: the resource's replicas silently off.
				errs = append(errs, field.Invalid(rp.Child("gpupackDevices"), "[]",
					"selects no device, so nothing would be shared: write all, a count or a list of devices, or remove the resource"))
			}
		}
	}
	return append(errs, validateTargets(ts, p)...)
}

// someSharedUnderOwnName refuses gpupackDevices selecting devices (a count
// or a list, not all) of a resource whose replicas keep the resource's own
// name: the devices not selected stay whole under that name, so the node
// would serve whole devices and replicas as one resource, which the
// kubelet counts as one kind of device and the node publishes to the
// scheduler as one kind. NVIDIA's plugin shares every device of the
// resource (it ignores `devices`), so there the name holds replicas only;
// gpupack's selection needs the replicas under a name of their own
// (renameByDefault or gpupackRename), as renaming them into the name of
// other devices is refused (validateTargets). A count or a list may happen
// to select every device of a node: refused all the same, so that one
// fleet-wide file means the same on every node.
func someSharedUnderOwnName(ts *TimeSlicing, r *ReplicatedResource, p *field.Path) field.ErrorList {
	sel := r.GPUPackDevices
	if sel == nil || sel.All || (sel.Count == 0 && len(sel.List) == 0) || ts.Target(r) != r.Name {
		return nil
	}
	msg := fmt.Sprintf("shares only the devices it selects of %s and the others stay whole under that name: "+
		"without a rename the replicas and the whole devices would be one resource, which the kubelet and the scheduler count as one kind of device; "+
		"set renameByDefault: true or gpupackRename to give the replicas a name of their own, "+
		"or write all (or leave gpupackDevices out) to share every device, as NVIDIA's plugin does", r.Name)
	if r.Rename != "" {
		msg += " (NVIDIA's rename is ignored, as NVIDIA's plugin ignores it: gpupack's is gpupackRename)"
	}
	return field.ErrorList{field.Invalid(p, SelectionValue(sel), msg)}
}

// SelectionValue is a device selection as an error quotes it: the count,
// or the list as written.
func SelectionValue(d *ReplicatedDevices) any {
	switch {
	case d.Count > 0:
		return d.Count
	case d.All || len(d.List) == 0:
		return "all"
	}
	refs := make([]string, len(d.List))
	for i, ref := range d.List {
		refs[i] = string(ref)
	}
	return "[" + strings.Join(refs, ", ") + "]"
}

// validateDeviceRefs accepts GPU indexes, MIG indexes "<gpu>:<mig>" and
// the UUIDs uuidOK accepts: for NVIDIA's `devices`, what NVIDIA's decoder
// accepts (GPU-<uuid>, MIG-<uuid>, MIG-GPU-<uuid>/<gi>/<ci>); for
// gpupackDevices any GPU-/MIG- name (checked against the node at start).
func validateDeviceRefs[R ~string](d *ReplicatedDevices, p *field.Path, uuidOK func(R) bool) field.ErrorList {
	var errs field.ErrorList
	for j, ref := range d.List {
		if _, ok := ref.GPUIndex(); ok {
			continue
		}
		if _, _, ok := ref.MIGIndex(); ok {
			continue
		}
		if uuidOK(R(ref)) {
			continue
		}
		errs = append(errs, field.Invalid(p.Index(j), string(ref),
			"want a GPU index, a MIG index <gpu>:<mig>, a GPU-<uuid> or a MIG-<uuid>"))
	}
	return errs
}

// duplicateRefs refuses a device named twice in gpupack's own lists (a
// typo for another device, most likely); NVIDIA's `devices` keeps its
// decoder's leniency.
func duplicateRefs(d *ReplicatedDevices, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[DeviceRef]bool{}
	for j, ref := range d.List {
		if seen[ref] {
			errs = append(errs, field.Duplicate(p.Index(j), string(ref)))
		}
		seen[ref] = true
	}
	return errs
}

func (r DeviceRef) isUUIDPrefixed() bool { return r.IsUUID() && len(r) > len("GPU-") }

func validUUIDRef(s string) bool {
	if rest, ok := strings.CutPrefix(s, "GPU-"); ok {
		return uuid.Validate(rest) == nil
	}
	rest, ok := strings.CutPrefix(s, "MIG-")
	if !ok {
		return false
	}
	if uuid.Validate(rest) == nil {
		return true
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || !validUUIDRef(parts[0]) || !strings.HasPrefix(parts[0], "GPU-") {
		return false
	}
	for _, n := range parts[1:] {
		if _, err := strconv.ParseUint(n, 10, 31); err != nil {
			return false
		}
	}
	return true
}

// validateTargets rejects configs under which two different sets of devices
// would be advertised under one resource name (a silent merge): two
// resources renamed to one name, a resource renamed to another configured
// resource's name, or renamed to a name gpupack itself advertises for other
// devices (nvidia.com/gpu, nvidia.com/mig-<profile>). sharing.Build checks
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
		fp := TargetPath(p, i, r)
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

// TargetPath is the field that sets a resource's advertised name.
func TargetPath(p *field.Path, i int, r *ReplicatedResource) *field.Path {
	rp := p.Child("resources").Index(i)
	if r.GPUPackRename != "" {
		return rp.Child("gpupackRename")
	}
	return rp.Child("name")
}

// reservedName says which devices gpupack advertises under name without any
// renaming ("" when none).
func reservedName(name string) string {
	switch {
	case name == ResourceGPU:
		return "whole GPUs (and MIG devices under migStrategy single)"
	case strings.HasPrefix(name, MIGResourcePrefix) && topology.IsMIGProfileName(strings.TrimPrefix(name, MIGResourcePrefix)):
		return "MIG devices of profile " + strings.TrimPrefix(name, MIGResourcePrefix)
	}
	return ""
}

// QualifyResourceName gives a resource name NVIDIA's prefix when it has
// none, as NVIDIA's plugin does ("gpu" means nvidia.com/gpu).
func QualifyResourceName(n string) string {
	if n == "" || strings.HasPrefix(n, ResourcePrefix) {
		return n
	}
	return ResourcePrefix + n
}

// nvidiaResourceName checks a resource name as NVIDIA's plugin does: at
// most 63 characters, a DNS subdomain after the prefix. "" when valid.
func nvidiaResourceName(name string) string {
	if !strings.HasPrefix(name, ResourcePrefix) {
		return "must start with " + ResourcePrefix
	}
	if len(name) > maxResourceNameLength {
		return fmt.Sprintf("must be at most %d characters", maxResourceNameLength)
	}
	rest := strings.TrimPrefix(name, ResourcePrefix)
	if msgs := validation.IsDNS1123Subdomain(rest); len(msgs) > 0 {
		return resourceNameHint(rest) + strings.Join(msgs, "; ")
	}
	return ""
}

// resourceNameHint says what most likely went wrong with an invalid name
// (rest: the part after nvidia.com/), "" when nothing specific: another
// vendor's prefix, which qualifyNames has put after nvidia.com/ as NVIDIA's
// plugin does (amd.com/gpu reads as nvidia.com/amd.com/gpu); a MIG
// profile's '+', which resource names write '.'; no name at all.
func resourceNameHint(rest string) string {
	switch {
	case rest == "":
		return "has no name after " + ResourcePrefix + ": "
	case strings.Contains(rest, "/"):
		prefix, _, _ := strings.Cut(rest, "/")
		return fmt.Sprintf("has another prefix than %s (%s/): a name without %s gets it, as in NVIDIA's plugin, "+
			"and gpupack serves %s resources only: ", ResourcePrefix, prefix, ResourcePrefix, ResourcePrefix)
	case strings.HasPrefix(rest, "mig-") && strings.Contains(rest, "+"):
		return fmt.Sprintf("a MIG resource writes the profile's '+' as '.' (as NVIDIA's plugin names it: %s): ",
			MIGResourceName(strings.TrimPrefix(rest, "mig-")))
	}
	return ""
}

// ownResourceName checks gpupackRename: a qualified name under nvidia.com/
// (a bare name has the prefix by then: qualifyNames).
func ownResourceName(name string) string {
	if !strings.HasPrefix(name, ResourcePrefix) {
		return "must be a resource under " + ResourcePrefix + ", the only prefix gpupack advertises: " +
			"write the name alone (gpu.small means " + ResourcePrefix + "gpu.small, as in name) or with " + ResourcePrefix
	}
	if strings.TrimPrefix(name, ResourcePrefix) == "" {
		return "has no name after the prefix"
	}
	if msgs := validation.IsQualifiedName(name); len(msgs) > 0 {
		return strings.Join(msgs, "; ")
	}
	return ""
}

func validateImex(im *Imex, p *field.Path) field.ErrorList {
	if len(im.ChannelIDs) == 0 || (len(im.ChannelIDs) == 1 && im.ChannelIDs[0] == 0) {
		return nil
	}
	return field.ErrorList{field.Invalid(p.Child("channelIDs"), im.ChannelIDs, "must be [] or [0], as in NVIDIA's plugin")}
}

// xidsFromOne refuses XID 0 in a list of XIDs: no XID 0 ever comes, so a
// 0 listed is a slip that would silently mean nothing.
func xidsFromOne(p *field.Path, xids []uint64) field.ErrorList {
	var errs field.ErrorList
	for i, x := range xids {
		if x == 0 {
			errs = append(errs, field.Invalid(p.Index(i), x, "XIDs start at 1"))
		}
	}
	return errs
}

func validateHealth(h *Health, p *field.Path) field.ErrorList {
	// skippedXIDs is ignoredXIDs' copy when only ignoredXIDs was given: its
	// XID 0 is reported where it was written.
	fromIgnored := len(h.IgnoredXIDs) > 0 && slices.Equal(sortedCopy(h.IgnoredXIDs), sortedCopy(h.SkippedXIDs))
	errs := xidsFromOne(p.Child("ignoredXIDs"), h.IgnoredXIDs)
	if !fromIgnored {
		errs = append(errs, xidsFromOne(p.Child("skippedXIDs"), h.SkippedXIDs)...)
	}
	if len(h.IgnoredXIDs) > 0 && !slices.Equal(sortedCopy(h.IgnoredXIDs), sortedCopy(h.SkippedXIDs)) {
		errs = append(errs, field.Invalid(p.Child("ignoredXIDs"), h.IgnoredXIDs,
			"NVIDIA's name for skippedXIDs: give one of the two, or the same list in both"))
	}
	for i, e := range h.EventTypes {
		if !slices.Contains(healthEventTypes, e) {
			errs = append(errs, field.NotSupported(p.Child("eventTypes").Index(i), e, healthEventTypes))
		}
	}
	if c := h.CriticalXIDs; c != nil && !c.All {
		errs = append(errs, xidsFromOne(p.Child("criticalXIDs"), c.XIDs)...)
		for _, x := range c.XIDs {
			if slices.Contains(h.SkippedXIDs, x) {
				errs = append(errs, field.Invalid(p.Child("criticalXIDs"), x, "is skipped (ignoredXIDs/skippedXIDs) too"))
			}
		}
	}
	r := &h.Recovery
	rp := p.Child("recovery")
	// Checks is a pointer: a 0 written in the file is here, not defaulted.
	if r.Checks != nil && *r.Checks < 1 {
		errs = append(errs, field.Invalid(rp.Child("checks"), *r.Checks,
			"must be at least 1: an unhealthy GPU is served again after this many consecutive passing checks "+
				"(to keep unhealthy GPUs out until the plugin restarts, as NVIDIA's plugin does, set health.recovery.enabled: false)"))
	}
	// Each tick wakes the health loop to probe the unhealthy (or, with
	// recovery off, the degraded) GPUs through NVML.
	errs = append(errs, validatePeriod(rp.Child("interval"), r.Interval)...)
	return errs
}

// minPeriod is the shortest period of the plugin's own loops
// (publish.inUseInterval, health.recovery.interval): a ticker of 1ns
// fires as fast as it is read, a busy loop.
const minPeriod = time.Second

// validatePeriod checks a loop's period d (nil: the default): positive,
// and at least minPeriod.
func validatePeriod(p *field.Path, d *metav1.Duration) field.ErrorList {
	switch {
	case d == nil:
		return nil
	case d.Duration <= 0:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be positive")}
	case d.Duration < minPeriod:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), fmt.Sprintf("must be at least %s: a shorter period makes the loop it paces busy", minPeriod))}
	}
	return nil
}

func sortedCopy(in []uint64) []uint64 {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}
