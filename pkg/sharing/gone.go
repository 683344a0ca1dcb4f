package sharing

import (
	"maps"
	"slices"
	"strings"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// MIGParents maps the UUIDs of MIG devices to the UUID of the GPU they
// were created on (nvml.MIGDevice.ParentUUID). A MIG layout change (the
// instances destroyed or replaced, MIG mode disabled) removes MIG devices
// from every later inventory, while the kubelet's PodResources API keeps
// listing a running container that holds one under its old MIG UUID; NVML
// cannot tell the parent of a destroyed instance. Withheld needs it from
// an earlier inventory to keep that GPU withheld: the device plugin
// carries it from one Manager to the next across rediscoveries and config
// reloads (deviceplugin.Options.MIGParents), and at start seeds it from
// the MIG devices its last gpupack.io/topology annotation published. nil
// knows nothing.
type MIGParents map[string]string

// MaxMIGParents bounds RememberMIG's result, in entries: a node has at most
// 7 MIG devices per GPU, and a memory of more would only grow with layout
// changes while the kubelet's PodResources API never answered.
const MaxMIGParents = 1024

// migUUIDPrefix starts every MIG UUID NVIDIA's driver reports:
// "MIG-<uuid>" (R470 and later) and "MIG-GPU-<uuid>/<gi>/<ci>" (before).
const migUUIDPrefix = "MIG-"

// MIGParentsOf is inv's MIG devices and their parent GPUs.
func MIGParentsOf(inv *nvml.Inventory) MIGParents {
	out := make(MIGParents, len(inv.MIG))
	for _, m := range inv.MIG {
		out[m.UUID] = m.ParentUUID
	}
	return out
}

// RememberMIG is the memory to carry to the next inventory (a rediscovery,
// a config reload): the parents of inv's MIG devices, and those of earlier
// (the memory carried to inv) that a holding in held still names, by its
// ID's UUID (a replica's too). The others are forgotten: no container the
// kubelet lists holds them. held nil means nothing is known of the
// holdings (the kubelet's PodResources API has not answered): every entry
// is kept. At most MaxMIGParents entries: inv's, then earlier's in UUID
// order.
func RememberMIG(inv *nvml.Inventory, earlier MIGParents, held []Holding) MIGParents {
	out := MIGParentsOf(inv)
	var named map[string]bool
	if held != nil {
		named = make(map[string]bool, len(held))
		for _, h := range held {
			uuid, _ := deviceid.UUIDOf(h.ID)
			named[uuid] = true
		}
	}
	for _, uuid := range slices.Sorted(maps.Keys(earlier)) {
		if len(out) >= MaxMIGParents {
			break
		}
		if _, ok := out[uuid]; ok || (named != nil && !named[uuid]) {
			continue
		}
		out[uuid] = earlier[uuid]
	}
	return out
}

// hardware is what a holding can occupy: inv's GPUs and MIG devices, the
// MIG devices of earlier inventories, and the GPUs a MIG device of no
// known parent may have been on.
type hardware struct {
	fps     map[string]footprint // inv's GPUs and MIG devices, by UUID
	earlier MIGParents
	// migGPUs are the UUIDs of inv's GPUs that may have had MIG devices:
	// MIG-capable, or degraded (their capability may be unread).
	migGPUs []string
}

func newHardware(inv *nvml.Inventory, earlier MIGParents) hardware {
	hw := hardware{fps: footprints(inv), earlier: earlier}
	for _, g := range inv.GPUs {
		if !nvml.IsPlaceholderUUID(g.UUID) && (g.MIGCapable || g.Degraded != nil) {
			hw.migGPUs = append(hw.migGPUs, g.UUID)
		}
	}
	return hw
}

// occupies returns the footprints of the hardware a holding the kubelet
// does not count against the served devices occupies (none: not this
// node's), and what to note of it (nil: nothing):
//   - one of inv's GPUs or MIG devices (or a replica of one): its own
//     footprint, shared for a replica;
//   - a MIG device that is gone, whose parent earlier remembers: that GPU
//     whole and exclusively, whatever it is now (whole, replicas, other
//     MIG devices): the container keeps the parent's device node, which
//     reaches the whole GPU once MIG mode is off, and the old instance's
//     capabilities, which a new instance with its IDs answers to;
//   - a well-formed MIG UUID under this vendor's resources that neither
//     knows (the plugin restarted after the change, with nothing
//     published): every GPU of migGPUs, any of which may be its parent;
//     none of them is given while it is listed, rather than one given
//     twice.
func (hw hardware) occupies(h Holding) ([]footprint, *Note) {
	uuid, replica := deviceid.UUIDOf(h.ID)
	problem := malformed(h, replica)
	if fp, ok := hw.fps[uuid]; ok {
		fp.shared = replica
		if problem != "" {
			return []footprint{fp}, &Note{Holding: h, Problem: problem, Counted: true}
		}
		return []footprint{fp}, nil
	}
	if parent, ok := hw.earlier[uuid]; ok {
		if problem == "" {
			problem = "a MIG device no longer on this node; its GPU is withheld whole"
		}
		return []footprint{{gpu: parent}}, &Note{Holding: h, Problem: problem, Counted: true, Gone: true, GPUs: []string{parent}}
	}
	switch {
	case problem != "":
		return nil, &Note{Holding: h, Problem: problem}
	case !strings.HasPrefix(h.Resource, ResourcePrefix):
		return nil, &Note{Holding: h, Problem: "another vendor's device", OtherVendor: true}
	case strings.HasPrefix(uuid, migUUIDPrefix) && len(hw.migGPUs) > 0:
		fps := make([]footprint, len(hw.migGPUs))
		for i, g := range hw.migGPUs {
			fps[i] = footprint{gpu: g}
		}
		return fps, &Note{Holding: h, Problem: "a MIG device no longer on this node, on a GPU not known; every GPU it may have been on is withheld",
			Counted: true, Gone: true, ParentUnknown: true, GPUs: slices.Clone(hw.migGPUs)}
	default:
		return nil, &Note{Holding: h, Problem: "names none of this node's GPUs or MIG devices"}
	}
}
