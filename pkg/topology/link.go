package topology

import "strconv"

// Bandwidth figures, in GB/s in one direction, used to compare links and GPU
// sets. They are orders of magnitude for scoring, not measurements.
//
//	class      figure                          nvidia-smi   String()
//	NVSwitch   lanes x LaneGBps(version)       NV#          NS#
//	NVLink     lanes x LaneGBps(version)       NV#          NV#
//	SameBoard  18                              (PIX)        BRD
//	PIX        16                              PIX          PIX
//	PXB        14                              PXB          PXB
//	PHB        12                              PHB          PHB
//	NODE       10                              NODE         NODE
//	SYS         6                              SYS          SYS
//	Unknown     4                              -            ?
//
//	NVLink version   1    2    3    4    5    6    other
//	LaneGBps        20   25   25   25   50   50   25
//
// NVLink 6 (Rubin) doubles NVLink 5's 1.8 TB/s per GPU; NVIDIA's figures
// read as 36 lanes of 50 GB/s or 18 of 100 per direction, so 6 takes the
// lower, 50: never below NVLink 5.
//
// The PCIe classes do not depend on the PCIe generation; they are strictly
// ordered by class and all lie below one lane of the slowest NVLink (20), so
// for PCIe classes the class order is the bandwidth order, and any NVLink
// beats any PCIe path. An NVLink or NVSwitch link recorded with no lanes
// counts as one lane.
const (
	SameBoardGBps = 18
	PIXGBps       = 16
	PXBGBps       = 14
	PHBGBps       = 12
	NODEGBps      = 10
	SYSGBps       = 6
	UnknownGBps   = 4
)

// LaneGBps returns the per-lane NVLink rate (GB/s, one direction) of an
// NVLink version; an unknown version (0 or out of range) counts as 25.
func LaneGBps(version int) float64 {
	switch version {
	case 1:
		return 20
	case 5, 6:
		return 50
	default: // 2, 3, 4 and unknown
		return 25
	}
}

// pcieGBps is the figure of a non-NVLink class (indexed by LinkClass).
var pcieGBps = [...]float64{
	ClassUnknown:   UnknownGBps,
	ClassSYS:       SYSGBps,
	ClassNODE:      NODEGBps,
	ClassPHB:       PHBGBps,
	ClassPXB:       PXBGBps,
	ClassPIX:       PIXGBps,
	ClassSameBoard: SameBoardGBps,
}

// IsNVLink reports whether the class carries NVLink lanes (direct or through
// an NVSwitch fabric).
func (c LinkClass) IsNVLink() bool {
	return c == ClassNVLink || c == ClassNVSwitch
}

// Valid reports whether c is one of the defined classes.
func (c LinkClass) Valid() bool {
	return c <= ClassNVSwitch
}

// String returns the nvidia-smi topo -m style name of the class: "SYS",
// "NODE", "PHB", "PXB", "PIX", "BRD" (same board), "NV" (direct NVLink), "NS"
// (NVLink through an NVSwitch), "?" (unknown or invalid). Link.String appends
// the lane count to the NVLink classes.
func (c LinkClass) String() string {
	switch c {
	case ClassSYS:
		return "SYS"
	case ClassNODE:
		return "NODE"
	case ClassPHB:
		return "PHB"
	case ClassPXB:
		return "PXB"
	case ClassPIX:
		return "PIX"
	case ClassSameBoard:
		return "BRD"
	case ClassNVLink:
		return "NV"
	case ClassNVSwitch:
		return "NS"
	default:
		return "?"
	}
}

// String returns the link in nvidia-smi topo -m style: "NV2" for two direct
// NVLink lanes, "NS12" for twelve lanes into an NVSwitch fabric, otherwise the
// class name ("PIX", "SYS", ...).
func (l Link) String() string {
	if l.Class.IsNVLink() {
		return l.Class.String() + strconv.Itoa(l.NVLinks)
	}
	return l.Class.String()
}

// GBps returns the link's bandwidth figure for the given NVLink version (see
// the table above). Invalid classes count as ClassUnknown.
func (l Link) GBps(nvlinkVersion int) float64 {
	if l.Class.IsNVLink() {
		return float64(max(l.NVLinks, 1)) * LaneGBps(nvlinkVersion)
	}
	if int(l.Class) < len(pcieGBps) {
		return pcieGBps[l.Class]
	}
	return UnknownGBps
}

// Bandwidth returns the bandwidth figure (GB/s, one direction) between the GPUs
// at positions i and j of n.GPUs. NVLink rates use the smaller NVLink version
// of the two GPUs that is known (> 0); 25 per lane when neither is known. A
// missing matrix entry counts as ClassUnknown. It is 0 for i == j or an index
// out of range.
func (n *Node) Bandwidth(i, j int) float64 {
	if i == j || i < 0 || j < 0 || i >= len(n.GPUs) || j >= len(n.GPUs) {
		return 0
	}
	var l Link
	if i < len(n.Links) && j < len(n.Links[i]) {
		l = n.Links[i][j]
	}
	return l.GBps(minVersion(n.GPUs[i].NVLinkVersion, n.GPUs[j].NVLinkVersion))
}

// minVersion is the smaller of two NVLink versions, ignoring unknown (<= 0)
// ones.
func minVersion(a, b int) int {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}
