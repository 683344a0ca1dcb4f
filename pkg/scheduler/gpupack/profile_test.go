package gpupack

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	frameworkplugins "k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	_ "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1" // GPUPackArgs in the scheme
)

// buildProfiles decodes a KubeSchedulerConfiguration as kube-scheduler does
// (its scheme: v1 defaults, the default plugins in multiPoint) and builds
// each profile with the in-tree plugins and GPUPack, as scheduler.New does;
// then, as scheduler.New does next, it asks each profile's GPUPack for its
// events. It returns each profile's error (nil: the profile starts).
func buildProfiles(t *testing.T, ctx context.Context, yaml string) map[string]error {
	t.Helper()
	obj, _, err := scheme.Codecs.UniversalDecoder().Decode([]byte(yaml), nil, nil)
	require.NoError(t, err)
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	require.True(t, ok, "%T", obj)
	registry := frameworkplugins.NewInTreeRegistry()
	require.NoError(t, registry.Merge(frameworkruntime.Registry{Name: func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		return New(ctx, obj, h)
	}}))
	cs := fake.NewClientset()
	out := map[string]error{}
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		f, err := frameworkruntime.NewFramework(ctx, registry, p,
			frameworkruntime.WithClientSet(cs),
			frameworkruntime.WithSnapshotSharedLister(cache.NewSnapshot(nil, nil)),
			frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(cs, 0)))
		if err == nil {
			for _, e := range f.EnqueueExtensions() {
				if e.Name() == Name {
					_, err = e.EventsToRegister(ctx)
				}
			}
		}
		out[p.SchedulerName] = err
	}
	return out
}

// A profile must run GPUPack through its whole placement chain, with
// GPUPack's Bind before DefaultBinder: else GPU pods are bound without their
// devices. Each case is the profile as a user writes it; the check judges
// kube-scheduler's own expansion of it.
func TestProfileChecks(t *testing.T) {
	manifest, err := os.ReadFile("../../../manifests/scheduler/config.yaml")
	require.NoError(t, err)
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: p\n  plugins:\n"
	// bindFirst is the bind section of manifests/scheduler/config.yaml.
	const bindFirst = "    bind:\n      enabled: [{name: GPUPack}, {name: DefaultBinder}]\n      disabled: [{name: \"*\"}]\n"
	tests := []struct {
		name    string
		yaml    string
		wantErr map[string]string // profile -> error part; absent: starts
	}{
		{name: "the manifest", yaml: string(manifest), wantErr: map[string]string{"gpupack-scheduler": ""}},
		// The default multiPoint list ends with DefaultBinder; GPUPack,
		// appended after it, would never bind.
		{name: "multiPoint alone", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack, weight: 10}]\n",
			wantErr: map[string]string{"p": "bind runs DefaultBinder before GPUPack"}},
		{name: "multiPoint and bind first", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack, weight: 10}]\n" + bindFirst,
			wantErr: map[string]string{"p": ""}},
		// Enabled at bind explicitly, GPUPack comes first even without
		// disabling the default binder: explicit entries go before multiPoint's.
		{name: "multiPoint and bind: GPUPack", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack}]\n    bind:\n      enabled: [{name: GPUPack}]\n",
			wantErr: map[string]string{"p": ""}},
		{name: "bind order reversed", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack}]\n    bind:\n      enabled: [{name: DefaultBinder}, {name: GPUPack}]\n      disabled: [{name: \"*\"}]\n",
			wantErr: map[string]string{"p": "bind runs DefaultBinder before GPUPack"}},
		{name: "bind disabled", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack}]\n    bind:\n      disabled: [{name: GPUPack}]\n",
			wantErr: map[string]string{"p": "GPUPack is not enabled at bind"}},
		{name: "reserve disabled", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack}]\n    reserve:\n      disabled: [{name: GPUPack}]\n" + bindFirst,
			wantErr: map[string]string{"p": "GPUPack is not enabled at reserve"}},
		{name: "filter stage disabled with *", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack}]\n    preFilter:\n      disabled: [{name: \"*\"}]\n    filter:\n      disabled: [{name: \"*\"}]\n" + bindFirst,
			wantErr: map[string]string{"p": "GPUPack is not enabled at preFilter, filter"}},
		// Only at score: GPUPack is instantiated and would never see a GPU pod.
		{name: "score only", yaml: head + "    score:\n      enabled: [{name: GPUPack, weight: 5}]\n",
			wantErr: map[string]string{"p": "GPUPack is not enabled at preFilter, filter, reserve, bind"}},
		{name: "everything but preScore", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack}]\n    preScore:\n      disabled: [{name: GPUPack}]\n" + bindFirst,
			wantErr: map[string]string{"p": "enabled at score but not at preScore"}},
		// Not scoring is legal (logged).
		{name: "score disabled", yaml: head + "    multiPoint:\n      enabled: [{name: GPUPack}]\n    score:\n      disabled: [{name: GPUPack}]\n    preScore:\n      disabled: [{name: GPUPack}]\n" + bindFirst,
			wantErr: map[string]string{"p": ""}},
		// Each profile is judged alone; one without GPUPack is not checked.
		{name: "two profiles", yaml: "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n" +
			"- schedulerName: good\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n" + bindFirst +
			"- schedulerName: bad\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack}]\n",
			wantErr: map[string]string{"default-scheduler": "", "good": "", "bad": `profile "bad": bind runs DefaultBinder before GPUPack`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			got := buildProfiles(t, ctx, tc.yaml)
			require.Len(t, got, len(tc.wantErr))
			for profile, want := range tc.wantErr {
				if want == "" {
					require.NoError(t, got[profile], profile)
				} else {
					require.ErrorContains(t, got[profile], want, profile)
				}
			}
		})
	}
}

// checkProfile on lists written out (the framework's ListPlugins form).
func TestCheckProfile(t *testing.T) {
	set := func(names ...string) schedconfig.PluginSet {
		var s schedconfig.PluginSet
		for _, n := range names {
			s.Enabled = append(s.Enabled, schedconfig.Plugin{Name: n})
		}
		return s
	}
	all := func() *schedconfig.Plugins {
		return &schedconfig.Plugins{
			PreFilter: set(Name), Filter: set("NodeName", Name), PreScore: set(Name), Score: set(Name),
			Reserve: set(Name), Bind: set(Name, "DefaultBinder"),
		}
	}
	tests := []struct {
		name       string
		edit       func(*schedconfig.Plugins)
		wantScores bool
		wantErr    string
		wantSole   bool // soleBinder: pods without GPUs would not bind
	}{
		{"everywhere", func(*schedconfig.Plugins) {}, true, "", false},
		{"no score", func(p *schedconfig.Plugins) { p.Score, p.PreScore = set(), set() }, false, "", false},
		{"preScore alone", func(p *schedconfig.Plugins) { p.Score = set() }, false, "", false},
		{"score alone", func(p *schedconfig.Plugins) { p.PreScore = set() }, false, "not at preScore", false},
		{"no preFilter", func(p *schedconfig.Plugins) { p.PreFilter = set("NodePorts") }, false, "not enabled at preFilter", false},
		{"no filter, no reserve", func(p *schedconfig.Plugins) { p.Filter, p.Reserve = set("NodeName"), set() }, false, "not enabled at filter, reserve", false},
		{"binder first", func(p *schedconfig.Plugins) { p.Bind = set("DefaultBinder", Name) }, false, "bind runs DefaultBinder before GPUPack", false},
		{"two binders first", func(p *schedconfig.Plugins) { p.Bind = set("Other", "DefaultBinder", Name) }, false, "bind runs Other, DefaultBinder before GPUPack", false},
		{"GPUPack binds alone", func(p *schedconfig.Plugins) { p.Bind = set(Name) }, true, "", true},
		{"GPUPack then a custom binder", func(p *schedconfig.Plugins) { p.Bind = set(Name, "MyBinder") }, true, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := all()
			tc.edit(p)
			scores, err := checkProfile(p)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantScores, scores)
			require.Equal(t, tc.wantSole, soleBinder(p))
		})
	}
}

// buildPlugins builds each profile of a KubeSchedulerConfiguration as
// buildProfiles does and returns its plugins as the framework lists them
// (multiPoint expanded, disabled ones removed).
func buildPlugins(t *testing.T, ctx context.Context, yaml string) map[string]*schedconfig.Plugins {
	t.Helper()
	obj, _, err := scheme.Codecs.UniversalDecoder().Decode([]byte(yaml), nil, nil)
	require.NoError(t, err)
	cfg := obj.(*schedconfig.KubeSchedulerConfiguration)
	registry := frameworkplugins.NewInTreeRegistry()
	require.NoError(t, registry.Merge(frameworkruntime.Registry{Name: func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		return New(ctx, obj, h)
	}}))
	cs := fake.NewClientset()
	out := map[string]*schedconfig.Plugins{}
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		f, err := frameworkruntime.NewFramework(ctx, registry, p,
			frameworkruntime.WithClientSet(cs),
			frameworkruntime.WithSnapshotSharedLister(cache.NewSnapshot(nil, nil)),
			frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(cs, 0)))
		require.NoError(t, err)
		out[p.SchedulerName] = f.ListPlugins()
	}
	return out
}

// A profile that enables GPUPack but does not run NodeResourcesFit at
// filter (disabled there, or as a whole) is legal for kube-scheduler and
// GPUPack still never gives a GPU twice (its Filter checks every GPU
// device, other schedulers' pods counted), but nothing checks the pod's
// CPU, memory, pod count or other extended resources: the kubelet then
// rejects pods at admission (OutOfcpu). The start logs a warning naming
// the profile and NodeResourcesFit. Old: accepted silently.
func TestProfileWarnsWithoutResourceFit(t *testing.T) {
	manifest, err := os.ReadFile("../../../manifests/scheduler/config.yaml")
	require.NoError(t, err)
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: p\n  plugins:\n" +
		"    multiPoint:\n      enabled: [{name: GPUPack}]\n" +
		"    bind:\n      enabled: [{name: GPUPack}, {name: DefaultBinder}]\n      disabled: [{name: \"*\"}]\n"
	for _, tc := range []struct {
		name    string
		yaml    string
		profile string
		warn    bool
	}{
		{name: "the manifest", yaml: string(manifest), profile: "gpupack-scheduler"},
		{name: "defaults", yaml: head, profile: "p"},
		// Fit's score off, its filter on: as the manifest.
		{name: "score off", yaml: head + "    score:\n      disabled: [{name: NodeResourcesFit}]\n", profile: "p"},
		{name: "filter off", yaml: head + "    filter:\n      disabled: [{name: NodeResourcesFit}]\n", profile: "p", warn: true},
		{name: "every filter but GPUPack off", yaml: head + "    filter:\n      enabled: [{name: GPUPack}]\n      disabled: [{name: \"*\"}]\n", profile: "p", warn: true},
		{name: "plugin off", yaml: head[:len(head)-len("    bind:\n      enabled: [{name: GPUPack}, {name: DefaultBinder}]\n      disabled: [{name: \"*\"}]\n")] +
			"      disabled: [{name: NodeResourcesFit}]\n" + "    bind:\n      enabled: [{name: GPUPack}, {name: DefaultBinder}]\n      disabled: [{name: \"*\"}]\n",
			profile: "p", warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			p := buildPlugins(t, ctx, tc.yaml)[tc.profile]
			require.NotNil(t, p)
			scores, err := checkProfile(p)
			require.NoError(t, err, "the profile starts")
			var fit []string
			for _, w := range profileWarnings(p, scores) {
				if strings.Contains(w, "NodeResourcesFit") {
					fit = append(fit, w)
				}
			}
			if !tc.warn {
				require.Empty(t, fit)
				return
			}
			require.Len(t, fit, 1)
			require.Contains(t, fit[0], "CPU, memory")
		})
	}
}
