package gpuview

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Cluster is the GPU view of a cluster read from its Node and Pod objects.
type Cluster struct {
	// Side holds the GPU nodes (those with a gpupack.io/topology or
	// gpupack.io/in-use annotation), by name, with the pods the in-use
	// report says hold devices there.
	Side Side
	// Pods are the GPU pods: pods with a scheduler choice, pods a node
	// reports holding devices, and pods asking for GPU resources.
	Pods []*corev1.Pod
	// inUse is each node's in-use report by pod UID.
	inUse map[string]map[string][]string
}

// FromObjects builds the view from the cluster's nodes and pods. It never
// fails: a node's malformed annotation is kept in its NodeState.Error (the
// node is then shown without topology or without usage).
func FromObjects(nodes []corev1.Node, pods []corev1.Pod) *Cluster {
	c := &Cluster{Side: Side{Profile: "cluster"}, inUse: map[string]map[string][]string{}}
	podNames := map[string]string{} // UID -> namespace/name
	for i := range pods {
		podNames[string(pods[i].UID)] = pods[i].Namespace + "/" + pods[i].Name
	}
	chosen := chosenByNode(pods)
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	reported := map[string]bool{} // pod UIDs a node reports
	for i := range nodes {
		ns, ok := c.readNode(&nodes[i], podNames, chosen)
		if !ok {
			continue
		}
		for uid := range c.inUse[ns.Name] {
			reported[uid] = true
		}
		c.Side.Nodes = append(c.Side.Nodes, ns)
	}
	for i := range pods {
		p := &pods[i]
		if _, chosen := p.Annotations[protocol.DevicesAnnotation]; chosen || reported[string(p.UID)] || asksGPU(p) {
			c.Pods = append(c.Pods, p)
		}
	}
	slices.SortFunc(c.Pods, func(a, b *corev1.Pod) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return c
}

// noReportNote is the note of a node that publishes topology but no in-use
// report: its holders are the scheduler's choices, as the scheduler counts
// them.
const noReportNote = "no " + protocol.InUseAnnotation + " report (publish.inUse off, or not written yet): " +
	"holders are the scheduler's choices (" + protocol.DevicesAnnotation + "); pods of other schedulers are not shown"

// chosenByNode are the scheduler's readable choices (gpupack.io/devices) of
// the pods bound to each node that still run: a finished pod (Succeeded or
// Failed) holds nothing, as the scheduler's cache forgets it.
func chosenByNode(pods []corev1.Pod) map[string][]Placement {
	out := map[string][]Placement{}
	for i := range pods {
		p := &pods[i]
		raw, ok := p.Annotations[protocol.DevicesAnnotation]
		if !ok || p.Spec.NodeName == "" || podutil.IsPodTerminal(p) {
			continue
		}
		d, err := protocol.DecodeDevices(raw)
		if err != nil {
			continue // shown with the pod (PodView.ChosenError)
		}
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], Placement{Pod: p.Namespace + "/" + p.Name, Devices: d.Resources})
	}
	return out
}

// readNode reads one node's topology and in-use report; false for a node
// with neither (not a GPU node of ours). A node without a report gets the
// choices of the pods bound to it.
func (c *Cluster) readNode(n *corev1.Node, podNames map[string]string, chosen map[string][]Placement) (NodeState, bool) {
	ns := NodeState{Name: n.Name}
	rawTopo, hasTopo := n.Annotations[protocol.TopologyAnnotation]
	rawInUse, hasInUse := n.Annotations[protocol.InUseAnnotation]
	if !hasTopo && !hasInUse {
		return ns, false
	}
	var errs []string
	if !hasTopo {
		errs = append(errs, protocol.TopologyAnnotation+" missing")
	} else if t, err := protocol.DecodeTopology(rawTopo); err != nil {
		errs = append(errs, err.Error())
	} else {
		ns.Topo = t
	}
	if !hasInUse {
		if ns.Topo != nil {
			ns.Pods, ns.Note = chosen[n.Name], noReportNote
		}
	} else {
		u, err := protocol.DecodeInUse(rawInUse)
		if err != nil {
			errs = append(errs, err.Error())
			ns.UsageUnknown = true
		} else {
			ns.Pods, c.inUse[n.Name] = placements(u, podNames)
		}
	}
	ns.Error = strings.Join(errs, "; ")
	return ns, true
}

// placements are the in-use report's pods, named from the report (or from
// the pod objects by UID when the report lacks a name), and the report's
// devices by pod UID.
func placements(u *protocol.InUse, podNames map[string]string) ([]Placement, map[string][]string) {
	var out []Placement
	byUID := map[string][]string{}
	for _, p := range u.Pods {
		name := p.Namespace + "/" + p.Name
		if p.Name == "" {
			name = podNames[p.UID]
		}
		if name == "" {
			name = "uid:" + p.UID
		}
		byUID[p.UID] = append(byUID[p.UID], p.Devices...)
		out = append(out, Placement{Pod: name, Devices: map[string][]string{"": slices.Clone(p.Devices)}})
	}
	return out, byUID
}

// gpuResourcePrefix is the prefix of every resource the device plugin
// advertises (whole GPUs, replicas, MIG devices).
const gpuResourcePrefix = "nvidia.com/"

// asksGPU reports whether any container of the pod asks for a GPU
// resource.
func asksGPU(p *corev1.Pod) bool {
	cs := append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...)
	for _, c := range cs {
		for _, l := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
			for name, q := range l {
				if strings.HasPrefix(string(name), gpuResourcePrefix) && !q.IsZero() {
					return true
				}
			}
		}
	}
	return false
}

// usageUnknown reports whether the named node's in-use report could not
// be read.
func (c *Cluster) usageUnknown(name string) bool {
	ns := c.node(name)
	return ns != nil && ns.UsageUnknown
}

// node returns the named node's state, nil when it is not a GPU node.
func (c *Cluster) node(name string) *NodeState {
	for i := range c.Side.Nodes {
		if c.Side.Nodes[i].Name == name {
			return &c.Side.Nodes[i]
		}
	}
	return nil
}

// PodView is one GPU pod: where it runs, what the scheduler chose, what
// the kubelet gave and the link quality of its GPU set.
type PodView struct {
	Pod   string `json:"pod"`
	Node  string `json:"node,omitempty"`
	Phase string `json:"phase,omitempty"`
	// Chosen is the scheduler's choice (gpupack.io/devices): resource ->
	// device IDs; ChosenError says why it could not be read.
	Chosen      map[string][]string `json:"chosen,omitempty"`
	ChosenError string              `json:"chosenError,omitempty"`
	// Given are the device IDs the node reports the pod holds
	// (gpupack.io/in-use, from the kubelet), sorted.
	Given []string `json:"given,omitempty"`
	// Handoff is "exact" (given = chosen), "differs", "not reported" (a
	// choice, no report yet), "report unreadable" (a choice, on a node
	// whose in-use report cannot be read), "no choice" (another
	// scheduler's pod) or "pending".
	Handoff string `json:"handoff"`
	// GPUs are the indexes of the whole GPUs held (given, else chosen);
	// Quality is their set's quality when there are 2 or more.
	GPUs    []int       `json:"gpus,omitempty"`
	Quality *SetQuality `json:"quality,omitempty"`
}

// Handoff outcomes of PodView.
const (
	HandoffExact       = "exact"
	HandoffDiffers     = "differs"
	HandoffNotReported = "not reported"
	HandoffUnreadable  = "report unreadable"
	HandoffNoChoice    = "no choice"
	HandoffPending     = "pending"
)

// PodViews are the cluster's GPU pods.
func (c *Cluster) PodViews() []PodView {
	out := make([]PodView, 0, len(c.Pods))
	for _, p := range c.Pods {
		out = append(out, c.podView(p))
	}
	return out
}

func (c *Cluster) podView(p *corev1.Pod) PodView {
	v := PodView{Pod: p.Namespace + "/" + p.Name, Node: p.Spec.NodeName, Phase: string(p.Status.Phase)}
	var chosen []string
	if raw, ok := p.Annotations[protocol.DevicesAnnotation]; ok {
		if d, err := protocol.DecodeDevices(raw); err != nil {
			v.ChosenError = err.Error()
		} else {
			v.Chosen = d.Resources
			for _, ids := range d.Resources {
				chosen = append(chosen, ids...)
			}
		}
	}
	given, reported := c.inUse[p.Spec.NodeName][string(p.UID)]
	v.Given = slices.Sorted(slices.Values(given))
	slices.Sort(chosen)
	switch {
	case p.Spec.NodeName == "":
		v.Handoff = HandoffPending
	case v.Chosen == nil:
		v.Handoff = HandoffNoChoice
	case !reported && c.usageUnknown(p.Spec.NodeName):
		v.Handoff = HandoffUnreadable
	case !reported:
		v.Handoff = HandoffNotReported
	case slices.Equal(chosen, v.Given):
		v.Handoff = HandoffExact
	default:
		v.Handoff = HandoffDiffers
	}
	ids := v.Given
	if !reported {
		ids = chosen
	}
	if ns := c.node(p.Spec.NodeName); ns != nil && ns.Topo != nil {
		set := wholeSet(ns.Topo, ids)
		v.GPUs = set.Indexes()
		if set.Len() >= 2 {
			q := setQuality(ns, v.Pod, set)
			v.Quality = &q
		}
	}
	return v
}

// wholeSet is the set of the node's GPUs whose UUIDs are among ids.
func wholeSet(n *topology.Node, ids []string) topology.GPUSet {
	var set topology.GPUSet
	for i, g := range n.GPUs {
		if i < topology.MaxGPUs && slices.Contains(ids, g.UUID) {
			set = set.Add(i)
		}
	}
	return set
}

// String is "{0,1,2,3} ring 25 GB/s of best 25 (1.00)".
func (q SetQuality) String() string {
	return fmt.Sprintf("%s ring %.0f GB/s of best %.0f (%.2f)", q.GPUs, q.Ring, q.Ideal, q.Ratio)
}
