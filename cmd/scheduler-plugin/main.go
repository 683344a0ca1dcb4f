// Command scheduler-plugin is kube-scheduler v1.37 with the GPUPack plugin
// (run it as a secondary scheduler; see manifests/scheduler).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	frameworkplugins "k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	configv1 "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config/validation"
	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
	"github.com/gpupack/gpupack/pkg/version"
)

const component = "scheduler"

// helpPreface puts gpupack first in --help: kube-scheduler's own text follows.
const helpPreface = `gpupack-scheduler is kube-scheduler with the GPUPack framework plugin
(github.com/gpupack/gpupack). Run it as a secondary scheduler: pods opt in with
spec.schedulerName (manifests/scheduler uses gpupack-scheduler). GPUPack picks
the node and the exact GPUs, MIG devices or time-shared replicas of a pod by
NVLink topology and fragmentation (FGD), and binds the pod with its devices.

GPUPack is configured in the KubeSchedulerConfiguration given with --config,
under profiles[].pluginConfig[name=GPUPack].args (kind GPUPackArgs of
kubescheduler.config.k8s.io/v1; apiVersion and kind may be left out); see
manifests/scheduler/config.yaml for every arg with its default. GPUPack must
run at preFilter, filter, reserve and bind, and bind before DefaultBinder:
the scheduler refuses to start otherwise, and refuses a pluginConfig entry
that would be ignored (no plugin of that name, or GPUPack's args in a
profile without GPUPack) and an extender that would bind GPU pods in
GPUPack's place (bindVerb with no managedResources, or with a GPU one). A
GPU resource name that only nodes publish (their gpupack.io/topology
resource table) is known only once a node publishes it: GPU pods that such
an extender would bind are then refused (FailedScheduling names the
extender), and the first node to publish the name is logged.

`

func main() {
	if versionAsked(os.Args[1:]) {
		fmt.Println(versionLine())
		return
	}
	command := app.NewSchedulerCommand(app.WithPlugin(gpupack.Name, gpupack.New))
	command.Use = "scheduler-plugin" // kube-scheduler's command names itself kube-scheduler
	command.Long = helpPreface + command.Long
	run := command.RunE
	command.RunE = func(cmd *cobra.Command, args []string) error {
		logger := klog.FromContext(cmd.Context())
		logger.Info("Starting gpupack scheduler", "version", version.Get())
		if f := cmd.Flags().Lookup("config"); f != nil && f.Value.String() != "" {
			if err := checkPluginConfig(logger, f.Value.String()); err != nil {
				return err
			}
		}
		return run(cmd, args)
	}
	legacyregistry.Registerer().MustRegister(version.NewCollector(component))
	os.Exit(cli.Run(command))
}

// checkPluginConfig refuses pluginConfig entries that kube-scheduler would
// silently ignore (validation.ValidatePluginConfigNames): args for a plugin
// this binary does not have, or GPUPack's args in a profile without GPUPack;
// binding extenders, resource names of two kinds, and a negative GPUPack
// score weight (validation.ValidateScoreWeights).
// A file kube-scheduler cannot load is left to its own error.
func checkPluginConfig(logger klog.Logger, path string) error {
	cfg, err := options.LoadConfigFromFile(logger, path)
	if err != nil {
		// kube-scheduler reports it, in its words, next; args that are no
		// mapping are told here with their path instead of its decoder's
		// Go struct.
		return argsNotMappings(path)
	}
	registry := frameworkplugins.NewInTreeRegistry()
	names := []string{gpupack.Name}
	for name := range registry {
		names = append(names, name)
	}
	errs := validation.ValidatePluginConfigNames(cfg, names)
	errs = append(errs, validation.ValidateExtenderBinders(cfg, gpuResourceOf(cfg))...)
	errs = append(errs, validation.ValidateResourceKinds(cfg)...)
	errs = append(errs, validation.ValidateScoreWeights(cfg)...)
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", path, errs.ToAggregate())
	}
	return nil
}

// argsNotMappings refuses the pluginConfig entries of the configuration
// file at path whose args are neither a mapping nor null (a block string,
// `args: |`, a list, a number), which kube-scheduler refuses with its
// decoder's message about a Go struct of apiVersion and kind. nil when
// there are none or the file cannot be read as YAML.
func argsNotMappings(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil //nolint:nilerr // kube-scheduler reports it
	}
	var doc struct {
		Profiles []struct {
			PluginConfig []struct {
				Name string          `json:"name"`
				Args json.RawMessage `json:"args"`
			} `json:"pluginConfig"`
		} `json:"profiles"`
	}
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	var errs field.ErrorList
	for i, p := range doc.Profiles {
		for j, pc := range p.PluginConfig {
			if e := argsNotMapping(field.NewPath("profiles").Index(i).Child("pluginConfig").Index(j).Child("args"), pc.Name, pc.Args); e != nil {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", path, errs.ToAggregate())
	}
	return nil
}

// maxShownArgs bounds the args an error quotes.
const maxShownArgs = 100

// argsNotMapping is the error of one entry's args (raw JSON), nil when
// they are a mapping, null or absent.
func argsNotMapping(path *field.Path, plugin string, raw json.RawMessage) *field.Error {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var kind, shown string
	switch v := v.(type) {
	case nil, map[string]any:
		return nil
	case string:
		kind, shown = "a string (a block scalar, args: |, makes one)", v
	case []any:
		kind, shown = "a list", string(raw)
	case bool:
		kind, shown = "a boolean", string(raw)
	default:
		kind, shown = "a number", string(raw)
	}
	if len(shown) > maxShownArgs {
		shown = deviceid.Prefix(shown, maxShownArgs) + "..."
	}
	return field.Invalid(path, shown, fmt.Sprintf("%s's args must be a mapping of their fields, not %s: write them as a mapping under args (args: {name: value, ...})", plugin, kind))
}

// gpuResourceOf reports the resource names GPUPack places under cfg: the
// whole, shared and MIG names of the defaults and of every profile's
// GPUPack args.
func gpuResourceOf(cfg *schedconfig.KubeSchedulerConfiguration) func(string) bool {
	whole := []string{configv1.DefaultWholeResource, configv1.DefaultSharedResource}
	prefixes := []string{configv1.DefaultMIGResourcePrefix}
	for _, p := range cfg.Profiles {
		for _, pc := range p.PluginConfig {
			if a, ok := pc.Args.(*config.GPUPackArgs); ok && pc.Name == gpupack.Name {
				whole = append(whole, a.WholeResource, a.SharedResource)
				prefixes = append(prefixes, a.MIGResourcePrefix)
			}
		}
	}
	return func(name string) bool {
		return slices.Contains(whole, name) || slices.ContainsFunc(prefixes, func(p string) bool { return p != "" && strings.HasPrefix(name, p) })
	}
}

// versionAsked reports whether the arguments ask for the version (kube-scheduler's
// own --version would print only the Kubernetes version it was built with).
func versionAsked(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == "--version" || a == "--version=true" || a == "--version=raw"
	})
}

// versionLine is gpupack's version and the kube-scheduler it embeds.
func versionLine() string {
	line := version.Get().String()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/kubernetes" {
				return fmt.Sprintf("%s, kube-scheduler %s", line, d.Version)
			}
		}
	}
	return line
}
