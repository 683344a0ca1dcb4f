package gpupack

import (
	"fmt"
	"slices"
	"strings"

	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

// pluginLister is kube-scheduler's framework (the plugin's handle) as far
// as the profile check needs it: the plugins of each extension point once
// the profile is built (multiPoint expanded, disabled ones removed, in the
// order they run).
type pluginLister interface {
	ListPlugins() *schedconfig.Plugins
}

// extensionPoint is one of GPUPack's extension points in a profile.
type extensionPoint struct {
	name    string // as in the KubeSchedulerConfiguration
	plugins func(*schedconfig.Plugins) []schedconfig.Plugin
}

// chain is the extension points a GPU pod's placement goes through, each
// needing the one before: PreFilter parses the request for Filter, Filter
// plans it on each node, Reserve chooses the devices, Bind writes them into
// the pod. Without one of them GPU pods fail at Filter (no PreFilter),
// are reserved on nodes nobody checked (no Filter), or are bound without
// their devices (no Reserve, no Bind): the device plugin then never learns
// the scheduler's choice.
var chain = []extensionPoint{
	{"preFilter", func(p *schedconfig.Plugins) []schedconfig.Plugin { return p.PreFilter.Enabled }},
	{"filter", func(p *schedconfig.Plugins) []schedconfig.Plugin { return p.Filter.Enabled }},
	{"reserve", func(p *schedconfig.Plugins) []schedconfig.Plugin { return p.Reserve.Enabled }},
	{"bind", func(p *schedconfig.Plugins) []schedconfig.Plugin { return p.Bind.Enabled }},
}

// scoring is the pair that ranks nodes: PreScore takes the supply prices
// Score reads.
var scoring = []extensionPoint{
	{"preScore", func(p *schedconfig.Plugins) []schedconfig.Plugin { return p.PreScore.Enabled }},
	{"score", func(p *schedconfig.Plugins) []schedconfig.Plugin { return p.Score.Enabled }},
}

func enabledAt(p *schedconfig.Plugins, e extensionPoint) bool {
	return slices.ContainsFunc(e.plugins(p), func(q schedconfig.Plugin) bool { return q.Name == Name })
}

// checkProfile checks where a built profile runs GPUPack (p is the
// framework's ListPlugins: kube-scheduler's own expansion of multiPoint and
// of the disabled lists, so every way of writing the profile is judged by
// what it does). scores is whether GPUPack ranks the nodes. Errors: GPUPack missing from part of the placement chain,
// another binder before GPUPack at bind (DefaultBinder binds every pod, so
// GPU pods would be bound without their devices: a bare `multiPoint:
// enabled: [GPUPack]` puts the default DefaultBinder first), score without
// preScore. A profile that filters and binds with GPUPack but does not
// score with it (preScore alone prices for nothing) is legal: scores is
// false.
func checkProfile(p *schedconfig.Plugins) (scores bool, err error) {
	if p == nil {
		return false, nil
	}
	var missing []string
	for _, e := range chain {
		if !enabledAt(p, e) {
			missing = append(missing, e.name)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Errorf("%s is not enabled at %s: it must run at preFilter, filter, reserve and bind (as multiPoint enables it), "+
			"else GPU pods fail or are bound without their devices", Name, strings.Join(missing, ", "))
	}
	if i := slices.IndexFunc(p.Bind.Enabled, func(q schedconfig.Plugin) bool { return q.Name == Name }); i > 0 {
		var before []string
		for _, q := range p.Bind.Enabled[:i] {
			before = append(before, q.Name)
		}
		return false, fmt.Errorf("bind runs %s before %s: a binder binds every pod it does not skip, so GPU pods would be bound without their devices; "+
			"list %s first (bind: {enabled: [{name: %s}, {name: DefaultBinder}], disabled: [{name: \"*\"}]}, as manifests/scheduler/config.yaml does)",
			strings.Join(before, ", "), Name, Name, Name)
	}
	pre, sc := enabledAt(p, scoring[0]), enabledAt(p, scoring[1])
	if sc && !pre {
		return false, fmt.Errorf("%s is enabled at score but not at preScore, which takes the prices its score reads: enable both or neither", Name)
	}
	return sc, nil
}

// soleBinder reports whether GPUPack is the only bind plugin of a built
// profile: GPUPack binds GPU pods only (it skips the others), so the
// profile's pods without GPUs would then fail at bind on every attempt.
func soleBinder(p *schedconfig.Plugins) bool {
	return p != nil && len(p.Bind.Enabled) == 1 && p.Bind.Enabled[0].Name == Name
}

// resourceFit is kube-scheduler's plugin that filters nodes by the pod's
// CPU, memory, pod count and extended resources.
const resourceFit = "NodeResourcesFit"

// profileWarnings are what a built profile that passes checkProfile does
// that its user may not expect (scores: checkProfile's answer), one
// sentence each, for the start's log:
//   - GPUPack does not score: nodes are not ranked by it;
//   - GPUPack is the only binder: pods without GPUs fail at bind;
//   - NodeResourcesFit does not filter (disabled at filter, or as a
//     whole): GPUPack's Filter checks the devices of GPU resources only
//     (every device, other schedulers' pods counted, so no GPU is given
//     twice), not the pod's CPU, memory, pod count or other extended
//     resources; a node short of them is chosen and the kubelet rejects
//     the pod at admission. kube-scheduler allows such a profile (a
//     replacement for NodeResourcesFit under another name is possible),
//     so it is not refused.
func profileWarnings(p *schedconfig.Plugins, scores bool) []string {
	if p == nil {
		return nil
	}
	var out []string
	if !scores {
		out = append(out, "GPUPack does not score in this profile: nodes are not ranked by fragmentation or link quality; it still filters and chooses devices")
	}
	if soleBinder(p) {
		out = append(out, "GPUPack is the only binder in this profile and binds GPU pods only: pods without GPUs that select it will fail at bind; enable DefaultBinder after GPUPack")
	}
	if !slices.ContainsFunc(p.Filter.Enabled, func(q schedconfig.Plugin) bool { return q.Name == resourceFit }) {
		out = append(out, fmt.Sprintf("%s does not run at filter in this profile: %s checks the GPU devices of its resources only, not the pod's CPU, memory, "+
			"pod count or other extended resources; nodes short of them are chosen and the kubelet rejects the pods at admission (OutOfcpu, OutOfmemory). "+
			"Enable %s at filter unless another plugin checks them", resourceFit, Name, resourceFit))
	}
	return out
}
