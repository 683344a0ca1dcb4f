package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// binder is kube-scheduler's HTTP extender with a bindVerb managing
// names (never called: only its IsBinder and IsInterested are asked).
func binder(t *testing.T, names ...string) fwk.Extender {
	t.Helper()
	cfg := &schedconfig.Extender{URLPrefix: "http://127.0.0.1:1", BindVerb: "bind"}
	for _, n := range names {
		cfg.ManagedResources = append(cfg.ManagedResources, schedconfig.ExtenderManagedResource{Name: n})
	}
	e, err := scheduler.NewHTTPExtender(cfg)
	require.NoError(t, err)
	return e
}

// kube-scheduler lets an extender with a bindVerb bind the pods that ask
// one of its managedResources, in place of the bind plugins: such a GPU
// pod would be bound without its devices. The start refuses the extender
// for the args' and the default GPU names (cmd/scheduler-plugin), but a
// name only nodes publish in their resource tables (example.com/tsgpu
// here) is known only once a node publishes it. Old: the pod was
// reserved, then bound by the extender without gpupack.io/devices. Now
// PreFilter refuses it, naming the extender, as unresolvable; GPU pods the
// extender does not manage, and pods without GPUs, are placed as before.
func TestBindingExtenderOfAPublishedName(t *testing.T) {
	topo := fixture.DGX1V100("x")
	topo.Resources = []topology.Resource{
		{Name: "nvidia.com/gpu", Kind: topology.KindGPU},
	}
	tabled := fixture.DGX1V100("y")
	tabled.Resources = []topology.Resource{{Name: "example.com/tsgpu", Kind: topology.KindGPU}}
	ext := binder(t, "example.com/tsgpu", "example.com/nic")
	for _, tc := range []struct {
		name    string
		pod     *v1.Pod
		refused bool
	}{
		{name: "GPU pod of a managed published name", pod: gpuPod("tsgpu", "example.com/tsgpu", 1), refused: true},
		{name: "managed name in an init container", pod: fixture.MakePod().Named("init").InitContainer("i").Limit("example.com/tsgpu", 1).
			Container("main").Limit("example.com/tsgpu", 1).Obj(), refused: true},
		{name: "GPU pod of another name", pod: gpuPod("gpu", "nvidia.com/gpu", 1)},
		{name: "GPU pod that also asks a managed non-GPU name", pod: fixture.MakePod().Named("both").Container("main").
			Limit("nvidia.com/gpu", 1).Limit("example.com/nic", 1).Obj(), refused: true},
		{name: "CPU-only pod", pod: fixture.MakePod().Named("cpu").Container("main").Obj()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, harnessOptions{options: []frameworkruntime.Option{frameworkruntime.WithExtenders([]fwk.Extender{ext})}},
				nil, []*v1.Node{gpuNode(t, "x", topo), gpuNode(t, "y", tabled)})
			_, st, _ := h.fh.RunPreFilterPlugins(h.ctx, framework.NewCycleState(), tc.pod)
			if !tc.refused {
				require.True(t, st.IsSuccess() || st.IsSkip(), "%v", st)
				return
			}
			require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code(), "%v", st)
			require.Contains(t, st.Message(), ext.Name())
			require.Contains(t, st.Message(), "without its devices")
		})
	}
}

// bindingExtenders names the binding extenders interested in a resource
// name (what the node handler logs when a node first publishes a name).
func TestBindingExtendersOfName(t *testing.T) {
	a, b, all := binder(t, "example.com/tsgpu"), binder(t, "example.com/other"), binder(t)
	require.Equal(t, []string{a.Name()}, bindingExtenders([]fwk.Extender{a, b}, "example.com/tsgpu"))
	require.Empty(t, bindingExtenders([]fwk.Extender{a, b}, "example.com/x"))
	require.Len(t, bindingExtenders([]fwk.Extender{all}, "example.com/x"), 1, "no managedResources: every pod")
}
