package sharing

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// Holding is one device a container holds, as the kubelet's PodResources
// API reports it: the resource name and device ID it was allocated under.
type Holding struct {
	Namespace, Pod, Container string
	Resource, ID              string
}

// String names the holder and what it holds, for logs, events and errors:
// "default/train container main holds nvidia.com/gpu.shared GPU-x::2".
func (h Holding) String() string {
	if h.Pod == "" {
		return fmt.Sprintf("a container this plugin allocated to holds %s %s", h.Resource, h.ID)
	}
	return fmt.Sprintf("%s/%s container %s holds %s %s", h.Namespace, h.Pod, h.Container, h.Resource, h.ID)
}

// footprint is what a device occupies of the node's hardware: a whole GPU
// (mig empty) or one MIG device of it, exclusively or as one share (a
// time-sliced or MPS replica).
type footprint struct {
	gpu, mig string
	shared   bool
}

// overlaps reports whether two footprints touch the same hardware: the
// same GPU, unless they are two different MIG devices of it.
func (f footprint) overlaps(o footprint) bool {
	return f.gpu == o.gpu && (f.mig == "" || o.mig == "" || f.mig == o.mig)
}

// sameUnit reports whether two footprints are on the same GPU, or the
// same MIG device.
func (f footprint) sameUnit(o footprint) bool { return f.gpu == o.gpu && f.mig == o.mig }

func footprintOf(d *Device) footprint {
	f := footprint{gpu: d.GPUUUID, shared: d.Shared()}
	if d.MIG {
		f.mig = d.UUID
	}
	return f
}

// footprints maps the UUIDs of inv's GPUs and MIG devices to what they
// occupy.
func footprints(inv *nvml.Inventory) map[string]footprint {
	out := make(map[string]footprint, len(inv.GPUs)+len(inv.MIG))
	for _, g := range inv.GPUs {
		if !nvml.IsPlaceholderUUID(g.UUID) {
			out[g.UUID] = footprint{gpu: g.UUID}
		}
	}
	for _, m := range inv.MIG {
		out[m.UUID] = footprint{gpu: m.ParentUUID, mig: m.UUID}
	}
	return out
}

// Withheld returns the devices of resources that must not be given because
// a holding the kubelet does not count against them occupies their
// hardware: resource -> device ID -> the holding. The kubelet counts a
// container's devices under the resource name and device ID they were
// allocated under; after a config reload (another resource name, replicas
// on or off or another count, another MIG strategy) the same GPU is served
// under names or IDs it sees free.
//
// A holding counts when its resource and ID are not one of resources'
// devices (those the kubelet accounts itself) and its ID names one of
// inv's GPUs or MIG devices, or a replica "<UUID>::<n>" of one, or a MIG
// device no longer on the node (other vendors' devices are not ours). A
// MIG device gone (a MIG layout change: instances destroyed or replaced,
// MIG mode disabled) occupies its parent GPU whole, as earlier (the MIG
// devices of earlier inventories, MIGParents) remembers it; one whose
// parent earlier does not know occupies every MIG-capable GPU of inv,
// any of which may be it (hardware.occupies).
//
//   - A device conflicts with a holding on overlapping hardware (the same
//     GPU; a MIG device and its parent GPU; not two MIG devices of one GPU;
//     every device of the GPU a gone MIG device was on): it is withheld.
//   - A replica and a held replica of the same GPU or MIG device share it:
//     each such holding takes one share. Of the device's replicas the
//     kubelet sees free (not held under their own resource and ID), that
//     many are withheld, so that the GPU keeps at most its new replica
//     count of users. A share keeps the replica prev withheld for it (the
//     same holding: resource and ID) while that replica is still free; the
//     other shares take the highest free replica numbers left.
//
// prev is what an earlier call withheld (nil: nothing): the Manager's last
// result, or the one of the Manager it replaces. Without it a share would
// move whenever the free replicas change (a higher one released by its
// pod, a holding gone): the replica it left is served again, and the one
// it moves to is withheld although the kubelet may already have chosen it,
// so that the kubelet's Allocate is refused.
//
// The result is deterministic for the same input; it is empty (not nil)
// when nothing is withheld.
func Withheld(resources []Resource, inv *nvml.Inventory, earlier MIGParents, held []Holding, prev map[string]map[string]Holding) map[string]map[string]Holding {
	out, _ := WithheldNotes(resources, inv, earlier, held, prev)
	return out
}

// Note is a holding Withheld reads although it is not what the kubelet
// lists for a device of this node, or skips: for the log.
type Note struct {
	Holding Holding
	// Problem says what is odd about it.
	Problem string
	// Counted: it names one of the node's GPUs or MIG devices and is
	// withheld for, although malformed.
	Counted bool
	// OtherVendor: well formed, under a resource name without this
	// vendor's prefix (nvidia.com/): another vendor's device, not ours.
	OtherVendor bool
	// Gone: it names a MIG device no longer on the node (Counted: it is
	// withheld for); GPUs are the UUIDs of the GPUs withheld whole for it:
	// its parent, remembered from an earlier inventory, or, with
	// ParentUnknown, every MIG-capable GPU of the node.
	Gone, ParentUnknown bool
	GPUs                []string
}

// WithheldNotes is Withheld, with a Note for each holding (once per
// resource and ID, in Withheld's order) that it skips or counts although
// malformed: an empty resource name, an ID that deviceid.Validate refuses
// or a replica ID that does not parse; an ID that names none of inv's GPUs
// or MIG devices; a MIG device gone (Note.Gone). A holding of one of resources' devices under its own
// name and ID is never noted.
func WithheldNotes(resources []Resource, inv *nvml.Inventory, earlier MIGParents, held []Holding, prev map[string]map[string]Holding) (map[string]map[string]Holding, []Note) {
	served := map[string]map[string]bool{}
	for _, r := range resources {
		ids := make(map[string]bool, len(r.Devices))
		for i := range r.Devices {
			ids[r.Devices[i].ID] = true
		}
		served[r.Name] = ids
	}
	hw := newHardware(inv, earlier)
	type foreign struct {
		fp footprint
		h  Holding
	}
	var others []foreign
	var notes []Note
	known := map[string]map[string]bool{} // resource -> ID held under its own name
	seen := map[[2]string]bool{}
	for _, h := range sortedHoldings(held) {
		// An app container reusing its init container's device is listed
		// with it: one holding of one device.
		if seen[[2]string{h.Resource, h.ID}] {
			continue
		}
		seen[[2]string{h.Resource, h.ID}] = true
		if served[h.Resource][h.ID] {
			if known[h.Resource] == nil {
				known[h.Resource] = map[string]bool{}
			}
			known[h.Resource][h.ID] = true
			continue
		}
		fps, note := hw.occupies(h)
		if note != nil {
			notes = append(notes, *note)
		}
		for _, fp := range fps {
			others = append(others, foreign{fp: fp, h: h})
		}
	}
	out := map[string]map[string]Holding{}
	withhold := func(res, id string, h Holding) {
		if out[res] == nil {
			out[res] = map[string]Holding{}
		}
		out[res][id] = h
	}
	for _, r := range resources {
		// Per shared unit: its replicas the kubelet sees free, and the
		// held shares of it it does not count.
		free := map[footprint][]*Device{}
		shares := map[footprint][]Holding{}
		for i := range r.Devices {
			d := &r.Devices[i]
			if known[r.Name][d.ID] {
				continue // the kubelet counts it held already
			}
			fp := footprintOf(d)
			blocked := false
			for _, o := range others {
				if !fp.overlaps(o.fp) {
					continue
				}
				if fp.shared && o.fp.shared && fp.sameUnit(o.fp) {
					continue // a share, counted below
				}
				withhold(r.Name, d.ID, o.h)
				blocked = true
				break
			}
			if !blocked && fp.shared {
				unit := footprint{gpu: fp.gpu, mig: fp.mig}
				free[unit] = append(free[unit], d)
			}
		}
		for _, o := range others {
			if o.fp.shared {
				unit := footprint{gpu: o.fp.gpu, mig: o.fp.mig}
				shares[unit] = append(shares[unit], o.h)
			}
		}
		for unit, devs := range free {
			slices.SortFunc(devs, func(a, b *Device) int { return cmp.Compare(b.Replica, a.Replica) })
			for id, h := range placeShares(devs, shares[unit], prev[r.Name]) {
				withhold(r.Name, id, h)
			}
		}
	}
	return out, notes
}

// malformed says what is wrong with a holding's resource name or device ID
// (replica: the ID has the replica separator); "" when nothing is.
func malformed(h Holding, replica bool) string {
	if h.Resource == "" {
		return "empty resource name"
	}
	if err := deviceid.Validate(h.ID); err != nil {
		return err.Error()
	}
	if replica {
		if _, err := deviceid.ParseReplica(h.ID); err != nil {
			return err.Error()
		}
	}
	return ""
}

// placeShares gives each held share of one GPU or MIG device one of its
// replicas the kubelet sees free (devs, highest replica number first):
// first each share the replica prev (ID -> holding) withheld for it, when
// it is among devs; then the others, in order, the highest replicas left.
// It returns replica ID -> share, min(len(devs), len(shares)) of them.
func placeShares(devs []*Device, shares []Holding, prev map[string]Holding) map[string]Holding {
	out := make(map[string]Holding, min(len(devs), len(shares)))
	if len(shares) == 0 {
		return out
	}
	// The replica each share had, by the share's resource and ID (an
	// unnamed holding that the kubelet names later is the same share).
	had := map[[2]string]int{}
	for i, d := range devs {
		h, ok := prev[d.ID]
		if !ok {
			continue
		}
		if _, dup := had[[2]string{h.Resource, h.ID}]; !dup {
			had[[2]string{h.Resource, h.ID}] = i
		}
	}
	taken := make([]bool, len(devs))
	placed := make([]bool, len(shares))
	for j, h := range shares {
		if i, ok := had[[2]string{h.Resource, h.ID}]; ok && !taken[i] {
			out[devs[i].ID], taken[i], placed[j] = h, true, true
		}
	}
	i := 0
	for j, h := range shares {
		if placed[j] {
			continue
		}
		for i < len(devs) && taken[i] {
			i++
		}
		if i == len(devs) {
			break
		}
		out[devs[i].ID], taken[i] = h, true
	}
	return out
}

// sortedHoldings sorts holdings, those naming their pod first (they name
// the holder where both list a device).
func sortedHoldings(held []Holding) []Holding {
	out := slices.Clone(held)
	unnamed := func(h Holding) int {
		if h.Pod == "" {
			return 1
		}
		return 0
	}
	slices.SortFunc(out, func(a, b Holding) int {
		return cmp.Or(cmp.Compare(unnamed(a), unnamed(b)), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Container, b.Container),
			cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.ID, b.ID))
	})
	return out
}
