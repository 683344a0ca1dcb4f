package validation_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation/field"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	frameworkplugins "k8s.io/kubernetes/pkg/scheduler/framework/plugins"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	configv1 "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config/validation"
)

// defaults returns the internal args with every default applied.
func defaults(t *testing.T) *config.GPUPackArgs {
	t.Helper()
	out, ok, err := configv1.ToInternal(nil)
	require.True(t, ok)
	require.NoError(t, err)
	return out
}

func TestDefaultsAreValid(t *testing.T) {
	a := defaults(t)
	require.Empty(t, validation.ValidateGPUPackArgs(field.NewPath("args"), a))
	require.Equal(t, int64(1), a.FragmentationWeight)
	require.Equal(t, int64(2), a.TopologyWeight)
	require.Equal(t, "nvidia.com/gpu", a.WholeResource)
	require.Equal(t, "nvidia.com/gpu.shared", a.SharedResource)
	require.Equal(t, "nvidia.com/mig-", a.MIGResourcePrefix)
	require.Equal(t, config.ReplicaPolicyPacked, a.ReplicaPolicy)
	require.Equal(t, config.TopologyPreferred, a.DefaultTopology)
	require.Equal(t, int32(100), a.Workload.PriorWeight)
	require.Equal(t, int32(1000), a.Workload.HalfLife)
	require.False(t, a.Workload.Pin)
	// score.DefaultPrior in per-mille: whole 1 .50 -> 500, ..., 8 types
	// adding up to 1000.
	require.Len(t, a.Workload.Prior, 8)
	require.Equal(t, config.TaskTypeWeight{Kind: "whole", Count: 1, Weight: 500}, a.Workload.Prior[0])
	var total int32
	for _, p := range a.Workload.Prior {
		total += p.Weight
	}
	require.Equal(t, int32(1000), total)
}

func TestSetDefaultsKeepsSetFields(t *testing.T) {
	w, pin := int64(7), true
	v := configv1.GPUPackArgs{TopologyWeight: &w, Workload: &configv1.WorkloadArgs{Pin: &pin, Prior: []configv1.TaskTypeWeight{{Kind: "whole", Count: 2, Weight: 1}}}}
	configv1.SetDefaults_GPUPackArgs(&v)
	require.Equal(t, int64(7), *v.TopologyWeight)
	require.Equal(t, int64(1), *v.FragmentationWeight)
	require.True(t, *v.Workload.Pin)
	require.Len(t, v.Workload.Prior, 1)
	require.Equal(t, int32(100), *v.Workload.PriorWeight)
}

// withPrior sets the args' workload prior to ts.
func withPrior(ts []config.TaskTypeWeight) func(*config.GPUPackArgs) {
	return func(a *config.GPUPackArgs) { a.Workload.Prior = ts }
}

func TestValidateListsEveryError(t *testing.T) {
	tests := []struct {
		name   string
		modify func(a *config.GPUPackArgs)
		want   []string // "field: type" for every error, in order
	}{
		{"nil", nil, []string{"args: Required value"}},
		{
			"everything wrong",
			func(a *config.GPUPackArgs) {
				a.FragmentationWeight = -1
				a.TopologyWeight = 101
				a.WholeResource = "gpu"
				a.SharedResource = ""
				a.MIGResourcePrefix = "nvidia.com/mig-"
				a.ReplicaPolicy = "scatter"
				a.DefaultTopology = "best"
				a.Workload.PriorWeight = -5
				a.Workload.HalfLife = 0
				a.Workload.Prior = []config.TaskTypeWeight{
					{Kind: "whole", Count: 0, Weight: 1},
					{Kind: "gpu", Weight: 1},
					{Kind: "shared", Milli: 500, Weight: -3},
				}
			},
			[]string{
				"args.fragmentationWeight: Invalid value",
				"args.topologyWeight: Invalid value",
				"args.wholeResource: Invalid value",
				"args.sharedResource: Required value",
				"args.replicaPolicy: Unsupported value",
				"args.defaultTopology: Unsupported value",
				"args.workload.priorWeight: Invalid value",
				"args.workload.halfLife: Invalid value",
				"args.workload.prior[0].count: Invalid value",
				"args.workload.prior[1].kind: Unsupported value",
				"args.workload.prior[2].weight: Invalid value",
				// total 1 + 1 - 3 = -1
				"args.workload.prior: Invalid value",
			},
		},
		{
			"both weights zero",
			func(a *config.GPUPackArgs) { a.FragmentationWeight, a.TopologyWeight = 0, 0 },
			[]string{"args.topologyWeight: Invalid value"},
		},
		{
			"same resource twice",
			func(a *config.GPUPackArgs) { a.SharedResource = a.WholeResource },
			[]string{"args.sharedResource: Invalid value"},
		},
		{
			"zero prior weight needs pin",
			func(a *config.GPUPackArgs) { a.Workload.PriorWeight = 0 },
			[]string{"args.workload.priorWeight: Invalid value"},
		},
		{
			"zero prior weight with pin is fine",
			func(a *config.GPUPackArgs) { a.Workload.PriorWeight, a.Workload.Pin = 0, true },
			nil,
		},
		{
			"empty prior",
			func(a *config.GPUPackArgs) { a.Workload.Prior = nil },
			[]string{"args.workload.prior: Required value"},
		},
		// A task type's model is compared exactly with the GPUs' published
		// model: control characters, padding blanks and huge names can
		// never match.
		{
			"prior models that can never match",
			func(a *config.GPUPackArgs) {
				a.Workload.Prior = []config.TaskTypeWeight{
					{Kind: "whole", Count: 1, Model: "NVIDIA A100-SXM4-80GB", Weight: 1}, // as NVML names it: fine
					{Kind: "whole", Count: 1, Model: " A100", Weight: 1},
					{Kind: "whole", Count: 1, Model: "A100\n", Weight: 1},
					{Kind: "shared", Milli: 500, Model: strings.Repeat("x", 257), Weight: 1},
				}
			},
			[]string{
				"args.workload.prior[1].model: Invalid value",
				"args.workload.prior[2].model: Invalid value",
				"args.workload.prior[3].model: Invalid value",
			},
		},
		// Issue 12 item 6: a bare domain as MIG prefix claims every
		// nvidia.com resource (nvidia.com/gpu included) as MIG.
		{
			"MIG prefix is a bare domain",
			func(a *config.GPUPackArgs) { a.MIGResourcePrefix = "nvidia.com/" },
			[]string{"args.migResourcePrefix: Invalid value"},
		},
		{
			"MIG prefix claims the whole resource",
			func(a *config.GPUPackArgs) { a.MIGResourcePrefix = "nvidia.com/g" },
			// nvidia.com/gpu and nvidia.com/gpu.shared both start with it
			[]string{"args.migResourcePrefix: Invalid value", "args.migResourcePrefix: Invalid value"},
		},
		{
			"MIG prefix claims the shared resource",
			func(a *config.GPUPackArgs) {
				a.SharedResource, a.MIGResourcePrefix = "nvidia.com/mig-shared", "nvidia.com/mig-"
			},
			[]string{"args.migResourcePrefix: Invalid value"},
		},
		{
			"MIG prefix without a domain",
			func(a *config.GPUPackArgs) { a.MIGResourcePrefix = "mig-" },
			[]string{"args.migResourcePrefix: Invalid value"},
		},
		{
			"MIG prefix with a character no resource name has",
			func(a *config.GPUPackArgs) { a.MIGResourcePrefix = "nvidia.com/mig " },
			[]string{"args.migResourcePrefix: Invalid value"},
		},
		// Issue 12 item 6: names that are not valid resource names.
		{
			"resource names that are not resource names",
			func(a *config.GPUPackArgs) {
				a.WholeResource = "nvidia.com/gpu s"    // space
				a.SharedResource = "nvidia.com/-shared" // must start alphanumeric
			},
			[]string{"args.wholeResource: Invalid value", "args.sharedResource: Invalid value"},
		},
		{
			"native and quota names",
			func(a *config.GPUPackArgs) {
				a.WholeResource = "kubernetes.io/gpu"
				a.SharedResource = "requests.nvidia.com/gpu"
			},
			[]string{"args.wholeResource: Invalid value", "args.sharedResource: Invalid value"},
		},
		{
			"domain with a bad character",
			func(a *config.GPUPackArgs) { a.WholeResource = "nvidia_com/gpu" },
			[]string{"args.wholeResource: Invalid value"},
		},
		// Issue 12 item 6: a MIG prior of 2^31-1 devices (no node holds
		// more than 64 GPUs x 8 slices = 512).
		{
			"MIG prior of 2^31-1 devices",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1g.5gb", Count: 1<<31 - 1, Weight: 1}}),
			[]string{"args.workload.prior[0].count: Invalid value"},
		},
		{
			"MIG prior of 513 devices",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1g.5gb", Count: 513, Weight: 1}}),
			[]string{"args.workload.prior[0].count: Invalid value"},
		},
		{
			"MIG prior of 512 devices is the limit",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1g.5gb", Count: 512, Weight: 1}}),
			nil,
		},
		{
			"MIG prior whose profile is no resource name",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1g 5gb", Count: 1, Weight: 1}}),
			[]string{"args.workload.prior[0].migProfile: Invalid value"},
		},
		{
			// A typo is a weight that never matches a request (profiles
			// are compared exactly).
			"MIG prior whose profile is no MIG profile name",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "banana", Count: 1, Weight: 5}}),
			[]string{"args.workload.prior[0].migProfile: Invalid value"},
		},
		{
			"MIG prior profile in upper case",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1g.10GB", Count: 1, Weight: 5}}),
			[]string{"args.workload.prior[0].migProfile: Invalid value"},
		},
		{
			"MIG prior profiles of compute instances and media extensions",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1c.2g.20gb", Count: 1, Weight: 5}, {Kind: "mig", MIGProfile: "7g.80gb", Count: 1, Weight: 1}}),
			nil,
		},
		// NVIDIA's resource name writes '+' as '.' (nvidia.com/mig-1g.10gb.me):
		// a profile with media extensions is a valid prior (before: "not
		// usable in a resource name", and an H100's 1g.10gb+me could not be
		// weighted).
		{
			"MIG prior profiles with media extensions",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1g.10gb+me", Count: 1, Weight: 5}, {Kind: "mig", MIGProfile: "1g.20gb+me.all", Count: 1, Weight: 1}}),
			nil,
		},
		{
			"whole prior of 2^31-1 GPUs",
			withPrior([]config.TaskTypeWeight{{Kind: "whole", Count: 1<<31 - 1, Weight: 1}}),
			[]string{"args.workload.prior[0].count: Invalid value"},
		},
		{
			"MIG prior without profile",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", Count: 1, Weight: 1}}),
			[]string{"args.workload.prior[0].migProfile: Required value"},
		},
		// Each prior error names the field at fault, as a user wrote it.
		{
			"shared prior of 1500 milli",
			withPrior([]config.TaskTypeWeight{{Kind: "mig", MIGProfile: "1g.10gb", Count: 1, Weight: 3}, {Kind: "shared", Milli: 1500, Weight: 1}}),
			[]string{"args.workload.prior[1].milli: Invalid value"},
		},
		{
			"shared prior without milli",
			withPrior([]config.TaskTypeWeight{{Kind: "shared", Weight: 1}}),
			[]string{"args.workload.prior[0].milli: Invalid value"},
		},
		{
			"kind in capitals",
			withPrior([]config.TaskTypeWeight{{Kind: "Whole", Count: 1, Weight: 1}}),
			// Only the kind: its weight still counts toward the total.
			[]string{"args.workload.prior[0].kind: Unsupported value"},
		},
		{
			"whole prior with a share",
			withPrior([]config.TaskTypeWeight{{Kind: "whole", Count: 1, Milli: 500, Weight: 1}}),
			[]string{"args.workload.prior[0].milli: Forbidden"},
		},
		{
			"shared prior with a MIG profile",
			withPrior([]config.TaskTypeWeight{{Kind: "shared", Milli: 500, MIGProfile: "1g.5gb", Weight: 1}}),
			[]string{"args.workload.prior[0].migProfile: Forbidden"},
		},
		{
			"shared prior of 2 GPUs",
			withPrior([]config.TaskTypeWeight{{Kind: "shared", Count: 2, Milli: 500, Weight: 1}}),
			[]string{"args.workload.prior[0].count: Invalid value"},
		},
		{
			"shared prior with count 1 is fine",
			withPrior([]config.TaskTypeWeight{{Kind: "shared", Count: 1, Milli: 500, Weight: 1}}),
			nil,
		},
		{
			"weight left out",
			withPrior([]config.TaskTypeWeight{{Kind: "whole", Count: 2}}),
			[]string{"args.workload.prior: Invalid value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a *config.GPUPackArgs
			if tt.modify != nil {
				a = defaults(t)
				tt.modify(a)
			}
			errs := validation.ValidateGPUPackArgs(field.NewPath("args"), a)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field+": "+string(e.Type.String()))
			}
			require.Equal(t, tt.want, got, "%v", errs)
		})
	}
}

// A shared entry's count of 1 is the type pkg/score learns from shared
// pods (count 0), so the prior is learned on.
func TestSharedCountOneIsTheLearnedType(t *testing.T) {
	one, err := config.TaskTypeWeight{Kind: "shared", Count: 1, Milli: 500, Weight: 1}.TaskType()
	require.NoError(t, err)
	none, err := config.TaskTypeWeight{Kind: "shared", Milli: 500, Weight: 1}.TaskType()
	require.NoError(t, err)
	require.Equal(t, none, one)
	require.Equal(t, 0, one.Count)
}

// decodeConfig decodes a KubeSchedulerConfiguration file as kube-scheduler
// does (defaults applied).
func decodeConfig(t *testing.T, yaml string) *schedconfig.KubeSchedulerConfiguration {
	t.Helper()
	obj, _, err := schedscheme.Codecs.UniversalDecoder().Decode([]byte(yaml), nil, nil)
	require.NoError(t, err)
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	require.True(t, ok)
	return cfg
}

// requireInvalid checks errs are exactly want's, in order, each an Invalid
// error written "field<sep>part of the detail".
func requireInvalid(t *testing.T, errs field.ErrorList, want []string, sep string) {
	t.Helper()
	require.Len(t, errs, len(want), "%v", errs)
	for i, w := range want {
		head, part, _ := strings.Cut(w, sep)
		require.Equal(t, head, errs[i].Field)
		require.Equal(t, field.ErrorTypeInvalid, errs[i].Type)
		require.Contains(t, errs[i].Error(), part)
	}
}

// pluginConfig entries kube-scheduler would silently ignore are refused,
// each naming its path; the files are decoded as kube-scheduler does.
func TestValidatePluginConfigNames(t *testing.T) {
	// The scheduler's registry: kube-scheduler's in-tree plugins and GPUPack.
	registered := []string{"GPUPack"}
	for name := range frameworkplugins.NewInTreeRegistry() {
		registered = append(registered, name)
	}
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n"
	const gpupack = "- schedulerName: gpupack-scheduler\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n"
	tests := []struct {
		name string
		yaml string
		want []string // "field: type: detail part" of every error
	}{
		{"args for GPUPack", head + gpupack + "  pluginConfig:\n  - name: GPUPack\n    args: {topologyWeight: 3}\n", nil},
		{"args of an in-tree plugin", head + "- schedulerName: default-scheduler\n  pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultingType: List}\n", nil},
		{"name in the wrong case", head + gpupack + "  pluginConfig:\n  - name: GPUpack\n    args: {topologyWeight: 3}\n",
			[]string{`profiles[0].pluginConfig[0].name: Invalid value: did you mean "GPUPack"?`}},
		{"the args' kind as the name", head + gpupack + "  pluginConfig:\n  - name: GPUPackArgs\n    args: {topologyWeight: 3}\n",
			[]string{`profiles[0].pluginConfig[0].name: Invalid value: did you mean "GPUPack"?`}},
		{"one letter off", head + gpupack + "  pluginConfig:\n  - name: GPUPak\n    args: {topologyWeight: 3}\n",
			[]string{`profiles[0].pluginConfig[0].name: Invalid value: did you mean "GPUPack"?`}},
		{"nothing like it", head + gpupack + "  pluginConfig:\n  - name: Coscheduling\n    args: {}\n",
			[]string{"profiles[0].pluginConfig[0].name: Invalid value: no plugin of that name"}},
		{"GPUPack args in a profile without GPUPack", head + "- schedulerName: default-scheduler\n  pluginConfig:\n  - name: GPUPack\n    args: {topologyWeight: 3}\n" + gpupack,
			[]string{`profiles[0].pluginConfig[0].name: Invalid value: profile "default-scheduler" does not enable GPUPack`}},
		// Enabled at one extension point only is enabled (the profile check
		// at start judges where).
		{"GPUPack at bind only", head + "- schedulerName: p\n  plugins:\n    bind:\n      enabled: [{name: GPUPack}]\n  pluginConfig:\n  - name: GPUPack\n    args: {}\n", nil},
		{"second profile", head + gpupack + "- schedulerName: other\n  pluginConfig:\n  - name: gpupack\n    args: {}\n",
			[]string{`profiles[1].pluginConfig[0].name: Invalid value: did you mean "GPUPack"?`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireInvalid(t, validation.ValidatePluginConfigNames(decodeConfig(t, tt.yaml), registered), tt.want, ": Invalid value: ")
		})
	}
}

// A binding extender interested in GPU pods would bind them in place of
// GPUPack, without their devices.
func TestValidateExtenderBinders(t *testing.T) {
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n"
	const gpupack = "- schedulerName: gpupack-scheduler\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n"
	const plain = "- schedulerName: default-scheduler\n"
	gpu := func(name string) bool { return name == "nvidia.com/gpu" || strings.HasPrefix(name, "nvidia.com/mig-") }
	tests := []struct {
		name string
		yaml string
		want []string // "field: detail part" of every error
	}{
		{"binder for every pod", head + gpupack + "extenders:\n- urlPrefix: http://x\n  bindVerb: bind\n",
			[]string{"extenders[0].bindVerb: manages no resources, so it binds every pod"}},
		{"binder for a GPU resource", head + gpupack + "extenders:\n- urlPrefix: http://x\n  bindVerb: bind\n  managedResources:\n  - name: example.com/fpga\n  - name: nvidia.com/mig-1g.5gb\n",
			[]string{"extenders[0].managedResources[1].name: binds (bindVerb \"bind\")"}},
		{"binder for other resources", head + gpupack + "extenders:\n- urlPrefix: http://x\n  bindVerb: bind\n  managedResources:\n  - name: example.com/fpga\n", nil},
		{"filter-only extender", head + gpupack + "extenders:\n- urlPrefix: http://x\n  filterVerb: filter\n", nil},
		{"no GPUPack profile", head + plain + "extenders:\n- urlPrefix: http://x\n  bindVerb: bind\n", nil},
		{"GPUPack in the second profile", head + plain + gpupack + "extenders:\n- urlPrefix: http://x\n  filterVerb: f\n- urlPrefix: http://y\n  bindVerb: bind\n",
			[]string{"extenders[1].bindVerb: manages no resources"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireInvalid(t, validation.ValidateExtenderBinders(decodeConfig(t, tt.yaml), gpu), tt.want, ": ")
		})
	}
}

// Profiles share the cache of the devices in use: one resource name read
// as two kinds of device by two profiles' GPUPack args is refused, naming
// the later profile's field and the earlier profile. Profiles without
// pluginConfig read the defaults (nvidia.com/gpu whole,
// nvidia.com/gpu.shared shared, nvidia.com/mig- MIG).
func TestValidateResourceKinds(t *testing.T) {
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n"
	profile := func(name, args string) string {
		y := "- schedulerName: " + name + "\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n"
		if args != "" {
			y += "  pluginConfig:\n  - name: GPUPack\n    args: " + args + "\n"
		}
		return y
	}
	tests := []struct {
		name string
		yaml string
		want []string // "field: detail part" of every error
	}{
		{"one profile", head + profile("a", ""), nil},
		{"two profiles, the defaults", head + profile("a", "") + profile("b", "{topologyWeight: 5}"), nil},
		{"other names for other devices", head + profile("a", "") + profile("b", "{wholeResource: example.com/gpu, sharedResource: example.com/gpu.shared, migResourcePrefix: example.com/mig-}"), nil},
		{"the same whole name", head + profile("a", "{sharedResource: example.com/s}") + profile("b", "{sharedResource: example.com/t}"), nil},
		{"default whole read as shared", head + profile("a", "{wholeResource: example.com/gpu, sharedResource: nvidia.com/gpu}") + profile("b", ""),
			[]string{`profiles[1].pluginConfig[GPUPack].args.wholeResource: profile "a" reads it as time-shared replicas`}},
		{"shared read as whole, later profile", head + profile("a", "") + profile("b", "{wholeResource: example.com/gpu, sharedResource: nvidia.com/gpu}"),
			[]string{`profiles[1].pluginConfig[GPUPack].args.sharedResource: profile "a" reads it as whole GPUs`}},
		{"whole read as MIG", head + profile("a", "{migResourcePrefix: example.com/m}") + profile("b", "{wholeResource: example.com/mx}"),
			[]string{`profiles[1].pluginConfig[GPUPack].args.wholeResource: profile "a" reads it as MIG devices`}},
		{"MIG prefix claims the other's whole", head + profile("a", "{wholeResource: example.com/mx}") + profile("b", "{migResourcePrefix: example.com/m}"),
			[]string{`profiles[1].pluginConfig[GPUPack].args.migResourcePrefix: claims "example.com/mx", which profile "a" reads as whole GPUs`}},
		{"overlapping MIG prefixes", head + profile("a", "") + profile("b", "{migResourcePrefix: nvidia.com/mig-1g}"),
			[]string{`profiles[1].pluginConfig[GPUPack].args.migResourcePrefix: overlaps profile "a"'s migResourcePrefix "nvidia.com/mig-"`}},
		{"a profile without GPUPack reads nothing", head + "- schedulerName: default-scheduler\n" + profile("b", "{wholeResource: nvidia.com/gpu.shared, sharedResource: nvidia.com/gpu}"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireInvalid(t, validation.ValidateResourceKinds(decodeConfig(t, tt.yaml)), tt.want, ": ")
		})
	}
}

// A prior entry's model may name several models joined by "|"; pkg/score
// compares each alternative exactly with the GPUs' published model, so an
// alternative with blanks around it, or an empty one, matches no GPU and the
// entry's weight would silently never apply. Validation refuses them at the
// field and says what to write: the alternatives trimmed, the empty ones
// dropped, joined by a bare "|".
func TestValidateModelAlternatives(t *testing.T) {
	tests := []struct {
		name, model string
		// want are substrings of the one error; none: accepted.
		want []string
	}{
		{name: "two models", model: "A100|H100"},
		{name: "names with inner blanks", model: "NVIDIA A100-SXM4-80GB|NVIDIA H100 80GB HBM3"},
		{name: "one model", model: "NVIDIA H200"},
		{
			// "A100 " -> "A100", " H100" -> "H100": "A100|H100".
			name: "blanks around |", model: "A100 | H100",
			want: []string{`args.workload.prior[1].model: Invalid value: "A100 | H100"`,
				`leading or trailing blanks in the alternative "A100 "`, `write "A100|H100"`},
		},
		{
			// The first alternative is fine; " H100" -> "H100".
			name: "blank after |", model: "A100| H100",
			want: []string{`leading or trailing blanks in the alternative " H100"`, `write "A100|H100"`},
		},
		{
			// U+00A0 is a blank too: "A100\u00a0" -> "A100".
			name: "no-break space before |", model: "A100\u00a0|H100",
			want: []string{`in the alternative "A100\u00a0"`, `write "A100|H100"`},
		},
		{
			// "A" and "": the empty one dropped: "A".
			name: "empty last alternative", model: "A|",
			want: []string{`args.workload.prior[1].model: Invalid value: "A|"`, "an empty alternative", `write "A"`},
		},
		{
			// "" and "A": "A".
			name: "empty first alternative", model: "|A100",
			want: []string{"an empty alternative", `write "A100"`},
		},
		{
			// "A", "" and "B": "A|B".
			name: "empty middle alternative", model: "A||B",
			want: []string{"an empty alternative", `write "A|B"`},
		},
		{
			// "" and "": no model left.
			name: "only |", model: "|",
			want: []string{"an empty alternative", "leave model out (any model)"},
		},
		{
			// One model: " A100" -> "A100".
			name: "one model with a leading blank", model: " A100",
			want: []string{"leading or trailing blanks: GPU models are compared exactly", `write "A100"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := defaults(t)
			a.Workload.Prior = []config.TaskTypeWeight{
				{Kind: "whole", Count: 1, Weight: 1},
				{Kind: "whole", Count: 1, Model: tc.model, Weight: 1},
			}
			errs := validation.ValidateGPUPackArgs(field.NewPath("args"), a)
			if len(tc.want) == 0 {
				require.Empty(t, errs)
				return
			}
			require.Len(t, errs, 1, "%v", errs)
			require.Equal(t, field.ErrorTypeInvalid, errs[0].Type)
			require.Equal(t, "args.workload.prior[1].model", errs[0].Field)
			for _, w := range tc.want {
				require.Contains(t, errs[0].Error(), w)
			}
		})
	}
}
