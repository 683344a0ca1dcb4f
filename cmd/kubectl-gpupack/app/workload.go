package app

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation/field"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	configv1 "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config/validation"
	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
	"github.com/gpupack/gpupack/pkg/score"
)

// defaultProfile is the GPUPack profile's schedulerName in
// manifests/scheduler and the chart (scheduler.schedulerName): the profile
// explain assumes without --scheduler-config.
const defaultProfile = "gpupack-scheduler"

// defaultPriorSource names the workload of the plugin's default args.
const defaultPriorSource = "GPUPack's default prior (args workload.prior)"

// argsFlags choose the GPUPack args, and so the workload, that nodes, frag
// and explain assume: the scheduler's own configuration file, a prior of
// its own, or the plugin's defaults.
type argsFlags struct {
	// schedulerConfig is a KubeSchedulerConfiguration file (--config of
	// scheduler-plugin); profile picks one of its GPUPack profiles.
	schedulerConfig string
	profile         string
	// workload is a prior in the form of the args' workload.prior.
	workload string
}

func (a *argsFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&a.schedulerConfig, "scheduler-config", "", "the scheduler's KubeSchedulerConfiguration file (scheduler-plugin --config; the chart's ConfigMap): "+
		"GPUPack's args and profiles are read from it as the scheduler reads them (defaults, validation)")
	fs.StringVar(&a.profile, "profile", "", "with --scheduler-config: the schedulerName of the GPUPack profile whose args to use "+
		"(default: explain the pod's own, else the first profile that enables GPUPack)")
	fs.StringVar(&a.workload, "workload", "", "the workload fragmentation is measured against, as the args' workload.prior (YAML or JSON), "+
		`e.g. '[{kind: whole, count: 8, weight: 1}]' or '[{kind: whole, count: 1, weight: 3}, {kind: shared, milli: 500, weight: 1}]'; `+
		"replaces the prior of --scheduler-config (default: GPUPack's default prior)")
}

// profileArgs are one GPUPack profile's args.
type profileArgs struct {
	name string
	args *config.GPUPackArgs
}

// resolvedArgs are the GPUPack args the commands assume, the workload they
// give and the GPUPack profiles of the scheduler's configuration.
type resolvedArgs struct {
	args     *config.GPUPackArgs
	workload *score.Distribution
	// source says where the workload comes from (gpuview.WorkloadView).
	source string
	// profiles are the schedulerNames GPUPack schedules for; fromConfig:
	// read from --scheduler-config (else the default profile's name).
	profiles   []string
	fromConfig bool
}

// loadedArgs are the flags read: the GPUPack profiles of
// --scheduler-config (none without it) and the prior of --workload (nil
// without it).
type loadedArgs struct {
	flags    *argsFlags
	profiles []profileArgs
	prior    []config.TaskTypeWeight
}

// load reads the flags and checks every arg as the plugin checks it, before
// anything is read from the cluster.
func (a *argsFlags) load() (*loadedArgs, error) {
	if a.profile != "" && a.schedulerConfig == "" {
		return nil, fmt.Errorf("--profile names a profile of --scheduler-config, which is not given")
	}
	l := &loadedArgs{flags: a}
	var err error
	if a.schedulerConfig != "" {
		if l.profiles, err = loadSchedulerConfig(a.schedulerConfig); err != nil {
			return nil, err
		}
	}
	if a.workload != "" {
		if l.prior, err = parsePrior(a.workload); err != nil {
			return nil, err
		}
	}
	if _, err := l.pick(""); err != nil {
		return nil, err
	}
	return l, nil
}

// pick is the args the commands assume: those of the GPUPack profile named
// by --profile, else podProfile when it is a GPUPack profile, else the
// first of --scheduler-config, or the defaults without it; --workload
// replaces their prior.
func (l *loadedArgs) pick(podProfile string) (*resolvedArgs, error) {
	a := l.flags
	r := &resolvedArgs{profiles: []string{defaultProfile}, source: defaultPriorSource}
	var err error
	if r.args, err = toInternal(nil); err != nil {
		return nil, err
	}
	if len(l.profiles) > 0 {
		r.fromConfig, r.profiles = true, nil
		for _, p := range l.profiles {
			r.profiles = append(r.profiles, p.name)
		}
		pick := l.profiles[0]
		want := a.profile
		if want == "" && slices.Contains(r.profiles, podProfile) {
			want = podProfile
		}
		if want != "" {
			i := slices.Index(r.profiles, want)
			if i < 0 {
				return nil, fmt.Errorf("%s: no profile %q enables %s (the profiles that do: %s)", a.schedulerConfig, want, gpupack.Name, strings.Join(r.profiles, ", "))
			}
			pick = l.profiles[i]
		}
		r.args = pick.args.DeepCopy()
		r.source = fmt.Sprintf("workload.prior of profile %s in %s", pick.name, a.schedulerConfig)
	}
	if l.prior != nil {
		r.args.Workload.Prior = slices.Clone(l.prior)
		r.source = "--workload"
	}
	if errs := validation.ValidateGPUPackArgs(nil, r.args); len(errs) > 0 {
		return nil, fmt.Errorf("invalid %s args (%s): %w", gpupack.Name, r.argsSource(a), errs.ToAggregate())
	}
	if r.workload, err = distribution(r.args); err != nil {
		return nil, err
	}
	return r, nil
}

// argsSource names where invalid args came from, for the error.
func (r *resolvedArgs) argsSource(a *argsFlags) string {
	switch {
	case a.workload != "":
		return "--workload"
	case a.schedulerConfig != "":
		return a.schedulerConfig
	}
	return "defaults"
}

// view is the workload as gpuview shows it.
func (r *resolvedArgs) view() gpuview.WorkloadView {
	return gpuview.NewWorkloadView(r.workload, r.source)
}

// toInternal is v1 args (nil: none) defaulted and converted as the plugin
// reads them.
func toInternal(v *configv1.GPUPackArgs) (*config.GPUPackArgs, error) {
	var obj any
	if v != nil {
		obj = v
	}
	args, _, err := configv1.ToInternal(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %s args: %w", gpupack.Name, err)
	}
	return args, nil
}

// parsePrior reads a --workload spec: the list the args take under
// workload.prior, in YAML or JSON, converted as the plugin's args are (the
// caller validates them with the rest of the args).
func parsePrior(spec string) ([]config.TaskTypeWeight, error) {
	var prior []configv1.TaskTypeWeight
	if err := yaml.UnmarshalStrict([]byte(spec), &prior); err != nil {
		return nil, fmt.Errorf("--workload: want the list of workload.prior, e.g. '[{kind: whole, count: 8, weight: 1}]': %w", err)
	}
	if len(prior) == 0 {
		return nil, fmt.Errorf("--workload: no task type (want e.g. '[{kind: whole, count: 8, weight: 1}]')")
	}
	args, err := toInternal(&configv1.GPUPackArgs{Workload: &configv1.WorkloadArgs{Prior: prior}})
	if err != nil {
		return nil, err
	}
	return args.Workload.Prior, nil
}

// distribution is the workload a freshly started plugin has under args:
// the prior, as the plugin builds it (a running scheduler also learns from
// the pods it places unless workload.pin is set).
func distribution(args *config.GPUPackArgs) (*score.Distribution, error) {
	wo, err := args.Workload.Options()
	if err != nil {
		return nil, fmt.Errorf("workload.%w", err)
	}
	wl, err := score.NewWorkload(wo)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	return wl.Distribution(), nil
}

// loadSchedulerConfig reads a KubeSchedulerConfiguration as kube-scheduler
// does (its scheme: strict decoding, its defaults, GPUPack's defaults and
// conversion) and returns the profiles that enable GPUPack, with their
// args (the defaults where the file gives none).
func loadSchedulerConfig(path string) ([]profileArgs, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the scheduler's configuration: %w", err)
	}
	obj, gvk, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		return nil, fmt.Errorf("%s: want a KubeSchedulerConfiguration, got %s", path, gvk)
	}
	var out []profileArgs
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		if !enablesGPUPack(p.Plugins) {
			continue
		}
		pa := profileArgs{name: p.SchedulerName}
		for _, pc := range p.PluginConfig {
			if pc.Name != gpupack.Name {
				continue
			}
			a, ok, err := configv1.ToInternal(pc.Args)
			if !ok {
				return nil, fmt.Errorf("%s: profile %s: %s args of type %T", path, p.SchedulerName, gpupack.Name, pc.Args)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: profile %s: %w", path, p.SchedulerName, err)
			}
			pa.args = a
		}
		if pa.args == nil {
			if pa.args, err = toInternal(nil); err != nil {
				return nil, err
			}
		}
		argsPath := field.NewPath("profiles").Index(i).Child("pluginConfig").Key(gpupack.Name).Child("args")
		if errs := validation.ValidateGPUPackArgs(argsPath, pa.args); len(errs) > 0 {
			return nil, fmt.Errorf("%s: %w", path, errs.ToAggregate())
		}
		out = append(out, pa)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no profile enables %s", path, gpupack.Name)
	}
	return out, nil
}

// enablesGPUPack reports whether a profile's plugins run GPUPack's Filter
// (multiPoint or filter, not disabled there): the profiles GPUPack places
// pods for.
func enablesGPUPack(p *schedconfig.Plugins) bool {
	if p == nil {
		return false
	}
	named := func(ps []schedconfig.Plugin, names ...string) bool {
		return slices.ContainsFunc(ps, func(q schedconfig.Plugin) bool { return slices.Contains(names, q.Name) })
	}
	if named(p.Filter.Enabled, gpupack.Name) {
		return true
	}
	return named(p.MultiPoint.Enabled, gpupack.Name) && !named(p.Filter.Disabled, gpupack.Name, "*")
}
