package gfd

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// resource writes the labels of one resource name, <name>.<suffix>, as
// GFD's resource labeler: sharing nil means the resource is never shared
// (GFD's MIG-enabled GPUs and invalid MIG labels: replicas 0).
type resource struct {
	name    string
	sharing *Sharing
}

func (r resource) key(suffix string) string { return r.name + "." + suffix }

// replication is the config's entry for the resource, if any.
func (r resource) replication() (Replication, bool) {
	if r.sharing == nil {
		return Replication{}, false
	}
	rep, ok := r.sharing.Resources[r.name]
	return rep, ok
}

// replicas: 0 when the resource is never shared, the config's replicas
// when it lists the resource (and says > 0), else 1.
func (r resource) replicas() int {
	if r.sharing == nil {
		return 0
	}
	if rep, ok := r.replication(); ok && rep.Replicas > 0 {
		return rep.Replicas
	}
	return 1
}

// shared: the config gives the resource more than one replica and keeps
// its name (the -SHARED product suffix).
func (r resource) shared() bool {
	rep, ok := r.replication()
	return ok && rep.Replicas > 1 && !rep.Renamed
}

// base is the product, count, replicas and sharing-strategy labels; the
// product joins the parts (model, "MIG", profile) sanitised.
func (r resource) base(count int, parts ...string) map[string]string {
	replicas := r.replicas()
	strategy := SharingNone
	if r.sharing != nil && replicas > 1 {
		strategy = r.sharing.Strategy
	}
	return map[string]string{
		r.key(SuffixProduct):         productName(r.shared(), parts...),
		r.key(SuffixCount):           strconv.Itoa(count),
		r.key(SuffixReplicas):        strconv.Itoa(replicas),
		r.key(SuffixSharingStrategy): strategy,
	}
}

// gpuLabels are the labels of count whole GPUs like g: base, memory (when
// known), family and compute capability (when known).
func (r resource) gpuLabels(g *GPU, count int) map[string]string {
	out := r.base(count, g.Name)
	if g.MemoryMiB != 0 {
		out[r.key(SuffixMemory)] = strconv.FormatUint(g.MemoryMiB, 10)
	}
	if major, minor, ok := majorMinor(g.ComputeCapability); ok && major != 0 {
		out[r.key(SuffixFamily)] = Family(major, minor)
		out[r.key(SuffixComputeMajor)] = strconv.Itoa(major)
		out[r.key(SuffixComputeMinor)] = strconv.Itoa(minor)
	}
	return out
}

// migLabels are the labels of count MIG devices like d on a parent named
// model: base with product <model>-MIG-<profile>, and d's attributes.
func (r resource) migLabels(model string, d *MIGDevice, count int) map[string]string {
	out := r.base(count, model, "MIG", profileName(d.Profile))
	for suffix, v := range map[string]uint64{
		SuffixMemory:          d.MemoryMiB,
		SuffixMultiprocessors: uint64(d.Multiprocessors),
		SuffixSlicesGI:        uint64(d.GISlices),
		SuffixSlicesCI:        uint64(d.CISlices),
		SuffixEnginesCopy:     uint64(d.CopyEngines),
		SuffixEnginesDecoder:  uint64(d.Decoders),
		SuffixEnginesEncoder:  uint64(d.Encoders),
		SuffixEnginesJPEG:     uint64(d.JPEGs),
		SuffixEnginesOFA:      uint64(d.OFAs),
	} {
		out[r.key(suffix)] = strconv.FormatUint(v, 10)
	}
	return out
}

// profileName is GFD's name of a MIG profile: NVIDIA's with '+' written
// '.' ("1g.10gb+me" -> "1g.10gb.me"), as in the mixed strategy's resource
// names.
func profileName(p string) string { return strings.ReplaceAll(p, "+", ".") }

// Family is GFD's architecture family of a compute capability.
func Family(major, minor int) string {
	switch major {
	case 1:
		return "tesla"
	case 2:
		return "fermi"
	case 3:
		return "kepler"
	case 5:
		return "maxwell"
	case 6:
		return "pascal"
	case 7:
		if minor < 5 {
			return "volta"
		}
		return "turing"
	case 8:
		if minor < 9 {
			return "ampere"
		}
		return "ada-lovelace"
	case 9:
		return "hopper"
	case 10, 12:
		return "blackwell"
	}
	return "undefined"
}

// resourceLabels are GFD's resource labels: the whole GPUs' nvidia.com/gpu.*
// and, unless the MIG strategy is none, mig.strategy and the MIG labels of
// the strategy.
func resourceLabels(n *Node, gpus []indexed) map[string]string {
	out := wholeGPULabels(n, gpus)
	switch n.MIGStrategy {
	case "", "none":
		return out
	case "single":
		out[LabelMIGStrategy] = "single"
		maps.Copy(out, migSingleLabels(n, gpus))
	case "mixed":
		out[LabelMIGStrategy] = "mixed"
		maps.Copy(out, migMixedLabels(n, gpus))
	default:
		out[LabelMIGStrategy] = n.MIGStrategy
	}
	return out
}

// wholeGPULabels labels the GPUs by product name, as GFD: the count of a
// name is all GPUs of that name; MIG-enabled GPUs are labelled without
// sharing (replicas 0), and GPUs with MIG disabled with the config's
// sharing over them. GFD visits the names in map order, so on a node of
// several products the last one wins at random; here names are visited
// sorted, MIG-enabled ones first, so the result is the same on every run.
func wholeGPULabels(n *Node, gpus []indexed) map[string]string {
	counts := map[string]int{}
	migOn, migOff := map[string]*GPU{}, map[string]*GPU{}
	for _, g := range gpus {
		counts[g.Name]++
		if g.MIGEnabled {
			if _, ok := migOn[g.Name]; !ok {
				migOn[g.Name] = g.GPU
			}
		} else if _, ok := migOff[g.Name]; !ok {
			migOff[g.Name] = g.GPU
		}
	}
	out := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(migOn)) {
		maps.Copy(out, resource{name: ResourceGPU}.gpuLabels(migOn[name], counts[name]))
	}
	for _, name := range slices.Sorted(maps.Keys(migOff)) {
		maps.Copy(out, resource{name: ResourceGPU, sharing: &n.Sharing}.gpuLabels(migOff[name], counts[name]))
	}
	return out
}

// migResource is one MIG profile of the node: its first device and count.
type migResource struct {
	model  string
	device *MIGDevice
	count  int
}

// migResources groups the MIG devices of MIG-enabled GPUs by GFD's profile
// name, keeping the first device of each.
func migResources(n *Node) (map[string]*migResource, []string) {
	byProfile := map[string]*migResource{}
	var order []string
	for k := range n.MIG {
		d := &n.MIG[k]
		if d.Parent < 0 || d.Parent >= len(n.GPUs) || !n.GPUs[d.Parent].MIGEnabled {
			continue
		}
		name := profileName(d.Profile)
		r, ok := byProfile[name]
		if !ok {
			r = &migResource{model: n.GPUs[d.Parent].Name, device: d}
			byProfile[name] = r
			order = append(order, name)
		}
		r.count++
	}
	return byProfile, order
}

// migSingleLabels are the single strategy's labels: the MIG devices
// overload nvidia.com/gpu.* when every MIG-enabled GPU holds MIG devices
// of one profile and no GPU has MIG disabled; otherwise GFD's invalid
// labels (product <model>-MIG-INVALID, count, replicas and memory 0). No
// MIG-enabled GPU: nothing (as strategy none).
func migSingleLabels(n *Node, gpus []indexed) map[string]string {
	var enabled []indexed
	for _, g := range gpus {
		if g.MIGEnabled {
			enabled = append(enabled, g)
		}
	}
	if len(enabled) == 0 {
		return nil
	}
	held := map[int]bool{}
	for _, d := range n.MIG {
		held[d.Parent] = true
	}
	for _, g := range enabled {
		if !held[g.index] {
			return invalidMIGLabels(enabled[0].Name) // a MIG-enabled GPU without MIG devices
		}
	}
	if len(enabled) != len(gpus) {
		return invalidMIGLabels(enabled[0].Name) // MIG enabled and disabled GPUs
	}
	byProfile, order := migResources(n)
	if len(order) != 1 {
		return invalidMIGLabels(enabled[0].Name) // more than one profile
	}
	r := byProfile[order[0]]
	return resource{name: ResourceGPU, sharing: &n.Sharing}.migLabels(r.model, r.device, r.count)
}

// invalidMIGLabels are GFD's labels of a node the single strategy cannot
// describe.
func invalidMIGLabels(model string) map[string]string {
	r := resource{name: ResourceGPU}
	return map[string]string{
		r.key(SuffixProduct):  productName(false, model, "MIG", labelMIGInvalidProductTag),
		r.key(SuffixCount):    "0",
		r.key(SuffixReplicas): "0",
		r.key(SuffixMemory):   "0",
	}
}

// migMixedLabels are the mixed strategy's labels: one resource
// nvidia.com/mig-<profile> per profile, with the config's sharing of that
// resource name. MIG-enabled GPUs without MIG devices are ignored.
func migMixedLabels(n *Node, _ []indexed) map[string]string {
	byProfile, order := migResources(n)
	out := map[string]string{}
	for _, name := range order {
		r := byProfile[name]
		maps.Copy(out, resource{name: MIGResourcePrefix + name, sharing: &n.Sharing}.migLabels(r.model, r.device, r.count))
	}
	return out
}
