package gpupack

import (
	"context"
	"strconv"
	"strings"

	"github.com/gpupack/gpupack/pkg/protocol"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

var _ fwk.SignPlugin = &GPUPack{}

// SignPod signs what the plugin's Filter and Score depend on in the pod:
// its GPU requests (per container, as parsed, init containers folded in:
// a pod-level request with each container's count and whether it keeps
// its devices, which place its replicas), its topology hint, its
// gpupack.io/replica-policy when it has one, and its CPU and memory
// (fragmentation counts them; NodeResourcesFit, which signs them too, may
// be disabled). Pods with the same signature get the same device plans on
// a node, so the scheduler may batch them (KEP-5598); Reserve still
// chooses devices against the current cache. A pod whose request cannot
// be parsed is not signed.
func (pl *GPUPack) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	reqs, hint, err := pl.parse(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	v := make([]string, 0, len(reqs)+4)
	v = append(v, "hint="+hint.String())
	if p, set, _ := protocol.ReplicaPolicyOf(pod); set { // parse checked it
		v = append(v, "policy="+p.String())
	}
	if cpu, mem := podCPUMemory(pod); cpu > 0 || mem > 0 {
		v = append(v, "cpu="+strconv.FormatInt(cpu, 10)+"m", "memory="+strconv.FormatInt(mem, 10)+"Mi")
	}
	for _, r := range reqs {
		v = append(v, r.container+"/"+r.resource+"="+strconv.Itoa(r.req.Count)+usesSignature(r.uses))
	}
	return []fwk.SignFragment{{Key: protocol.RequestsSignature, Value: v}}, nil
}

// usesSignature is a pod-level request's uses, in the kubelet's order:
// "(name:count,name:count+keep,...)"; "" for a container's own request.
func usesSignature(uses []containerUse) string {
	if len(uses) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('(')
	for i, u := range uses {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(u.container + ":" + strconv.Itoa(u.count))
		if u.keep {
			b.WriteString("+keep")
		}
	}
	b.WriteByte(')')
	return b.String()
}
