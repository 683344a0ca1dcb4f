package sharing

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// Resource names (NVIDIA's; defined with the config file's API).
const (
	// ResourcePrefix is the vendor prefix of every resource we advertise.
	ResourcePrefix = configv1.ResourcePrefix
	// ResourceGPU is the whole-GPU resource (and MIG devices under the single strategy).
	ResourceGPU = configv1.ResourceGPU
	// SharedSuffix is appended to a time-shared resource when renameByDefault.
	SharedSuffix = configv1.SharedSuffix
	// MIGResourcePrefix starts the mixed-strategy MIG resources.
	MIGResourcePrefix = configv1.MIGResourcePrefix
)

// Device is one device the kubelet sees.
type Device struct {
	// ID is the kubelet device ID: GPU UUID, MIG UUID, or <UUID>::<n>.
	ID string
	// UUID is what the container gets in NVIDIA_VISIBLE_DEVICES: the GPU or
	// MIG UUID (the parent of a replica).
	UUID string
	// GPUIndex, GPUUUID and GPUMinor name the physical GPU the device lives on.
	GPUIndex int
	GPUUUID  string
	GPUMinor int
	NUMANode int
	// MIG is set for MIG devices (and their replicas); Profile is their profile.
	MIG     bool
	Profile string
	// GIID and CIID are the MIG device's GPU and compute instance IDs.
	GIID, CIID int
	// MIGIndex is the MIG device's position among its GPU's MIG devices
	// (NVIDIA's "<gpu>:<mig>" index).
	MIGIndex int
	// Replica is the replica number (0-based); Replicas is how many replicas
	// the underlying device has (0: not time-shared).
	Replica  int
	Replicas int
	// MPS is set for replicas shared through the GPU's MPS control daemon
	// (sharing.mps) rather than time-sliced.
	MPS bool
}

// Shared reports whether the device is a time-shared replica.
func (d *Device) Shared() bool { return d.Replicas > 0 }

// Resource is one extended resource with its devices, in a stable order.
type Resource struct {
	Name    string
	Devices []Device
}

// Build lists the resources of a node per the config's MIG strategy and
// sharing section in force (sharing.mps, else sharing.timeSlicing). The
// result is sorted by resource name.
func Build(inv *nvml.Inventory, c *configv1.Config) ([]Resource, error) {
	base, err := baseResources(inv, *c.Flags.MigStrategy)
	if err != nil {
		return nil, err
	}
	ts, path := c.Sharing.Replicated()
	errs := checkAgainstNode(inv, base, ts, path)
	if c.Sharing.Strategy() == configv1.SharingStrategyMPS {
		errs = append(errs, checkMPS(inv, base, ts, path, *c.Flags.MigStrategy)...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config does not fit this node's GPUs: %w", errs.ToAggregate())
	}
	out, err := replicate(base, ts, path, c.Sharing.MPS != nil)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Resource) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func gpuDevice(g *nvml.GPU) Device {
	return Device{ID: g.UUID, UUID: g.UUID, GPUIndex: g.Index, GPUUUID: g.UUID, GPUMinor: g.Minor, NUMANode: g.NUMANode}
}

func migDevice(inv *nvml.Inventory, m *nvml.MIGDevice) Device {
	d := Device{ID: m.UUID, UUID: m.UUID, GPUIndex: m.ParentIndex, GPUUUID: m.ParentUUID, MIG: true, Profile: m.Profile,
		GIID: m.GIID, CIID: m.CIID, NUMANode: -1}
	for i := range inv.MIG {
		if &inv.MIG[i] == m {
			break
		}
		if inv.MIG[i].ParentIndex == m.ParentIndex {
			d.MIGIndex++
		}
	}
	for i := range inv.GPUs {
		if inv.GPUs[i].Index == m.ParentIndex {
			d.GPUMinor = inv.GPUs[i].Minor
			d.NUMANode = inv.GPUs[i].NUMANode
		}
	}
	return d
}

// baseResources applies the MIG strategy.
func baseResources(inv *nvml.Inventory, strategy string) (map[string][]Device, error) {
	res := map[string][]Device{}
	add := func(name string, d Device) { res[name] = append(res[name], d) }
	migOn, degraded := 0, 0
	for i := range inv.GPUs {
		g := &inv.GPUs[i]
		if g.MIGEnabled && strategy != configv1.MIGStrategyNone {
			migOn++
			continue
		}
		if g.Degraded != nil {
			degraded++ // its MIG mode may be unknown
		}
		add(ResourceGPU, gpuDevice(g))
	}
	if strategy != configv1.MIGStrategyNone {
		if err := checkMIGDevices(inv); err != nil {
			return nil, err
		}
	}
	switch strategy {
	case configv1.MIGStrategyNone:
		return res, nil
	case configv1.MIGStrategyMixed:
		for i := range inv.MIG {
			m := &inv.MIG[i]
			add(configv1.MIGResourceName(m.Profile), migDevice(inv, m))
		}
		return res, nil
	case configv1.MIGStrategySingle:
		if migOn == 0 {
			return res, nil
		}
		if migOn != len(inv.GPUs) && migOn+degraded != len(inv.GPUs) {
			return nil, fmt.Errorf("MIG strategy single: %d of %d GPUs have MIG enabled; want all or none (use mixed)", migOn, len(inv.GPUs))
		}
		profiles := map[string][]int{} // profile -> its GPUs' indexes
		var order []string
		for i := range inv.MIG {
			m := &inv.MIG[i]
			if _, ok := profiles[m.Profile]; !ok {
				order = append(order, m.Profile)
			}
			if !slices.Contains(profiles[m.Profile], m.ParentIndex) {
				profiles[m.Profile] = append(profiles[m.Profile], m.ParentIndex)
			}
			add(ResourceGPU, migDevice(inv, m))
		}
		if len(profiles) != 1 {
			found := make([]string, len(order))
			for i, p := range order {
				gpus := make([]string, len(profiles[p]))
				for j, g := range profiles[p] {
					gpus[j] = strconv.Itoa(g)
				}
				found[i] = fmt.Sprintf("%s (GPU %s)", p, strings.Join(gpus, ", "))
			}
			return nil, fmt.Errorf("MIG strategy single: want exactly one MIG profile on the node, found %d: %s (use mixed, or make every MIG device one profile)",
				len(profiles), strings.Join(found, ", "))
		}
		return res, nil
	default:
		return nil, fmt.Errorf("unknown MIG strategy %q", strategy)
	}
}

// checkMIGDevices refuses a node where a GPU has MIG mode enabled and no
// MIG device (no GPU instance created, or one being reconfigured): under the
// single and mixed strategies it has nothing to serve, and NVIDIA's plugin
// refuses such a node ("device has an invalid MIG configuration"). A GPU
// whose MIG devices could not be read (degraded) is not refused: they are
// unknown, not absent.
func checkMIGDevices(inv *nvml.Inventory) error {
	held := map[int]bool{}
	for i := range inv.MIG {
		held[inv.MIG[i].ParentIndex] = true
	}
	for i := range inv.GPUs {
		g := &inv.GPUs[i]
		if g.MIGEnabled && g.Degraded == nil && !held[g.Index] {
			return fmt.Errorf("GPU %d (%s) has MIG mode enabled and no MIG devices: create its GPU and compute instances "+
				"(nvidia-smi mig -cgi ... -C, or NVIDIA's mig-manager), disable its MIG mode, or use migStrategy none", g.Index, g.UUID)
		}
	}
	return nil
}

// replicate applies the sharing section ts (at path section) to the base
// resources; mps marks the replicas as MPS clients. A resource that would
// hold devices of two kinds (some shared, some not, or two replica counts)
// is refused: the kubelet counts a resource's devices as one thing and the
// node publishes one kind per name. Load refuses the configs that lead
// there (gpupackDevices selecting some devices without a rename); this
// holds for a Config that skipped it.
func replicate(base map[string][]Device, ts *configv1.TimeSlicing, section *field.Path, mps bool) ([]Resource, error) {
	byName := map[string]*configv1.ReplicatedResource{}
	for i := range ts.Resources {
		byName[ts.Resources[i].Name] = &ts.Resources[i]
	}
	out := map[string][]Device{}
	for name, devs := range base {
		rr := byName[name]
		for i, d := range devs {
			if rr == nil || rr.Replicas <= 1 || !selected(rr.Selection(), i, &d) {
				out[name] = append(out[name], d)
				continue
			}
			target := ts.Target(rr)
			for n := range rr.Replicas {
				r := d
				r.ID = deviceid.ReplicaID(d.UUID, n)
				r.Replica = n
				r.Replicas = rr.Replicas
				r.MPS = mps
				out[target] = append(out[target], r)
			}
		}
	}
	if errs := mixedKinds(out, ts, section); len(errs) > 0 {
		return nil, fmt.Errorf("config does not fit this node's GPUs: %w", errs.ToAggregate())
	}
	res := make([]Resource, 0, len(out))
	for name, devs := range out {
		res = append(res, Resource{Name: name, Devices: devs})
	}
	return res, nil
}

// mixedKinds names each resource of out whose devices are partly
// replicas and partly not, or replicas of several counts, with the field
// of the sharing section that put the replicas there.
func mixedKinds(out map[string][]Device, ts *configv1.TimeSlicing, section *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		whole, shared := 0, 0
		counts := map[int]bool{}
		for i := range out[name] {
			if d := &out[name][i]; d.Shared() {
				shared++
				counts[d.Replicas] = true
			} else {
				whole++
			}
		}
		if shared == 0 || (whole == 0 && len(counts) == 1) {
			continue
		}
		p, value := section.Child("resources"), any(name)
		for i := range ts.Resources {
			if r := &ts.Resources[i]; ts.Target(r) == name {
				p, value = configv1.TargetPath(section, i, r), name
				if r.GPUPackDevices != nil {
					p, value = section.Child("resources").Index(i).Child("gpupackDevices"), configv1.SelectionValue(r.GPUPackDevices)
				}
				break
			}
		}
		if whole > 0 {
			errs = append(errs, field.Invalid(p, value, fmt.Sprintf(
				"this node would serve %d devices not shared and %d replicas under %s, and the kubelet and the scheduler would count them as one kind of device: "+
					"set renameByDefault: true or gpupackRename to advertise the replicas under a name of their own, or share every device of the resource",
				whole, shared, name)))
			continue
		}
		errs = append(errs, field.Invalid(p, value, fmt.Sprintf(
			"this node would serve replicas of %d different counts under %s: one resource holds one kind of device", len(counts), name)))
	}
	return errs
}

// selected reports whether the i-th device of a resource is replicated
// under sel (gpupackDevices: all, the first Count, or a list of GPU
// indexes, MIG indexes and UUIDs).
func selected(sel configv1.ReplicatedDevices, i int, d *Device) bool {
	if sel.All {
		return true
	}
	if sel.Count > 0 {
		return i < sel.Count
	}
	for _, ref := range sel.List {
		if matches(ref, d) {
			return true
		}
	}
	return false
}

// matches reports whether a device reference names d: a GPU index names
// a whole GPU, "<gpu>:<mig>" a MIG device, a UUID either.
func matches(ref configv1.DeviceRef, d *Device) bool {
	if idx, ok := ref.GPUIndex(); ok {
		return !d.MIG && d.GPUIndex == idx
	}
	if g, m, ok := ref.MIGIndex(); ok {
		return d.MIG && d.GPUIndex == g && d.MIGIndex == m
	}
	return string(ref) == d.UUID
}

// checkAgainstNode checks the sharing section ts (at path p) against the
// devices the node has, so that a config never silently means something else here:
// `devices` naming a GPU index or UUID the node lacks (sharing would be
// off for the GPU meant), a count larger than the resource's devices (it
// would be clamped), a rename into the name of devices the node
// advertises (they would merge). A resource the node does not have at all
// (a fleet-wide config) is skipped, except for its indexes and UUIDs.
func checkAgainstNode(inv *nvml.Inventory, base map[string][]Device, ts *configv1.TimeSlicing, section *field.Path) field.ErrorList {
	var errs field.ErrorList
	p := section.Child("resources")
	indexes := map[int]bool{}
	migIndexes := map[[2]int]bool{}
	uuids := map[string]bool{}
	unknownUUIDs := false
	for _, g := range inv.GPUs {
		indexes[g.Index] = true
		uuids[g.UUID] = true
		unknownUUIDs = unknownUUIDs || nvml.IsPlaceholderUUID(g.UUID)
	}
	perGPU := map[int]int{}
	for _, m := range inv.MIG {
		uuids[m.UUID] = true
		migIndexes[[2]int{m.ParentIndex, perGPU[m.ParentIndex]}] = true
		perGPU[m.ParentIndex]++
	}
	for i := range ts.Resources {
		r := &ts.Resources[i]
		rp := p.Index(i)
		devs := base[r.Name]
		sel := r.Selection()
		dp := rp.Child("gpupackDevices")
		for j, ref := range sel.List {
			if idx, ok := ref.GPUIndex(); ok {
				if !indexes[idx] {
					errs = append(errs, field.Invalid(dp.Index(j), idx,
						fmt.Sprintf("no GPU with index %d on this node (%d GPUs)", idx, len(inv.GPUs))))
				}
				continue
			}
			if g, m, ok := ref.MIGIndex(); ok {
				if !migIndexes[[2]int{g, m}] {
					errs = append(errs, field.Invalid(dp.Index(j), string(ref),
						fmt.Sprintf("no MIG device %d on GPU %d on this node", m, g)))
				}
				continue
			}
			// A GPU that failed discovery before its UUID was read may be
			// the one meant: do not refuse to start for it.
			if !uuids[string(ref)] && !unknownUUIDs {
				errs = append(errs, field.Invalid(dp.Index(j), string(ref),
					"no GPU or MIG device with this UUID on this node"))
			}
		}
		if sel.Count > len(devs) && len(devs) > 0 {
			errs = append(errs, field.Invalid(dp, sel.Count,
				fmt.Sprintf("this node has %d %s devices", len(devs), r.Name)))
		}
		target := ts.Target(r)
		if target == r.Name || len(devs) == 0 {
			continue
		}
		if other := base[target]; len(other) > 0 {
			errs = append(errs, field.Invalid(configv1.TargetPath(section, i, r), target,
				fmt.Sprintf("this node advertises %d other devices as %s: the replicas of %s would merge with them", len(other), target, r.Name)))
		}
	}
	return errs
}
