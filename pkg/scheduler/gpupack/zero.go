package gpupack

import (
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
)

// A container may list a GPU resource at 0 (charts write
// `nvidia.com/gpu: 0` for their CPU flavour). It asks for no device, yet
// the kubelet's device manager (devicesToAllocate) checks every device
// plugin resource a container lists before it sees that none is needed:
// on a node that serves the resource with no healthy device it refuses the
// pod ("no healthy devices present; cannot allocate unhealthy devices",
// UnexpectedAdmissionError; kubernetes/kubernetes#128854). Filter keeps
// such pods off those nodes, CPU-only pods too (their Filter then runs):
// the CPU-only score would even prefer the node, whose CPU feeds no free
// GPU.

const zeroKey fwk.StateKey = Name + "/zero"

// zeroAsks are the GPU resources a pod lists at 0 and asks no device of.
type zeroAsks struct{ names []string }

// Clone shares the (immutable) state.
func (z *zeroAsks) Clone() fwk.StateData { return z }

// zeroAsked returns the resources the pod's containers (init, sidecar and
// app) list at 0, by limit or by request, that the plugin knows as GPU
// resources (isGPUResource) and that no request of reqs asks, sorted.
func (pl *GPUPack) zeroAsked(pod *v1.Pod, reqs []containerRequest) []string {
	var out []string
	check := func(c *v1.Container, l v1.ResourceList) {
		for n := range l {
			name := string(n)
			if slices.Contains(out, name) || !pl.isGPUResource(name) ||
				slices.ContainsFunc(reqs, func(r containerRequest) bool { return r.resource == name }) {
				continue
			}
			if k, err := protocol.DeviceCount(c, name); err == nil && k == 0 {
				out = append(out, name)
			}
		}
	}
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			check(&cs[i], cs[i].Resources.Limits)
			check(&cs[i], cs[i].Resources.Requests)
		}
	}
	slices.Sort(out)
	return out
}

func readZeroAsks(cs fwk.CycleState) (*zeroAsks, bool) {
	d, err := cs.Read(zeroKey)
	if err != nil {
		return nil, false
	}
	z, ok := d.(*zeroAsks)
	return z, ok
}

// checkZeroAsks fails (errNotServed) when the node publishes one of the
// names in its resource table and has no healthy device of it (a device of
// the resource fits nowhere on the node with none in use). Nodes gpupack
// has no view of, names the node does not publish, and nodes without a
// resource table (what the kubelet registers is not known) pass, as do
// resources of a kind gpupack does not place (their health is not
// modelled).
func (pl *GPUPack) checkZeroAsks(ni fwk.NodeInfo, names []string) error {
	view, err := pl.cache.ViewNodeInfo(ni)
	if err != nil || view.Topology == nil || len(view.Topology.Resources) == 0 {
		return nil
	}
	for _, name := range names {
		if _, ok := view.Topology.Resource(name); !ok {
			continue
		}
		r, err := pl.resolve(view.Topology, containerRequest{resource: name, req: score.Request{Count: 1, Policy: pl.policy, Topology: score.HintNone}})
		if err != nil {
			continue
		}
		empty := view.Empty
		if empty == nil || empty.Node() != view.Topology {
			empty = score.NewState(view.Topology)
		}
		if _, failed := planOn(empty, []containerRequest{r}, pl.workload.Distribution(), false); failed >= 0 {
			return errNotServed{fmt.Errorf("node serves %s with no healthy device: the kubelet refuses a container that lists it, even at 0 (kubernetes/kubernetes#128854)", name)}
		}
	}
	return nil
}
