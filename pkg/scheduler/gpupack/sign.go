package gpupack

import (
	"context"
	"strconv"

	"github.com/gpupack/gpupack/pkg/protocol"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

var _ fwk.SignPlugin = &GPUPack{}

// SignPod signs what the plugin's Filter and Score depend on in the pod:
// its GPU requests (per container, as parsed, init containers folded in)
// and its topology hint. Pods with the same signature get the same device
// plans on a node, so the scheduler may batch them (KEP-5598); Reserve
// still chooses devices against the current cache. A pod whose request
// cannot be parsed is not signed.
func (pl *GPUPack) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	reqs, hint, err := pl.parse(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	v := make([]string, 0, len(reqs)+1)
	v = append(v, "hint="+hint.String())
	for _, r := range reqs {
		v = append(v, r.container+"/"+r.resource+"="+strconv.Itoa(r.req.Count))
	}
	return []fwk.SignFragment{{Key: protocol.RequestsSignature, Value: v}}, nil
}
