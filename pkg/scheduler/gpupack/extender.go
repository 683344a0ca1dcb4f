package gpupack

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// Binding extenders.
//
// kube-scheduler lets an extender with a bindVerb bind every pod it is
// interested in (no managedResources: every pod; else the pods asking one
// of them) in place of the bind plugins (extendersBinding). A GPU pod
// bound so carries no gpupack.io/devices: the device plugin never learns
// GPUPack's choice. cmd/scheduler-plugin refuses such an extender at start
// for the names it can know there (the defaults and every profile's args);
// names nodes publish only in their resource tables (gpupack.io/topology
// resources) are known once a node publishes them. So PreFilter refuses a
// GPU pod a binding extender is interested in, naming the extender (the
// pod is unresolvable until the configuration changes), and the node
// handler logs the first time a node publishes a name a binding extender
// manages.

// extenderBinds is the names of the binding extenders interested in pod
// ("" when none).
func extenderBinds(extenders []fwk.Extender, pod *v1.Pod) string {
	var names []string
	for _, e := range extenders {
		if e.IsBinder() && e.IsInterested(pod) {
			names = append(names, e.Name())
		}
	}
	return strings.Join(names, ", ")
}

// errExtenderBinds is PreFilter's reason for a GPU pod a binding extender
// would bind.
func errExtenderBinds(names string) error {
	return fmt.Errorf("gpupack: scheduler extender %s (bindVerb) would bind this GPU pod in place of %s, so without its devices (gpupack.io/devices): "+
		"remove the pod's GPU resources from the extender's managedResources, or its bindVerb", names, Name)
}

// bindingExtenders are the names of the binding extenders interested in
// the pods asking resource name (kube-scheduler's own IsInterested, on a
// pod asking one of it).
func bindingExtenders(extenders []fwk.Extender, name string) []string {
	probe := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "probe", Resources: v1.ResourceRequirements{
		Limits: v1.ResourceList{v1.ResourceName(name): resource.MustParse("1")}}}}}}
	var out []string
	for _, e := range extenders {
		if e.IsBinder() && e.IsInterested(probe) {
			out = append(out, e.Name())
		}
	}
	return out
}

// warnBindingExtenders logs, once per name, the resource names node's
// table publishes that a binding extender manages: GPU pods asking them
// are refused at PreFilter (errExtenderBinds).
func (pl *GPUPack) warnBindingExtenders(logger klog.Logger, n *v1.Node) {
	if pl.handle == nil || len(pl.handle.Extenders()) == 0 {
		return
	}
	topo := pl.cache.Topology(n.Name)
	if topo == nil {
		return
	}
	for _, r := range topo.Resources {
		if _, seen := pl.extenderChecked.LoadOrStore(r.Name, true); seen {
			continue
		}
		if names := bindingExtenders(pl.handle.Extenders(), r.Name); len(names) > 0 {
			logger.Error(nil, "A node publishes a GPU resource that a binding scheduler extender manages: GPU pods asking it are refused, as the extender would bind them without their devices",
				"node", klog.KObj(n), "resource", r.Name, "extenders", names, "annotation", protocol.TopologyAnnotation)
		}
	}
}
