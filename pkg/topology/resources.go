package topology

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gpupack/gpupack/pkg/deviceid"
)

// ResourceKind is what a resource name serves on a node.
type ResourceKind string

// Resource kinds.
const (
	// KindGPU serves whole GPUs (device ID: GPU UUID).
	KindGPU ResourceKind = "gpu"
	// KindReplica serves time-shared replicas of whole GPUs (device ID:
	// <GPU-UUID>::<n>); the GPUs' Replicas fields say how many each has.
	KindReplica ResourceKind = "replica"
	// KindMIG serves MIG devices of one profile (device ID: MIG UUID).
	KindMIG ResourceKind = "mig"
	// KindMIGReplica serves time-shared replicas of MIG devices (device ID:
	// <MIG-UUID>::<n>).
	KindMIGReplica ResourceKind = "mig-replica"
)

// Replica policies a node may publish for a replica resource.
const (
	PolicyPacked = "packed"
	PolicySpread = "spread"
)

// MaxResources is the most resources a node may publish.
const MaxResources = 64

// Resource is one extended resource a node's device plugin serves, as it
// serves it: the scheduler takes a resource's kind, replica count and
// replica policy from here, never from cluster-wide settings (NVIDIA's
// default serves time-shared replicas under nvidia.com/gpu).
type Resource struct {
	// Name is the extended resource name, e.g. nvidia.com/gpu.
	Name string       `json:"name"`
	Kind ResourceKind `json:"kind"`
	// Replicas is the replica count per device (replica kinds).
	Replicas int `json:"replicas,omitempty"`
	// Policy places a multi-replica request (replica kinds): packed (one
	// GPU) or spread (distinct GPUs).
	Policy string `json:"policy,omitempty"`
	// FailRequestsGreaterThanOne: the device plugin refuses requests of
	// more than one replica (NVIDIA's failRequestsGreaterThanOne).
	FailRequestsGreaterThanOne bool `json:"failRequestsGreaterThanOne,omitempty"`
	// Profile is the MIG profile (MIG kinds), e.g. 1g.5gb.
	Profile string `json:"profile,omitempty"`
}

// Resource returns the resource the node publishes under name.
func (n *Node) Resource(name string) (Resource, bool) {
	for _, r := range n.Resources {
		if r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}

// ResourceNameErrors checks an extended resource name as the apiserver does
// for a container's resources (IsExtendedResourceName): a qualified name with
// a DNS-subdomain prefix, outside the kubernetes.io domains of the native
// resources, and not starting with quota's "requests.". It returns what is
// wrong, nothing for a valid name.
func ResourceNameErrors(name string) []string {
	var msgs []string
	if !strings.Contains(name, "/") {
		msgs = append(msgs, "must be a domain-qualified resource name (<domain>/<name>)")
	}
	msgs = append(msgs, validation.IsQualifiedName(name)...)
	if strings.Contains(name, "kubernetes.io/") {
		msgs = append(msgs, "the kubernetes.io domain holds native resources, not extended ones")
	}
	if strings.HasPrefix(name, "requests.") {
		msgs = append(msgs, `must not start with "requests." (quota's prefix)`)
	}
	return msgs
}

// validateResources checks the resource table: at most MaxResources
// entries, valid unique names, known kinds, and the fields each kind needs.
func (n *Node) validateResources() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(n.Resources) > MaxResources {
		return []error{fmt.Errorf("%d resources, more than %d", len(n.Resources), MaxResources)}
	}
	seen := map[string]bool{}
	for i, r := range n.Resources {
		what := fmt.Sprintf("resource %d (%s)", i, deviceid.Quote(r.Name))
		if msgs := ResourceNameErrors(r.Name); len(msgs) > 0 {
			add("%s: not an extended resource name: %s", what, strings.Join(msgs, "; "))
		}
		if seen[r.Name] {
			add("%s: listed twice", what)
		}
		seen[r.Name] = true
		replica := r.Kind == KindReplica || r.Kind == KindMIGReplica
		switch r.Kind {
		case KindGPU, KindReplica, KindMIG, KindMIGReplica:
		default:
			add("%s: unknown kind %s (want %s, %s, %s or %s)", what, deviceid.Quote(string(r.Kind)), KindGPU, KindReplica, KindMIG, KindMIGReplica)
		}
		switch {
		case replica && (r.Replicas < 2 || r.Replicas > MaxReplicas):
			add("%s: %d replicas, want 2 to %d", what, r.Replicas, MaxReplicas)
		case !replica && r.Replicas != 0:
			add("%s: kind %s has no replicas (got %d)", what, deviceid.Shorten(string(r.Kind)), r.Replicas)
		}
		switch {
		case replica && r.Policy != PolicyPacked && r.Policy != PolicySpread:
			add("%s: replica policy %s, want %s or %s", what, deviceid.Quote(string(r.Policy)), PolicyPacked, PolicySpread)
		case !replica && r.Policy != "":
			add("%s: kind %s has no replica policy (got %s)", what, deviceid.Shorten(string(r.Kind)), deviceid.Quote(string(r.Policy)))
		case !replica && r.FailRequestsGreaterThanOne:
			add("%s: kind %s has no replicas to refuse", what, deviceid.Shorten(string(r.Kind)))
		}
		mig := r.Kind == KindMIG || r.Kind == KindMIGReplica
		switch {
		case mig && !validMIGProfile(r.Profile):
			add("%s: MIG profile %s", what, deviceid.Quote(r.Profile))
		case !mig && r.Profile != "":
			add("%s: kind %s has no MIG profile (got %s)", what, deviceid.Shorten(string(r.Kind)), deviceid.Quote(r.Profile))
		}
		if r.Kind == KindReplica && r.Replicas >= 2 && r.Replicas <= MaxReplicas {
			if msg := n.replicaMismatch(r.Replicas); msg != "" {
				add("%s: %s", what, msg)
			}
		}
	}
	return errs
}

// replicaMismatch says how the GPUs' replica counts disagree with a replica
// resource's count of replicas (the device plugin publishes the largest
// GPU's count), "" when they agree. The scheduler names replicas by the
// GPUs' counts: a table that says fewer would have it give IDs the device
// plugin does not serve.
func (n *Node) replicaMismatch(replicas int) string {
	most, shared := 0, 0
	for _, g := range n.GPUs {
		if g.Replicas >= 2 {
			most, shared = max(most, g.Replicas), shared+1
		}
	}
	switch {
	case shared == 0:
		return fmt.Sprintf("%d replicas per GPU, but no GPU is time-shared (no GPU has replicas)", replicas)
	case most != replicas:
		return fmt.Sprintf("%d replicas per GPU, but the GPUs have up to %d", replicas, most)
	}
	return ""
}
