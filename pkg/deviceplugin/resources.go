package deviceplugin

import (
	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/topology"
)

// publishedResources is the node's resource table for gpupack.io/topology:
// each resource the plugin serves with its kind, replica count and policy,
// so that the scheduler places each request as this node serves it
// (NVIDIA's default serves time-shared replicas under nvidia.com/gpu).
// A resource holds devices of one kind only: a config that would serve
// whole GPUs and replicas under one name (gpupackDevices selecting some
// GPUs without a rename) is refused at load (configv1.Validate) and by
// sharing.Build, so the kind published is the kind of every device served.
func publishedResources(resources []sharing.Resource, sh *configv1.Sharing) []topology.Resource {
	ts, _ := sh.Replicated()
	out := make([]topology.Resource, 0, len(resources))
	for _, r := range resources {
		if len(r.Devices) == 0 {
			continue
		}
		var shared, mig bool
		replicas, profile := 0, ""
		for _, d := range r.Devices {
			if d.Shared() {
				shared = true
				replicas = max(replicas, d.Replicas)
			}
			if d.MIG {
				mig = true
				profile = d.Profile
			}
		}
		p := topology.Resource{Name: r.Name}
		switch {
		case shared && mig:
			p.Kind, p.Replicas, p.Profile = topology.KindMIGReplica, replicas, profile
		case shared:
			p.Kind, p.Replicas = topology.KindReplica, replicas
		case mig:
			p.Kind, p.Profile = topology.KindMIG, profile
		default:
			p.Kind = topology.KindGPU
		}
		if shared {
			p.Policy = topology.PolicyPacked
			if ts.ReplicaPolicy == configv1.ReplicaPolicySpread {
				p.Policy = topology.PolicySpread
			}
			p.FailRequestsGreaterThanOne = sh.FailRequestsGreaterThanOne()
		}
		out = append(out, p)
	}
	return out
}
