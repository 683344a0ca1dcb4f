package manifests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	_ "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1" // GPUPackArgs in kube-scheduler's scheme
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config/validation"
)

// pluginArgsCase is a value of scheduler.pluginArgs (YAML, a mapping).
type pluginArgsCase struct {
	name, args string
	// schema is what values.schema.json's error says, tmpl what the
	// templates' check says (refused cases: one of the two).
	schema, tmpl string
}

// The location of every template check's error (templates/validate/values.yaml).
const validateLocation = "execution error at (gpupack/templates/validate/values.yaml:1:4): "

var (
	// A DNS subdomain of 253 characters (labels of 63) and one of 254.
	domain253 = strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61)
	domain254 = strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 62)
	// A MIG profile of 59 characters (nvidia.com/mig-<profile>: a name of 63) and one of 60.
	profile59 = "1g.10gb+" + strings.Repeat("a", 51)
	profile60 = "1g.10gb+" + strings.Repeat("a", 52)
)

// prior is a workload.prior of the given entries (flow YAML mappings).
func prior(entries ...string) string {
	return "{workload: {prior: [" + strings.Join(entries, ", ") + "]}}"
}

// refusedPluginArgs are plugin args the scheduler refuses at start (its
// strict decoder or ValidateGPUPackArgs): the chart refuses each at render
// time, from the schema or the templates.
var refusedPluginArgs = []pluginArgsCase{
	// The score weights.
	{name: "fragmentationWeight above 100", args: "{fragmentationWeight: 101}", schema: "at '/scheduler/pluginArgs/fragmentationWeight': maximum: got 101, want 100"},
	{name: "topologyWeight negative", args: "{topologyWeight: -1}", schema: "at '/scheduler/pluginArgs/topologyWeight': minimum: got -1, want 0"},
	{name: "weight not whole", args: "{topologyWeight: 1.5}", schema: "at '/scheduler/pluginArgs/topologyWeight': got number, want integer"},
	{name: "weight a string", args: `{fragmentationWeight: "1"}`, schema: "at '/scheduler/pluginArgs/fragmentationWeight': got string, want integer"},
	{name: "both weights 0", args: "{fragmentationWeight: 0, topologyWeight: 0}",
		tmpl: "scheduler.pluginArgs.fragmentationWeight and scheduler.pluginArgs.topologyWeight are both 0"},

	// Resource names.
	{name: "wholeResource without a domain", args: "{wholeResource: gpu}", schema: "at '/scheduler/pluginArgs/wholeResource'"},
	{name: "wholeResource empty", args: `{wholeResource: ""}`, schema: "at '/scheduler/pluginArgs/wholeResource'"},
	{name: "sharedResource with two slashes", args: "{sharedResource: nvidia.com/gpu/shared}", schema: "at '/scheduler/pluginArgs/sharedResource'"},
	{name: "wholeResource with an upper-case domain", args: "{wholeResource: NVIDIA.com/gpu}", schema: "at '/scheduler/pluginArgs/wholeResource'"},
	{name: "wholeResource name of 64 characters", args: "{wholeResource: nvidia.com/" + strings.Repeat("g", 64) + "}", schema: "at '/scheduler/pluginArgs/wholeResource'"},
	{name: "wholeResource name ending in '.'", args: "{wholeResource: nvidia.com/gpu.}", schema: "at '/scheduler/pluginArgs/wholeResource'"},
	{name: "wholeResource domain of 254 characters", args: "{wholeResource: " + domain254 + "/gpu}", schema: "at '/scheduler/pluginArgs/wholeResource'"},
	{name: "wholeResource in kubernetes.io", args: "{wholeResource: kubernetes.io/gpu}",
		tmpl: `scheduler.pluginArgs.wholeResource "kubernetes.io/gpu": the kubernetes.io domains hold Kubernetes' native resources`},
	{name: "sharedResource in a kubernetes.io subdomain", args: "{sharedResource: gpu.kubernetes.io/shared}",
		tmpl: `scheduler.pluginArgs.sharedResource "gpu.kubernetes.io/shared": the kubernetes.io domains`},
	{name: "sharedResource with quota's prefix", args: "{sharedResource: requests.nvidia.com/gpu}",
		tmpl: `scheduler.pluginArgs.sharedResource "requests.nvidia.com/gpu": must not start with "requests."`},
	{name: "sharedResource the same as wholeResource", args: "{sharedResource: nvidia.com/gpu}",
		tmpl: `scheduler.pluginArgs.sharedResource "nvidia.com/gpu": the same as wholeResource`},
	{name: "wholeResource the same as sharedResource", args: "{wholeResource: nvidia.com/gpu.shared}",
		tmpl: `scheduler.pluginArgs.sharedResource "nvidia.com/gpu.shared": the same as wholeResource`},

	// The MIG prefix.
	{name: "migResourcePrefix a bare domain", args: "{migResourcePrefix: nvidia.com/}", schema: "at '/scheduler/pluginArgs/migResourcePrefix'"},
	{name: "migResourcePrefix without '/'", args: "{migResourcePrefix: nvidia.com}", schema: "at '/scheduler/pluginArgs/migResourcePrefix'"},
	{name: "migResourcePrefix without a domain", args: "{migResourcePrefix: /mig-}", schema: "at '/scheduler/pluginArgs/migResourcePrefix'"},
	{name: "migResourcePrefix starting with '-'", args: "{migResourcePrefix: nvidia.com/-mig}", schema: "at '/scheduler/pluginArgs/migResourcePrefix'"},
	{name: "migResourcePrefix of 58 characters after the domain", args: "{migResourcePrefix: nvidia.com/" + strings.Repeat("m", 58) + "}", schema: "at '/scheduler/pluginArgs/migResourcePrefix'"},
	{name: "migResourcePrefix with two slashes", args: "{migResourcePrefix: nvidia.com/mig/}", schema: "at '/scheduler/pluginArgs/migResourcePrefix'"},
	{name: "migResourcePrefix claiming wholeResource", args: "{migResourcePrefix: nvidia.com/g}",
		tmpl: `scheduler.pluginArgs.migResourcePrefix "nvidia.com/g" claims wholeResource "nvidia.com/gpu"`},
	{name: "migResourcePrefix claiming sharedResource", args: "{migResourcePrefix: example.com/gpu-, sharedResource: example.com/gpu-shared}",
		tmpl: `scheduler.pluginArgs.migResourcePrefix "example.com/gpu-" claims sharedResource "example.com/gpu-shared"`},

	// Enums.
	{name: "replicaPolicy empty", args: `{replicaPolicy: ""}`, schema: "at '/scheduler/pluginArgs/replicaPolicy'"},
	{name: "replicaPolicy capitalized", args: "{replicaPolicy: Packed}", schema: "at '/scheduler/pluginArgs/replicaPolicy'"},
	{name: "defaultTopology unknown", args: "{defaultTopology: strict}", schema: "at '/scheduler/pluginArgs/defaultTopology'"},
	{name: "unknown field", args: "{weight: 3}", schema: "at '/scheduler/pluginArgs': additional properties 'weight' not allowed"},
	{name: "kind of another type", args: "{kind: NodeResourcesFitArgs}", schema: "at '/scheduler/pluginArgs/kind'"},
	{name: "apiVersion of another version", args: "{apiVersion: kubescheduler.config.k8s.io/v1beta3}", schema: "at '/scheduler/pluginArgs/apiVersion'"},

	// The workload's learning.
	{name: "priorWeight negative", args: "{workload: {priorWeight: -1}}", schema: "at '/scheduler/pluginArgs/workload/priorWeight': minimum"},
	{name: "priorWeight 0 without pin", args: "{workload: {priorWeight: 0}}",
		tmpl: "scheduler.pluginArgs.workload.priorWeight 0 without workload.pin: true"},
	{name: "priorWeight 0, pin false", args: "{workload: {priorWeight: 0, pin: false}}",
		tmpl: "scheduler.pluginArgs.workload.priorWeight 0 without workload.pin: true"},
	{name: "halfLife 0", args: "{workload: {halfLife: 0}}", schema: "at '/scheduler/pluginArgs/workload/halfLife': minimum: got 0, want 1"},
	{name: "halfLife above int32", args: "{workload: {halfLife: 2147483648}}", schema: "at '/scheduler/pluginArgs/workload/halfLife': maximum"},
	{name: "pin a string", args: `{workload: {pin: "yes"}}`, schema: "at '/scheduler/pluginArgs/workload/pin': got string, want boolean"},

	// The prior.
	{name: "prior empty", args: "{workload: {prior: []}}", schema: "at '/scheduler/pluginArgs/workload/prior': minItems: got 0, want 1"},
	{name: "prior a mapping", args: "{workload: {prior: {kind: whole}}}", schema: "at '/scheduler/pluginArgs/workload/prior'"},
	{name: "prior entry null", args: prior("null"), schema: "at '/scheduler/pluginArgs/workload/prior/0'"},
	{name: "kind left out", args: prior("{count: 1, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0': missing property 'kind'"},
	{name: "kind capitalized", args: prior("{kind: Whole, count: 1, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/kind'"},
	{name: "unknown field in an entry", args: prior("{kind: mig, profile: 1g.10gb, count: 1, weight: 1}"),
		schema: "at '/scheduler/pluginArgs/workload/prior/0': additional properties 'profile' not allowed"},
	{name: "whole without count", args: prior("{kind: whole, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0': missing property 'count'"},
	{name: "whole count 0", args: prior("{kind: whole, count: 0, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/count': minimum: got 0, want 1"},
	{name: "whole count null", args: prior("{kind: whole, count: null, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/count'"},
	{name: "whole count 65", args: prior("{kind: whole, count: 65, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/count': maximum: got 65, want 64"},
	{name: "whole count not whole", args: prior("{kind: whole, count: 1.5, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/count'"},
	{name: "whole with milli", args: prior("{kind: whole, count: 1, milli: 500, weight: 1}"),
		tmpl: "scheduler.pluginArgs.workload.prior[0].milli 500: only for kind shared (this entry is whole"},
	{name: "whole with a MIG profile", args: prior("{kind: whole, count: 1, weight: 1}", "{kind: whole, count: 2, migProfile: 1g.10gb, weight: 1}"),
		tmpl: `scheduler.pluginArgs.workload.prior[1].migProfile "1g.10gb": only for kind mig (this entry is whole`},
	{name: "shared without milli", args: prior("{kind: shared, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0': missing property 'milli'"},
	{name: "shared milli 0", args: prior("{kind: shared, milli: 0, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/milli': minimum: got 0, want 1"},
	{name: "shared milli 1001", args: prior("{kind: shared, milli: 1001, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/milli': maximum"},
	{name: "shared count 2", args: prior("{kind: shared, milli: 500, count: 2, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/count': maximum: got 2, want 1"},
	{name: "shared with a MIG profile", args: prior("{kind: shared, milli: 500, migProfile: 1g.5gb, weight: 1}"),
		tmpl: `scheduler.pluginArgs.workload.prior[0].migProfile "1g.5gb": only for kind mig (this entry is shared`},
	{name: "mig profile in upper case", args: prior("{kind: mig, migProfile: 1g.10GB, count: 1, weight: 1}"),
		schema: "at '/scheduler/pluginArgs/workload/prior/0/migProfile': '1g.10GB' does not match pattern"},
	{name: "mig profile renamed for sharing", args: prior("{kind: mig, migProfile: 1g.5gb.shared, count: 1, weight: 1}"),
		schema: "at '/scheduler/pluginArgs/workload/prior/0/migProfile'"},
	{name: "mig profile with the resource prefix", args: prior("{kind: mig, migProfile: mig-1g.5gb, count: 1, weight: 1}"),
		schema: "at '/scheduler/pluginArgs/workload/prior/0/migProfile'"},
	{name: "mig profile of 60 characters", args: prior("{kind: mig, migProfile: " + profile60 + ", count: 1, weight: 1}"),
		schema: "at '/scheduler/pluginArgs/workload/prior/0/migProfile': maxLength: got 60, want 59"},
	{name: "mig without a profile", args: prior("{kind: mig, count: 1, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0': missing property 'migProfile'"},
	{name: "mig profile empty", args: prior(`{kind: mig, migProfile: "", count: 1, weight: 1}`), schema: "at '/scheduler/pluginArgs/workload/prior/0/migProfile'"},
	{name: "mig without count", args: prior("{kind: mig, migProfile: 1g.10gb, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0': missing property 'count'"},
	{name: "mig count 513", args: prior("{kind: mig, migProfile: 1g.10gb, count: 513, weight: 1}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/count': maximum: got 513, want 512"},
	{name: "mig with milli", args: prior("{kind: mig, migProfile: 1g.10gb, count: 1, milli: 1, weight: 1}"),
		tmpl: "scheduler.pluginArgs.workload.prior[0].milli 1: only for kind shared (this entry is mig"},
	{name: "weight negative", args: prior("{kind: whole, count: 1, weight: -1}", "{kind: whole, count: 2, weight: 5}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/weight': minimum"},
	{name: "weight a string", args: prior(`{kind: whole, count: 1, weight: "1"}`), schema: "at '/scheduler/pluginArgs/workload/prior/0/weight'"},
	{name: "weights add up to 0", args: prior("{kind: whole, count: 1, weight: 0}", "{kind: shared, milli: 500, weight: 0}"),
		tmpl: "scheduler.pluginArgs.workload.prior: the weights add up to 0"},
	{name: "weight left out of the only entry", args: prior("{kind: whole, count: 1}"),
		tmpl: "scheduler.pluginArgs.workload.prior: the weights add up to 0"},
	{name: "weights null", args: prior("{kind: whole, count: 1, weight: null}"),
		tmpl: "scheduler.pluginArgs.workload.prior: the weights add up to 0"},
	{name: "model with a leading blank", args: prior(`{kind: whole, count: 1, weight: 1, model: " NVIDIA A100"}`),
		tmpl: `scheduler.pluginArgs.workload.prior[0].model " NVIDIA A100": leading or trailing blanks`},
	{name: "model with a trailing no-break space", args: prior(`{kind: whole, count: 1, weight: 1, model: "NVIDIA A100\u00a0"}`),
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "NVIDIA A100\u00a0": leading or trailing blanks`},
	{name: "model with a tab", args: prior(`{kind: whole, count: 1, weight: 1, model: "NVIDIA\tA100"}`),
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "NVIDIA\tA100": not text: a control character`},
	{name: "model with a C1 control", args: prior(`{kind: whole, count: 1, weight: 1, model: "A100\x85x"}`),
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "A100\u0085x": not text: a control character`},
	{name: "model of 257 characters", args: prior("{kind: whole, count: 1, weight: 1, model: " + strings.Repeat("A", 257) + "}"),
		schema: "at '/scheduler/pluginArgs/workload/prior/0/model': maxLength: got 257, want 256"},
	{name: "model of 129 characters, 258 bytes", args: prior("{kind: whole, count: 1, weight: 1, model: " + strings.Repeat("é", 129) + "}"),
		tmpl: "scheduler.pluginArgs.workload.prior[0].model: 258 bytes, longer than 256"},
	{name: "model a number", args: prior("{kind: whole, count: 1, weight: 1, model: 100}"), schema: "at '/scheduler/pluginArgs/workload/prior/0/model'"},
	// Several models joined by "|": each alternative is compared exactly, so
	// blanks around one, or an empty one, match no GPU. What to write: the
	// alternatives trimmed, the empty ones dropped, joined by a bare "|".
	{name: "models with blanks around |", args: prior(`{kind: whole, count: 1, weight: 1, model: "A100 | H100"}`),
		// "A100 " -> "A100", " H100" -> "H100": "A100|H100".
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "A100 | H100": leading or trailing blanks in the alternative "A100 ": ` +
			`GPU models are compared exactly, as the device plugin publishes them (gpupack.io/topology gpus[].model), so it would match no GPU: write "A100|H100"`},
	{name: "models with a no-break space after |", args: prior(`{kind: whole, count: 1, weight: 1, model: "NVIDIA H100|\u00a0NVIDIA H200"}`),
		// "\u00a0NVIDIA H200" -> "NVIDIA H200".
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "NVIDIA H100|\u00a0NVIDIA H200": leading or trailing blanks in the alternative "\u00a0NVIDIA H200"`},
	{name: "models with an empty last alternative", args: prior(`{kind: whole, count: 1, weight: 1, model: "A|"}`),
		// "A" and "": "A".
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "A|": an empty alternative (nothing before, after or between "|"): write "A"`},
	{name: "models with an empty middle alternative", args: prior(`{kind: whole, count: 1, weight: 1, model: "A100||H100"}`),
		// "A100", "" and "H100": "A100|H100".
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "A100||H100": an empty alternative (nothing before, after or between "|"): write "A100|H100"`},
	{name: "model only |", args: prior(`{kind: whole, count: 1, weight: 1, model: "|"}`),
		// "" and "": nothing left.
		tmpl: `scheduler.pluginArgs.workload.prior[0].model "|": an empty alternative (nothing before, after or between "|"): leave model out (any model)`},
	{name: "models, the second entry's with an empty first alternative", args: prior("{kind: whole, count: 1, weight: 1}", `{kind: shared, milli: 500, weight: 1, model: "|A100"}`),
		tmpl: `scheduler.pluginArgs.workload.prior[1].model "|A100": an empty alternative (nothing before, after or between "|"): write "A100"`},
}

// acceptedPluginArgs are plugin args at the edges of what the scheduler
// accepts: the chart renders each, and the scheduler loads what it renders.
var acceptedPluginArgs = []pluginArgsCase{
	{name: "defaults", args: "{}"},
	{name: "topologyWeight 0", args: "{topologyWeight: 0}"},
	{name: "fragmentationWeight 0, topologyWeight 100", args: "{fragmentationWeight: 0, topologyWeight: 100}"},
	{name: "weights written as 1.0", args: "{fragmentationWeight: 1.0, topologyWeight: 0}"},
	// Null removes values.yaml's value: the scheduler's default (1) then.
	{name: "fragmentationWeight null, topologyWeight 0", args: "{fragmentationWeight: null, topologyWeight: 0}"},
	{name: "every field null", args: "{fragmentationWeight: null, topologyWeight: null, wholeResource: null, sharedResource: null, migResourcePrefix: null, replicaPolicy: null, defaultTopology: null, workload: null}"},
	{name: "pluginArgs null", args: "null"},
	{name: "TypeMeta", args: "{apiVersion: kubescheduler.config.k8s.io/v1, kind: GPUPackArgs}"},
	{name: "kind alone", args: "{kind: GPUPackArgs}"},
	{name: "spread, required", args: "{replicaPolicy: spread, defaultTopology: required}"},
	{name: "no topology hint", args: "{defaultTopology: none}"},
	{name: "names at their longest", args: "{wholeResource: " + domain253 + "/" + strings.Repeat("G", 63) + ", sharedResource: example.com/Shared_GPU.x-1, migResourcePrefix: example.com/" + strings.Repeat("m", 57) + "}"},
	{name: "names without dots", args: "{wholeResource: gpu/whole, sharedResource: gpu/s, migResourcePrefix: mig/A}"},
	{name: "a domain merely containing kubernetes.io", args: "{wholeResource: kubernetes.io.example.com/gpu, sharedResource: example.com/requests.gpu}"},
	{name: "MIG prefix with a dot", args: "{migResourcePrefix: nvidia.com/mig.}"},
	{name: "MIG prefix starting another resource's name, not the name", args: "{migResourcePrefix: nvidia.com/gpu.mig-}"},
	{name: "priorWeight 0, pinned", args: "{workload: {priorWeight: 0, pin: true}}"},
	{name: "halfLife at both ends", args: "{workload: {halfLife: 1, priorWeight: 2147483647}}"},
	{name: "halfLife int32 max", args: "{workload: {halfLife: 2147483647}}"},
	{name: "prior null (the default prior)", args: "{workload: {prior: null}}"},
	{name: "prior at the edges", args: prior(
		"{kind: whole, count: 1, weight: 1}",
		"{kind: whole, count: 64, milli: 0, migProfile: \"\", weight: 2147483647}",
		"{kind: shared, milli: 1, weight: 2147483647}",
		"{kind: shared, milli: 1000, count: 1, weight: 0}",
		"{kind: shared, milli: 250, count: 0}",
		"{kind: mig, migProfile: 1c.2g.20gb, count: 512, weight: 3}",
		"{kind: mig, migProfile: 1g.10gb+me, count: 1, weight: 3}",
		"{kind: mig, migProfile: 1g.20gb+me.all, count: 1, weight: 3}",
		"{kind: mig, migProfile: 1g.12gb-me, count: 1, weight: 3}",
		"{kind: mig, migProfile: 7g.80gb+gfx-me, count: 2, weight: 3}",
		"{kind: mig, migProfile: "+profile59+", count: 1, weight: 3}",
	)},
	{name: "null fields in entries", args: prior(
		"{kind: whole, count: 1, weight: null, milli: null, migProfile: null, model: null}",
		"{kind: shared, milli: 500, count: null, weight: 1}",
	)},
	{name: "weights 0 but one", args: prior("{kind: whole, count: 1, weight: 0}", "{kind: whole, count: 2}", "{kind: whole, count: 4, weight: 1}")},
	{name: "models", args: prior(
		"{kind: whole, count: 1, weight: 1, model: NVIDIA A100-SXM4-80GB}",
		`{kind: whole, count: 1, weight: 1, model: "NVIDIA\u00a0H100|NVIDIA H200"}`,
		"{kind: whole, count: 2, weight: 1, model: A100|H100|H200}",
		`{kind: whole, count: 1, weight: 1, model: ""}`,
		"{kind: shared, milli: 100, weight: 1, model: "+strings.Repeat("A", 256)+"}",
		"{kind: mig, migProfile: 1g.10gb, count: 1, weight: 1, model: "+strings.Repeat("é", 128)+"}",
	)},
}

// pluginArgsValues is a values file setting scheduler.pluginArgs.
func pluginArgsValues(args string) string {
	return "scheduler:\n  pluginArgs: " + args + "\n"
}

// defaultSchedulerConfig is the scheduler's config.yaml of the chart's
// default render, parsed.
func defaultSchedulerConfig(t *testing.T) map[string]any {
	t.Helper()
	return schedulerConfig(t, find(renderChart(t, ""), "ConfigMap", "gpupack-scheduler-config"))
}

// coalesce is values given over a chart's defaults as helm merges them: a
// mapping into a mapping key by key, any other value in place of the
// default; a null removes a key the defaults have and stays where they
// have none.
func coalesce(defaults, values any) any {
	d, dok := defaults.(map[string]any)
	v, vok := values.(map[string]any)
	if values == nil {
		return nil
	}
	if !dok || !vok {
		return values
	}
	out := map[string]any{}
	for k, x := range d {
		out[k] = x
	}
	for k, x := range v {
		if _, inDefaults := d[k]; inDefaults && x == nil {
			delete(out, k)
			continue
		}
		out[k] = coalesce(d[k], x)
	}
	return out
}

// chartPluginArgs are scheduler.pluginArgs of values.yaml.
func chartPluginArgs(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	var values struct {
		Scheduler struct {
			PluginArgs map[string]any `json:"pluginArgs"`
		} `json:"scheduler"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &values))
	require.NotEmpty(t, values.Scheduler.PluginArgs)
	return values.Scheduler.PluginArgs
}

// withPluginArgs is the scheduler config cfg with GPUPack's args replaced
// by args (nil: none), as JSON.
func withPluginArgs(t *testing.T, cfg map[string]any, args any) []byte {
	t.Helper()
	raw, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	out := map[string]any{}
	require.NoError(t, yaml.Unmarshal(raw, &out)) // a deep copy
	pcs, _, err := unstructured.NestedSlice(out, "profiles")
	require.NoError(t, err)
	pc := pcs[0].(map[string]any)["pluginConfig"].([]any)[0].(map[string]any)
	require.Equal(t, "GPUPack", pc["name"])
	if args == nil {
		delete(pc, "args")
	} else {
		pc["args"] = args
	}
	require.NoError(t, unstructured.SetNestedSlice(out, pcs, "profiles"))
	// JSON (which the decoder reads as YAML): the args' strings exactly as
	// given (YAML's emitter would turn a U+0085 into a line break).
	data, err := json.Marshal(out)
	require.NoError(t, err)
	return data
}

// schedulerLoad is what the scheduler makes of a config file at start:
// kube-scheduler's strict decoder and defaulting
// (options.LoadConfigFromFile), then ValidateGPUPackArgs on GPUPack's args,
// as the plugin's factory calls it. It returns the args, or the error the
// scheduler would stop with.
func schedulerLoad(t *testing.T, data []byte) (*config.GPUPackArgs, error) {
	t.Helper()
	obj, _, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("kube-scheduler's decoder: %w", err)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	require.True(t, ok, "%T", obj)
	require.Len(t, cfg.Profiles, 1)
	var args *config.GPUPackArgs
	for _, pc := range cfg.Profiles[0].PluginConfig {
		if pc.Name == "GPUPack" {
			args, ok = pc.Args.(*config.GPUPackArgs)
			require.True(t, ok, "%T", pc.Args)
		}
	}
	require.NotNil(t, args, "GPUPack's args")
	if errs := validation.ValidateGPUPackArgs(nil, args); len(errs) > 0 {
		return nil, fmt.Errorf("ValidateGPUPackArgs: %w", errs.ToAggregate())
	}
	return args, nil
}

// TestChartPluginArgsAsTheSchedulerChecksThem: the chart refuses at render
// time the plugin args the scheduler would refuse at start (and crash-loop
// on), and nothing it accepts. Each refused case goes to the scheduler's own
// decoder and validation too (in the config the chart would render: the
// default render's, with the case's args merged into values.yaml's as helm
// merges values), which must refuse it; each accepted case renders, and the
// scheduler loads the config the chart rendered, the same args as that
// merge gives.
func TestChartPluginArgsAsTheSchedulerChecksThem(t *testing.T) {
	base := defaultSchedulerConfig(t)
	defaults := chartPluginArgs(t)
	merged := func(t *testing.T, args string) []byte {
		t.Helper()
		var v any
		require.NoError(t, yaml.Unmarshal([]byte(args), &v), args)
		return withPluginArgs(t, base, coalesce(defaults, v))
	}

	for _, c := range refusedPluginArgs {
		t.Run("refused/"+c.name, func(t *testing.T) {
			require.True(t, (c.schema == "") != (c.tmpl == ""), "a refused case says which check refuses it")
			_, err := schedulerLoad(t, merged(t, c.args))
			require.Error(t, err, "the scheduler accepts it: the chart must not refuse it")
			t.Logf("the scheduler: %v", err)

			b := badValue{values: pluginArgsValues(c.args)}
			out, err := b.helmTemplate(t)
			require.Error(t, err, "renders:\n%s", out)
			if c.schema != "" {
				require.Contains(t, out, c.schema)
				return
			}
			require.Contains(t, out, validateLocation+c.tmpl)
			// The templates' checks hold without the schema too.
			out, err = b.helmTemplate(t, "--skip-schema-validation")
			require.Error(t, err, "renders without the schema:\n%s", out)
			require.Contains(t, out, validateLocation+c.tmpl)
		})
	}
	for _, c := range acceptedPluginArgs {
		t.Run("accepted/"+c.name, func(t *testing.T) {
			want, err := schedulerLoad(t, merged(t, c.args))
			require.NoError(t, err)

			objs := renderChart(t, pluginArgsValues(c.args))
			cm := find(objs, "ConfigMap", "gpupack-scheduler-config")
			require.NotNil(t, cm)
			data, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
			got, err := schedulerLoad(t, []byte(data))
			require.NoError(t, err, "the scheduler refuses the chart's config:\n%s", data)
			require.Equal(t, want, got, "the chart's args are the merge of the values")
		})
	}
}

// helmRenderOrder is the order in which helm renders a chart's templates
// (pkg/engine sortTemplates): deeper paths first, then paths in reverse
// byte order.
func helmRenderOrder(paths []string) []string {
	out := slices.Clone(paths)
	slices.SortFunc(out, func(a, b string) int {
		if da, db := strings.Count(a, "/"), strings.Count(b, "/"); da != db {
			return db - da
		}
		return strings.Compare(b, a)
	})
	return out
}

// Helm renders templates/validate/values.yaml, which runs the chart's
// checks, before any other template: so a refused value is reported at
// that file (not at whichever object template helm rendered first), and
// before any object is half rendered.
func TestChartValidatesFirst(t *testing.T) {
	var paths []string
	require.NoError(t, filepath.WalkDir(filepath.Join(chartDir, "templates"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), "_") {
			return err
		}
		rel, err := filepath.Rel(filepath.Dir(chartDir), path)
		paths = append(paths, filepath.ToSlash(rel))
		return err
	}))
	require.Contains(t, paths, "gpupack/templates/scheduler/serviceaccount.yaml")
	require.Equal(t, "gpupack/templates/validate/values.yaml", helmRenderOrder(paths)[0], "helm's render order: %v", helmRenderOrder(paths))

	// As helm reports it: a check of the scheduler's values, which the
	// scheduler's templates (rendered before the device plugin's) used to
	// report as serviceaccount.yaml's, and one of the device plugin's.
	for values, want := range map[string]string{
		"scheduler: {leaderElect: false}":                                                       "scheduler.leaderElect is false with scheduler.replicas 2",
		"devicePlugin: {extraVolumes: [{name: config}]}":                                        `devicePlugin.extraVolumes: volume name "config" is the chart's`,
		"devicePlugin: {image: {tag: latest}}":                                                  `devicePlugin.image.tag "latest": image tag "latest" is not allowed`,
		"devicePlugin: {metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}}": "devicePlugin.metrics.serviceMonitor needs devicePlugin.metrics.service.enabled",
	} {
		out, err := badValue{values: values}.helmTemplate(t)
		require.Error(t, err, values)
		require.Contains(t, out, "Error: "+validateLocation+want, values)
	}
}
