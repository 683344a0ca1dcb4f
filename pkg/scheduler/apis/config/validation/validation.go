// Package validation validates GPUPackArgs, returning every error with its
// field path.
package validation

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agnivade/levenshtein"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/topology"
)

// MaxWeight bounds the score weights.
const MaxWeight = 100

// MaxMIGDevices bounds a MIG task type's device count: the most MIG devices
// a node can hold (topology.MaxGPUs GPUs x topology.MaxMIGSlices slices).
const MaxMIGDevices = topology.MaxGPUs * topology.MaxMIGSlices

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
	errs = append(errs, validateResourceName(path.Child("wholeResource"), args.WholeResource)...)
	errs = append(errs, validateResourceName(path.Child("sharedResource"), args.SharedResource)...)
	errs = append(errs, validateMIGPrefix(path.Child("migResourcePrefix"), args)...)
	if args.WholeResource != "" && args.WholeResource == args.SharedResource {
		errs = append(errs, field.Invalid(path.Child("sharedResource"), args.SharedResource, "must differ from wholeResource"))
	}
	if !slices.Contains(config.SupportedReplicaPolicies, args.ReplicaPolicy) {
		errs = append(errs, field.NotSupported(path.Child("replicaPolicy"), args.ReplicaPolicy, config.SupportedReplicaPolicies))
	}
	if !slices.Contains(config.SupportedTopologyHints, args.DefaultTopology) {
		errs = append(errs, field.NotSupported(path.Child("defaultTopology"), args.DefaultTopology, config.SupportedTopologyHints))
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
		errs = append(errs, validateTaskType(pp, p)...)
		if p.Weight < 0 {
			errs = append(errs, field.Invalid(pp.Child("weight"), p.Weight, "must be >= 0"))
		}
		total += int64(p.Weight)
	}
	if len(w.Prior) > 0 && total <= 0 {
		errs = append(errs, field.Invalid(path.Child("prior"), total, "weights must add up to more than 0 (each entry's weight is its relative popularity; an entry without one weighs 0)"))
	}
	return errs
}

// validateTaskType checks one prior entry field by field: kind, then the
// fields of its kind (count for whole and mig, milli for shared, migProfile
// for mig); a field of another kind is refused rather than ignored.
func validateTaskType(pp *field.Path, p config.TaskTypeWeight) field.ErrorList {
	if !slices.Contains(config.SupportedTaskKinds, p.Kind) {
		return field.ErrorList{field.NotSupported(pp.Child("kind"), p.Kind, config.SupportedTaskKinds)}
	}
	var errs field.ErrorList
	only := func(name, kinds string) *field.Error {
		return field.Forbidden(pp.Child(name), fmt.Sprintf("only for kind %s (this entry is %s)", kinds, p.Kind))
	}
	switch p.Kind {
	case config.TaskWhole:
		if p.Count < 1 || p.Count > topology.MaxGPUs {
			errs = append(errs, field.Invalid(pp.Child("count"), p.Count, fmt.Sprintf("must be in 1..%d (GPUs of one task)", topology.MaxGPUs)))
		}
	case config.TaskShared:
		if p.Milli < 1 || p.Milli > topology.MilliPerGPU {
			errs = append(errs, field.Invalid(pp.Child("milli"), p.Milli, fmt.Sprintf("must be in 1..%d (thousandths of one GPU)", topology.MilliPerGPU)))
		}
		if p.Count != 0 && p.Count != 1 {
			errs = append(errs, field.Invalid(pp.Child("count"), p.Count, "a shared task type is a share of one GPU: leave count out (or 1)"))
		}
	case config.TaskMIG:
		switch {
		case p.MIGProfile == "":
			errs = append(errs, field.Required(pp.Child("migProfile"), "a MIG profile such as 1g.10gb"))
		case !topology.IsMIGProfileName(p.MIGProfile):
			// Profiles are compared exactly: a typo would be a weight
			// that never matches a request.
			errs = append(errs, field.Invalid(pp.Child("migProfile"), p.MIGProfile, "not a MIG profile name as NVIDIA writes them (<n>g.<m>gb, lower case: 1g.10gb, 1c.2g.20gb)"))
		default:
			// The resource name writes '+' as '.' (NVIDIA's mixed
			// strategy; pkg/config/v1 MIGResourceName): 1g.10gb+me is
			// served as nvidia.com/mig-1g.10gb.me.
			for _, msg := range validation.IsQualifiedName("nvidia.com/mig-" + strings.ReplaceAll(p.MIGProfile, "+", ".")) {
				errs = append(errs, field.Invalid(pp.Child("migProfile"), p.MIGProfile, "not usable in a resource name: "+msg))
			}
		}
		if p.Count < 1 || p.Count > MaxMIGDevices {
			// 64 GPUs x 8 memory slices: more MIG devices than any node holds.
			errs = append(errs, field.Invalid(pp.Child("count"), p.Count, fmt.Sprintf("must be in 1..%d (MIG devices a node can hold)", MaxMIGDevices)))
		}
	}
	if p.Milli != 0 && p.Kind != config.TaskShared {
		errs = append(errs, only("milli", string(config.TaskShared)))
	}
	if p.MIGProfile != "" && p.Kind != config.TaskMIG {
		errs = append(errs, only("migProfile", string(config.TaskMIG)))
	}
	if msg := modelProblem(p.Model); msg != "" {
		errs = append(errs, field.Invalid(pp.Child("model"), p.Model, msg))
	}
	if len(errs) > 0 {
		return errs
	}
	// Anything else pkg/score refuses (its rules are the source).
	t, err := p.TaskType()
	if err == nil {
		err = t.Validate()
	}
	if err != nil {
		errs = append(errs, field.Invalid(pp, p, err.Error()))
	}
	return errs
}

// validateResourceName checks an extended resource name as the apiserver
// does for a container's resources (topology.ResourceNameErrors).
func validateResourceName(path *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, "an extended resource name such as nvidia.com/gpu")}
	}
	var errs field.ErrorList
	for _, msg := range topology.ResourceNameErrors(name) {
		errs = append(errs, field.Invalid(path, name, msg))
	}
	return errs
}

// validateMIGPrefix checks the MIG resource prefix: <domain>/<start>, with a
// non-empty start (a bare "nvidia.com/" would claim every nvidia.com
// resource as MIG), that forms a valid resource name with a profile and does
// not claim the whole or shared resource.
func validateMIGPrefix(path *field.Path, args *config.GPUPackArgs) field.ErrorList {
	p := args.MIGResourcePrefix
	domain, start, ok := strings.Cut(p, "/")
	if p == "" || !ok || domain == "" || start == "" {
		return field.ErrorList{field.Invalid(path, p, "must be <domain>/<name start>, e.g. nvidia.com/mig-: a bare domain would claim every resource of the domain")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(p + "1g.5gb") {
		errs = append(errs, field.Invalid(path, p, "with a profile (e.g. 1g.5gb) it must form a valid resource name: "+msg))
	}
	for _, r := range []struct{ name, v string }{{"wholeResource", args.WholeResource}, {"sharedResource", args.SharedResource}} {
		if r.v != "" && strings.HasPrefix(r.v, p) {
			errs = append(errs, field.Invalid(path, p, fmt.Sprintf("claims %s %q as a MIG resource", r.name, r.v)))
		}
	}
	return errs
}

// ValidatePluginConfigNames checks the pluginConfig entries of every
// profile of a loaded KubeSchedulerConfiguration, which kube-scheduler
// itself lets pass: an entry for a plugin this scheduler does not have
// (`name: GPUpack`, `name: GPUPackArgs`) would be ignored, and GPUPack's
// args in a profile that does not enable GPUPack too, so the settings a
// user wrote would silently not apply. registered are the plugin names of
// the scheduler's registry.
func ValidatePluginConfigNames(cfg *schedconfig.KubeSchedulerConfiguration, registered []string) field.ErrorList {
	var errs field.ErrorList
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		pp := field.NewPath("profiles").Index(i)
		for j, pc := range p.PluginConfig {
			path := pp.Child("pluginConfig").Index(j).Child("name")
			switch {
			case !slices.Contains(registered, pc.Name):
				errs = append(errs, field.Invalid(path, pc.Name, "this scheduler has no plugin of that name, so these args would be ignored"+didYouMean(pc.Name, registered)))
			case pc.Name == pluginName && !enabledIn(p.Plugins, pluginName):
				errs = append(errs, field.Invalid(path, pc.Name, fmt.Sprintf("profile %q does not enable %s, so these args would be ignored: enable it (multiPoint) or move the args to the profile that does", p.SchedulerName, pluginName)))
			}
		}
	}
	return errs
}

// ValidateScoreWeights refuses a negative score weight written for GPUPack
// (multiPoint or score) in any profile. kube-scheduler accepts any int32
// weight and turns 0 into 1, but multiplies a negative one into GPUPack's
// 0..100 score as it is: the node with the most fragmentation and the
// worst GPU set would rank first, or, listed under score before other
// scorers, the profile fails kube-scheduler's overflow check with a
// message that names neither the plugin nor the weight. The path names
// the plugin by key: the loaded configuration's lists hold kube-scheduler's
// default plugins before those of the file.
func ValidateScoreWeights(cfg *schedconfig.KubeSchedulerConfiguration) field.ErrorList {
	var errs field.ErrorList
	for i := range cfg.Profiles {
		p := cfg.Profiles[i].Plugins
		if p == nil {
			continue
		}
		pp := field.NewPath("profiles").Index(i).Child("plugins")
		for _, set := range []struct {
			name string
			set  schedconfig.PluginSet
		}{{"multiPoint", p.MultiPoint}, {"score", p.Score}} {
			errs = append(errs, negativeWeights(pp.Child(set.name, "enabled"), set.set)...)
		}
	}
	return errs
}

// negativeWeights are GPUPack's entries of set with a negative weight.
func negativeWeights(path *field.Path, set schedconfig.PluginSet) field.ErrorList {
	var errs field.ErrorList
	for _, q := range set.Enabled {
		if q.Name == pluginName && q.Weight < 0 {
			errs = append(errs, field.Invalid(path.Key(pluginName).Child("weight"), q.Weight, fmt.Sprintf(
				"%s's score weight must not be negative: it would rank the nodes with the most fragmentation and the worst GPU sets first; "+
					"give a positive weight (0 is taken as 1), or disable %s at score to leave ranking to the other plugins", pluginName, pluginName)))
		}
	}
	return errs
}

// pluginName is the GPUPack plugin's name (pkg/scheduler/gpupack.Name,
// which imports this package).
const pluginName = "GPUPack"

// enabledIn reports whether any extension point of plugins (multiPoint
// included) enables name.
func enabledIn(plugins *schedconfig.Plugins, name string) bool {
	if plugins == nil {
		return false
	}
	v := reflect.ValueOf(plugins).Elem()
	for i := range v.NumField() {
		set, ok := v.Field(i).Interface().(schedconfig.PluginSet)
		if ok && slices.ContainsFunc(set.Enabled, func(p schedconfig.Plugin) bool { return p.Name == name }) {
			return true
		}
	}
	return false
}

// didYouMean names the registered plugin a mistyped name most likely
// meant: the same but for case or an "Args" suffix, or within two edits.
func didYouMean(name string, registered []string) string {
	norm := func(s string) string { return strings.TrimSuffix(strings.ToLower(s), "args") }
	best, bestDist := "", 3
	for _, r := range registered {
		d := levenshtein.ComputeDistance(norm(name), norm(r))
		if d < bestDist || (d == bestDist && r < best) {
			best, bestDist = r, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// ValidateExtenderBinders refuses an extender that would bind GPU pods in
// place of GPUPack. kube-scheduler lets a binding extender (bindVerb set)
// bind every pod it is interested in instead of the bind plugins, so
// GPUPack's Bind would never write the pod's devices: the device plugin
// would not learn the scheduler's choice. An extender is interested in
// every pod when it manages no resources, and otherwise in the pods that
// ask one of its managedResources; gpuResource reports whether a resource
// name is one GPUPack places (its args' names, the defaults'). Checked
// only when a profile enables GPUPack. Names only nodes publish (their
// resource tables) are not known here: the plugin's PreFilter refuses the
// GPU pods a binding extender is interested in.
func ValidateExtenderBinders(cfg *schedconfig.KubeSchedulerConfiguration, gpuResource func(string) bool) field.ErrorList {
	if !slices.ContainsFunc(cfg.Profiles, func(p schedconfig.KubeSchedulerProfile) bool { return enabledIn(p.Plugins, pluginName) }) {
		return nil
	}
	var errs field.ErrorList
	for i, e := range cfg.Extenders {
		if e.BindVerb == "" {
			continue
		}
		path := field.NewPath("extenders").Index(i)
		if len(e.ManagedResources) == 0 {
			errs = append(errs, field.Invalid(path.Child("bindVerb"), e.BindVerb, fmt.Sprintf(
				"this extender manages no resources, so it binds every pod, GPU pods too, in place of %s, which writes their devices into the binding: "+
					"list the resources it is for (managedResources) or leave binding to the bind plugins", pluginName)))
			continue
		}
		for j, r := range e.ManagedResources {
			if gpuResource(r.Name) {
				errs = append(errs, field.Invalid(path.Child("managedResources").Index(j).Child("name"), r.Name, fmt.Sprintf(
					"this extender binds (bindVerb %q) the pods asking it, in place of %s, which writes their devices into the binding", e.BindVerb, pluginName)))
			}
		}
	}
	return errs
}

// ValidateResourceKinds refuses profiles whose GPUPack args give one
// resource name different kinds of device: whole GPUs in one profile and
// time-shared replicas or MIG devices in another, or MIG prefixes that
// read one name as different profiles (nvidia.com/mig- and
// nvidia.com/mig-1g). The profiles share one cache of the devices in use,
// which reads a pod bound by another scheduler by the first profile's
// names on a node without a resource table: under the other profile's
// reading the pod would hold nothing and its GPUs would be given again.
// cfg is a loaded (defaulted) configuration: every profile that enables
// GPUPack has its args.
func ValidateResourceKinds(cfg *schedconfig.KubeSchedulerConfiguration) field.ErrorList {
	type reading struct {
		profile string
		path    *field.Path
		args    *config.GPUPackArgs
	}
	var readings []reading
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		if !enabledIn(p.Plugins, pluginName) {
			continue
		}
		for _, pc := range p.PluginConfig {
			if a, ok := pc.Args.(*config.GPUPackArgs); ok && pc.Name == pluginName {
				// By name: a profile that gives no args has the defaults
				// appended at an index the file does not have.
				path := field.NewPath("profiles").Index(i).Child("pluginConfig").Key(pluginName).Child("args")
				readings = append(readings, reading{p.SchedulerName, path, a})
			}
		}
	}
	var errs field.ErrorList
	for i, b := range readings {
		for _, a := range readings[:i] {
			errs = append(errs, kindConflicts(b.path, b.args, a.profile, a.args)...)
		}
	}
	return errs
}

// kindConflicts are the names args (at path) reads as another kind of
// device than other, profile's args, do.
func kindConflicts(path *field.Path, args *config.GPUPackArgs, profile string, other *config.GPUPackArgs) field.ErrorList {
	type name struct{ field, value, kind string }
	kindIn := func(a *config.GPUPackArgs, v string) string {
		switch {
		case v == a.WholeResource:
			return "whole GPUs (wholeResource)"
		case v == a.SharedResource:
			return "time-shared replicas (sharedResource)"
		case a.MIGResourcePrefix != "" && strings.HasPrefix(v, a.MIGResourcePrefix):
			return "MIG devices (migResourcePrefix " + a.MIGResourcePrefix + ")"
		}
		return ""
	}
	const why = "one name must mean one kind of device in every profile, since the profiles share the scheduler's record of the devices in use"
	var errs field.ErrorList
	for _, n := range []name{{"wholeResource", args.WholeResource, kindIn(args, args.WholeResource)}, {"sharedResource", args.SharedResource, kindIn(args, args.SharedResource)}} {
		if k := kindIn(other, n.value); k != "" && k != n.kind {
			errs = append(errs, field.Invalid(path.Child(n.field), n.value, fmt.Sprintf("profile %q reads it as %s: %s", profile, k, why)))
		}
	}
	p, q := args.MIGResourcePrefix, other.MIGResourcePrefix
	for _, v := range []struct{ field, value string }{{"wholeResource", other.WholeResource}, {"sharedResource", other.SharedResource}} {
		if p != "" && strings.HasPrefix(v.value, p) {
			errs = append(errs, field.Invalid(path.Child("migResourcePrefix"), p, fmt.Sprintf("claims %q, which profile %q reads as %s: %s", v.value, profile, kindIn(other, v.value), why)))
		}
	}
	if p != q && p != "" && q != "" && (strings.HasPrefix(p, q) || strings.HasPrefix(q, p)) {
		errs = append(errs, field.Invalid(path.Child("migResourcePrefix"), p, fmt.Sprintf("overlaps profile %q's migResourcePrefix %q, so one MIG resource would name two profiles: %s", profile, q, why)))
	}
	return errs
}

// MaxModelBytes bounds a task type's GPU model name (NVML's device names
// are under 96 bytes).
const MaxModelBytes = 256

// modelProblem says what is wrong with a task type's GPU model, "" when
// nothing is: one name or several joined by "|", each as the device plugin
// publishes it (gpupack.io/topology's gpus[].model, NVML's device name such
// as "NVIDIA A100-SXM4-80GB"), so text without control characters, no
// padding blanks, no empty alternative. pkg/score compares each alternative
// exactly: "A100 | H100" would match no GPU and the entry's weight would
// never apply. Which models exist is the cluster's: a model no node has is a
// task type that fits nowhere.
func modelProblem(m string) string {
	switch {
	case m == "":
		return ""
	case len(m) > MaxModelBytes:
		return fmt.Sprintf("longer than %d bytes", MaxModelBytes)
	case !utf8.ValidString(m) || strings.ContainsFunc(m, unicode.IsControl):
		return "not text: a control character or invalid UTF-8"
	}
	alts := strings.Split(m, "|")
	var names []string
	for _, a := range alts {
		if t := strings.TrimSpace(a); t != "" {
			names = append(names, t)
		}
	}
	write := "leave model out (any model) or write a model name"
	if len(names) > 0 {
		write = fmt.Sprintf("write %q", strings.Join(names, "|"))
	}
	const exact = "GPU models are compared exactly, as the device plugin publishes them (gpupack.io/topology gpus[].model)"
	for _, a := range alts {
		switch {
		case a == "":
			return fmt.Sprintf(`an empty alternative (nothing before, after or between "|"): %s`, write)
		case len(alts) == 1 && strings.TrimSpace(a) != a:
			return fmt.Sprintf("leading or trailing blanks: %s: %s", exact, write)
		case strings.TrimSpace(a) != a:
			return fmt.Sprintf(`leading or trailing blanks in the alternative %q: %s, so it would match no GPU: %s (models joined by "|" without blanks)`, a, exact, write)
		}
	}
	return ""
}
