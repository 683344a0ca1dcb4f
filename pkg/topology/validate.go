package topology

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gpupack/gpupack/pkg/deviceid"
)

// Limits checked by Validate.
const (
	// MaxReplicas is the most time-shared replicas a GPU may advertise: as
	// many as one ListAndWatch message can carry, for a node of one GPU.
	// The kubelet reads ListAndWatch with gRPC's default 4 MiB message
	// limit; one device entry (replica ID "GPU-<36>::<n>", health, NUMA
	// topology) encodes in under 96 bytes: 4194304 / 96 = 43690. A node
	// with more GPUs (or MIG devices) carries fewer per device: the device
	// plugin checks its exact message at start and names the limit
	// (deviceplugin's checkListAndWatchSize).
	MaxReplicas = KubeletMaxMessageBytes / MaxDeviceEntryBytes
	// MaxDeviceEntryBytes bounds one device's entry in a ListAndWatch message.
	MaxDeviceEntryBytes = 96
	// KubeletMaxMessageBytes is gRPC's default receive limit, which the
	// kubelet's device-plugin client keeps.
	KubeletMaxMessageBytes = 4 << 20
	// MaxNVLinks is the most NVLink lanes one link may have.
	MaxNVLinks = 64
	// MaxMIGSlices is the number of memory slices of a MIG-capable GPU; a MIG
	// device's Start+Size may not exceed it.
	MaxMIGSlices = 8
	// MaxNUMANode is the highest NUMA node number Linux may give
	// (MAX_NUMNODES is 1 << CONFIG_NODES_SHIFT, at most 1 << 10).
	MaxNUMANode = 1<<10 - 1
)

// Validate checks that n is consistent: at most MaxGPUs GPUs, each GPU's Index
// equal to its position, unique UUIDs (GPUs and MIG devices together) that
// can name devices (deviceid.ValidateUUID), MIG profile names, replica counts in [0, MaxReplicas], NVLink versions >= 0, an
// N x N symmetric link matrix of known classes with lane counts in
// [1, MaxNVLinks] on NVLink classes and 0 on the others, MIG devices on
// MIG-enabled GPUs with slices within [0, MaxMIGSlices), and a generation >= 0.
// It returns every problem found, joined.
func (n *Node) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(n.GPUs) > MaxGPUs {
		return fmt.Errorf("%d GPUs, more than %d", len(n.GPUs), MaxGPUs)
	}
	if n.Generation < 0 {
		add("generation %d is negative", n.Generation)
	}
	uuids := make(map[string]string, len(n.GPUs)+len(n.MIG))
	seen := func(uuid, what string) {
		if uuid == "" {
			add("%s has no UUID", what)
			return
		}
		if err := deviceid.ValidateUUID(uuid); err != nil {
			add("%s: %w", what, err)
			return
		}
		if prev, dup := uuids[uuid]; dup {
			add("%s has UUID %s, already used by %s", what, deviceid.Quote(uuid), prev)
			return
		}
		uuids[uuid] = what
	}
	for i, g := range n.GPUs {
		what := fmt.Sprintf("GPU %d", i)
		if g.Index != i {
			add("GPU at position %d has index %d", i, g.Index)
		}
		seen(g.UUID, what)
		if g.Replicas < 0 || g.Replicas > MaxReplicas {
			add("%s has %d replicas, want 0 to %d", what, g.Replicas, MaxReplicas)
		}
		if g.NVLinkVersion < 0 {
			add("%s has NVLink version %d", what, g.NVLinkVersion)
		}
		if g.NUMANode < -1 || g.NUMANode > MaxNUMANode {
			add("%s has NUMA node %d", what, g.NUMANode)
		}
	}
	errs = append(errs, n.validateLinks()...)
	errs = append(errs, n.validateMIG(seen)...)
	errs = append(errs, n.validateResources()...)
	return errors.Join(errs...)
}

func (n *Node) validateLinks() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	size := len(n.GPUs)
	if len(n.Links) != size {
		return []error{fmt.Errorf("link matrix has %d rows, want %d (one per GPU)", len(n.Links), size)}
	}
	for i, row := range n.Links {
		if len(row) != size {
			add("link matrix row %d has %d entries, want %d", i, len(row), size)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	for i, row := range n.Links {
		for j, l := range row {
			switch {
			case !l.Class.Valid():
				add("link %d-%d has unknown class %d", i, j, l.Class)
			case l.NVLinks < 0 || l.NVLinks > MaxNVLinks:
				add("link %d-%d has %d NVLink lanes, want 0 to %d", i, j, l.NVLinks, MaxNVLinks)
			case i == j:
				// The diagonal is ignored.
			case l.Class.IsNVLink() && l.NVLinks == 0:
				add("link %d-%d is %s with no lanes", i, j, l.Class)
			case !l.Class.IsNVLink() && l.NVLinks != 0:
				add("link %d-%d is %s but has %d NVLink lanes", i, j, l.Class, l.NVLinks)
			case j < i && l != n.Links[j][i]:
				add("link %d-%d (%s) differs from link %d-%d (%s)", i, j, l, j, i, n.Links[j][i])
			}
		}
	}
	return errs
}

func (n *Node) validateMIG(seen func(uuid, what string)) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for k, m := range n.MIG {
		what := fmt.Sprintf("MIG device %d", k)
		seen(m.UUID, what)
		if m.Parent < 0 || m.Parent >= len(n.GPUs) {
			add("%s has parent GPU %d, want 0 to %d", what, m.Parent, len(n.GPUs)-1)
			continue
		}
		if !validMIGProfile(m.Profile) {
			add("%s has MIG profile %s, want a profile name such as 1g.10gb", what, deviceid.Quote(m.Profile))
		}
		if !n.GPUs[m.Parent].MIGEnabled {
			add("%s is on GPU %d, which is not MIG-enabled", what, m.Parent)
		}
		// Compute instances of one GPU instance share its slices, so
		// overlapping placements are legal.
		// Start > MaxMIGSlices-Size, not Start+Size > MaxMIGSlices: the sum
		// overflows for a Start near MaxInt.
		if m.Start < 0 || m.Size < 1 || m.Size > MaxMIGSlices || m.Start > MaxMIGSlices-m.Size {
			add("%s has slices start %d size %d, want within 0 to %d", what, m.Start, m.Size, MaxMIGSlices-1)
		}
	}
	return errs
}

// migProfileName matches NVIDIA's MIG profile names as NVML writes them:
// <n>g.<m>gb, optionally after a compute-instance <k>c. and before
// attribute suffixes (1g.5gb, 1c.2g.10gb, 1g.10gb+me, 1g.20gb+me.all,
// 1g.24gb+gfx, 1g.12gb-me). A suffix never starts with a dot: "1g.5gb.shared"
// is the 1g.5gb resource renamed for sharing, not a profile.
var migProfileName = regexp.MustCompile(`^([0-9]+c\.)?[0-9]+g\.[0-9]+gb([+-][a-z]+(\.[a-z]+)*)*$`)

// IsMIGProfileName reports whether p is written as NVIDIA names MIG
// profiles (lower case: names are compared exactly). Users' config files
// are checked with it; a profile read from a node's annotation only needs
// to name a resource (validMIGProfile).
func IsMIGProfileName(p string) bool { return migProfileName.MatchString(p) }

// validMIGProfile reports whether p can be a MIG profile name (nvidia.com/mig-<p>
// is a resource name): non-empty, at most 63 bytes, without a slash or
// blank. The name itself is NVML's (1g.10gb, 1c.2g.20gb, 1g.10gb+me, ...).
func validMIGProfile(p string) bool {
	return p != "" && len(p) <= 63 && !strings.ContainsAny(p, "/ \t\n\r")
}
