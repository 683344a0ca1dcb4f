package v1_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	schedvalidation "k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	configv1 "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1" // registers GPUPackArgs v1
)

func decode(t *testing.T, data []byte) *schedconfig.KubeSchedulerConfiguration {
	t.Helper()
	obj, _, err := scheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	require.NoError(t, err)
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	require.True(t, ok, "%T", obj)
	return cfg
}

func gpupackArgs(t *testing.T, cfg *schedconfig.KubeSchedulerConfiguration) *config.GPUPackArgs {
	t.Helper()
	for _, p := range cfg.Profiles {
		for _, pc := range p.PluginConfig {
			if pc.Name == "GPUPack" {
				a, ok := pc.Args.(*config.GPUPackArgs)
				require.True(t, ok, "args of type %T", pc.Args)
				return a
			}
		}
	}
	t.Fatal("no GPUPack plugin config")
	return nil
}

// TestManifestConfigLoads decodes manifests/scheduler/config.yaml the way
// kube-scheduler does (its scheme, with our v1 defaults and conversion).
func TestManifestConfigLoads(t *testing.T) {
	data, err := os.ReadFile("../../../../../manifests/scheduler/config.yaml")
	require.NoError(t, err)
	cfg := decode(t, data)
	require.Equal(t, "gpupack-scheduler", cfg.Profiles[0].SchedulerName)
	require.Equal(t, "gpupack-scheduler", cfg.LeaderElection.ResourceName)
	a := gpupackArgs(t, cfg)
	require.Equal(t, int64(1), a.FragmentationWeight)
	require.Equal(t, int64(2), a.TopologyWeight)
	require.Equal(t, config.ReplicaPolicyPacked, a.ReplicaPolicy)
	require.Len(t, a.Workload.Prior, 8, "the default prior")
}

// TestPartialArgsGetDefaults: fields left out take the defaults.
func TestPartialArgsGetDefaults(t *testing.T) {
	cfg := decode(t, []byte(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: gpupack-scheduler
  pluginConfig:
  - name: GPUPack
    args:
      topologyWeight: 5
      workload:
        pin: true
        prior: [{kind: shared, milli: 250, weight: 3}]
`))
	a := gpupackArgs(t, cfg)
	require.Equal(t, int64(5), a.TopologyWeight)
	require.Equal(t, int64(1), a.FragmentationWeight)
	require.Equal(t, "nvidia.com/gpu", a.WholeResource)
	require.Equal(t, []config.TaskTypeWeight{{Kind: "shared", Milli: 250, Weight: 3}}, a.Workload.Prior)
	require.True(t, a.Workload.Pin)
	require.Equal(t, int32(100), a.Workload.PriorWeight)
}

// TestManifestConfigValidates: kube-scheduler accepts the profile, and in
// it GPUPack's score is not outvoted by the resource scorers (disabled).
func TestManifestConfigValidates(t *testing.T) {
	data, err := os.ReadFile("../../../../../manifests/scheduler/config.yaml")
	require.NoError(t, err)
	cfg := decode(t, data)
	require.NoError(t, schedvalidation.ValidateKubeSchedulerConfiguration(cfg))
	p := cfg.Profiles[0].Plugins
	var disabled []string
	for _, d := range p.Score.Disabled {
		disabled = append(disabled, d.Name)
	}
	require.ElementsMatch(t, []string{"NodeResourcesFit", "NodeResourcesBalancedAllocation"}, disabled)
	for _, e := range p.MultiPoint.Enabled {
		if e.Name == "GPUPack" {
			require.Equal(t, int32(10), e.Weight)
		}
	}
}

// The generated conversions and the hand-written ones for v1's optional
// fields round-trip defaulted args, and the generated deep copy shares no
// pointer with the original.
func TestConversionRoundTrip(t *testing.T) {
	var v configv1.GPUPackArgs
	configv1.SetDefaults_GPUPackArgs(&v)
	v.ReplicaPolicy = ptr.To(string(config.ReplicaPolicySpread))
	var in config.GPUPackArgs
	require.NoError(t, configv1.Convert_v1_GPUPackArgs_To_config_GPUPackArgs(&v, &in, nil))
	require.Equal(t, config.ReplicaPolicySpread, in.ReplicaPolicy)
	require.Equal(t, config.TopologyPreferred, in.DefaultTopology)
	require.Equal(t, config.TaskWhole, in.Workload.Prior[0].Kind)
	var back configv1.GPUPackArgs
	require.NoError(t, configv1.Convert_config_GPUPackArgs_To_v1_GPUPackArgs(&in, &back, nil))
	require.Equal(t, v, back)

	c := v.DeepCopy()
	require.Equal(t, &v, c)
	require.NotSame(t, v.ReplicaPolicy, c.ReplicaPolicy)
	require.NotSame(t, v.Workload, c.Workload)
	c.Workload.Prior[0].Weight++
	require.NotEqual(t, v.Workload.Prior[0].Weight, c.Workload.Prior[0].Weight)

	ic := in.DeepCopy()
	ic.Workload.Prior[0].Weight++
	require.NotEqual(t, in.Workload.Prior[0].Weight, ic.Workload.Prior[0].Weight)
}

// Other users' args with a field kube-scheduler's scheme does not know
// (a typo, the wrong case, a field nested in the prior) or of the wrong
// type fail the config's decoding, naming the field: strict decoding
// holds for GPUPackArgs because it is registered in kube-scheduler's
// scheme (a plugin's args that are not are kept undecoded, unchecked).
func TestArgsDecodeStrictly(t *testing.T) {
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n" +
		"- schedulerName: gpupack-scheduler\n  pluginConfig:\n  - name: GPUPack\n    args: "
	for _, tc := range []struct{ args, want string }{
		{"{bogus: 1}", `unknown field "bogus"`},
		{"{topologyweight: 3}", `unknown field "topologyweight"`},
		{"{workload: {prior: [{kind: whole, count: 1, wieght: 3}]}}", `unknown field "workload.prior[0].wieght"`},
		{`{topologyWeight: "3"}`, "GPUPackArgs.topologyWeight of type int64"},
		{"{topologyWeight: 3, topologyWeight: 4}", `"topologyWeight" already set`},
	} {
		_, _, err := scheme.Codecs.UniversalDecoder().Decode([]byte(head+tc.args+"\n"), nil, nil)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}
