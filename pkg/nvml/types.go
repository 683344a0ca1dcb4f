// Package nvml is gpupack's narrow view of the NVIDIA Management Library.
//
// Everything above this package sees GPUs, MIG devices, pairwise links and health
// events as plain Go values; only this package talks to go-nvml. The same code
// runs over the real library (New(nvml.New())) and over the fake machines of
// pkg/nvml/fake, which are go-nvml mock servers.
package nvml

import (
	"context"
	"errors"
)

// ErrLibraryNotFound is returned by Init when libnvidia-ml.so.1 cannot be
// loaded: the node has no NVIDIA driver (or it is not mounted into the container).
var ErrLibraryNotFound = errors.New("NVML library libnvidia-ml.so.1 not found: is the NVIDIA driver installed and mounted?")

// ErrGPULost is returned (wrapped) when a GPU has fallen off the bus or answers
// with ERROR_GPU_IS_LOST.
var ErrGPULost = errors.New("GPU is lost")

// LinkLevel is the closest common ancestor of two GPUs on the PCIe tree, as
// nvidia-smi topo -m reports it.
type LinkLevel int

// Link levels, best first.
const (
	LevelUnknown   LinkLevel = iota
	LevelSameBoard           // TOPOLOGY_INTERNAL: two GPUs on one board
	LevelPIX                 // TOPOLOGY_SINGLE: one PCIe switch
	LevelPXB                 // TOPOLOGY_MULTIPLE: several PCIe switches, no host bridge
	LevelPHB                 // TOPOLOGY_HOSTBRIDGE: a PCIe host bridge
	LevelNODE                // TOPOLOGY_NODE: host bridges within one NUMA node
	LevelSYS                 // TOPOLOGY_SYSTEM: across the SMP interconnect (sockets)
)

// String returns the nvidia-smi topo -m spelling of the level.
func (l LinkLevel) String() string {
	switch l {
	case LevelSameBoard:
		return "BOARD"
	case LevelPIX:
		return "PIX"
	case LevelPXB:
		return "PXB"
	case LevelPHB:
		return "PHB"
	case LevelNODE:
		return "NODE"
	case LevelSYS:
		return "SYS"
	default:
		return "?"
	}
}

// GPU is one physical GPU as discovered.
type GPU struct {
	Index        int
	Minor        int
	UUID         string
	Name         string // product name, e.g. "NVIDIA A100-SXM4-40GB"
	MemoryMiB    uint64
	PCIBusID     string // normalised "0000:07:00.0"
	NUMANode     int    // -1 when unknown
	Architecture string // e.g. "ampere"
	CUDACompute  string // e.g. "8.0"
	// NVLinkVersion of the GPU's active links (0 when it has none).
	NVLinkVersion int
	MIGCapable    bool
	MIGEnabled    bool
	// ClusterUUID and CliqueID identify the multi-node NVLink domain (GB200
	// NVL72 and alike); empty/0 when the GPU is not part of one.
	ClusterUUID string
	CliqueID    uint32
	// Degraded is why discovery could not read this GPU in full (nil when
	// it could): an NVML error about this GPU only. The GPU stays listed, so
	// the node's capacity does not shrink, and starts unhealthy; what could
	// not be read is zero, UUID is PlaceholderUUID(Index) when even that
	// failed, and its links are unknown (no NVLink).
	Degraded error
}

// GPURef is a GPU of a discovery by what it read of its identity.
type GPURef struct {
	Index    int
	UUID     string // "" or a PlaceholderUUID: not read
	PCIBusID string // "": not read
}

// Ref is g's GPURef.
func (g GPU) Ref() GPURef { return GPURef{Index: g.Index, UUID: g.UUID, PCIBusID: g.PCIBusID} }

// MIGDevice is one MIG device (a GPU instance with one compute instance).
type MIGDevice struct {
	UUID        string
	ParentIndex int
	ParentUUID  string
	Profile     string // e.g. "1g.5gb", "3g.20gb", "1c.2g.10gb"
	GIID        int
	CIID        int
	// Start and Size locate the GPU instance on the parent's memory slices.
	Start     int
	Size      int
	MemoryMiB uint64
	// Attributes are the instance's engines and slices, as NVML's
	// nvmlDeviceGetAttributes reports them (GPU Feature Discovery's
	// per-profile labels).
	Attributes MIGAttributes
}

// MIGAttributes are a MIG device's multiprocessors, shared engines and
// slices.
type MIGAttributes struct {
	Multiprocessors uint32
	CopyEngines     uint32
	Decoders        uint32
	Encoders        uint32
	JPEGs           uint32
	OFAs            uint32
	// GISlices and CISlices are the GPU and compute instance slice counts.
	GISlices uint32
	CISlices uint32
}

// Link describes how two GPUs are connected.
type Link struct {
	Level LinkLevel
	// NVLinks is the number of NVLink lanes between the pair: direct lanes,
	// or, when NVSwitch is set, the smaller of the two GPUs' lane counts into
	// the switch fabric.
	NVLinks  int
	NVSwitch bool
}

// Inventory is everything discovery learns about a node's GPUs.
type Inventory struct {
	DriverVersion     string
	CUDADriverVersion string // e.g. "12.4"
	GPUs              []GPU
	MIG               []MIGDevice
	// Links is N x N (N = len(GPUs)), symmetric; the diagonal is the zero Link.
	Links [][]Link
}

// EventKind classifies a health event.
type EventKind int

// Event kinds.
const (
	EventXID EventKind = iota
	EventECCDoubleBit
	EventECCSingleBit
	// EventGPULost: the GPU stopped answering (XID 79 or handle errors).
	EventGPULost
)

// String names the kind for logs and metrics.
func (k EventKind) String() string {
	switch k {
	case EventXID:
		return "xid"
	case EventECCDoubleBit:
		return "ecc-double-bit"
	case EventECCSingleBit:
		return "ecc-single-bit"
	case EventGPULost:
		return "gpu-lost"
	default:
		return "unknown"
	}
}

// Event is one health event for one GPU. For MIG devices GIID/CIID name the
// instance the event came from (-1 when it concerns the whole GPU).
type Event struct {
	GPUIndex int
	UUID     string
	Kind     EventKind
	XID      uint64
	GIID     int
	CIID     int
}

// Lib is the narrow interface the rest of gpupack uses. A call that meets an
// NVML session the driver no longer serves (IsSessionError: the driver was
// unloaded or reloaded under the process) opens a new session (Shutdown, then
// Init, paced while Init fails) and runs again on it; until one opens, calls
// fail with ErrSessionLost (wrapped).
type Lib interface {
	// Init loads and initialises NVML. It returns ErrLibraryNotFound (wrapped)
	// when there is no driver.
	Init() error
	Shutdown() error
	// Discover reads GPUs, MIG devices and pairwise links.
	Discover() (*Inventory, error)
	// WatchEvents streams health events for the given GPUs until ctx is done,
	// then closes the channel. It never blocks the caller.
	WatchEvents(ctx context.Context, gpuUUIDs []string) (<-chan Event, error)
	// CheckGPU returns nil when the GPU answers basic queries and needs no
	// reset nor service (used to decide recovery); ErrGPULost (wrapped) when
	// it is gone, ErrResetRequired or ErrNeedsService (wrapped, with the
	// reasons) when it answers but must be reset or serviced first.
	CheckGPU(uuid string) error
	// RecheckGPUs discovers the node again, once, and checks in that
	// discovery GPUs of an earlier one (earlier: the refs of all its GPUs,
	// GPU.Ref; indexes: the GPUs to check, by their index there): one
	// error per index, in order. Each GPU is found by its identity (PCI
	// bus ID, else UUID; one whose identity could not be read, by its
	// place between the GPUs found), not by its index: the indexes shift
	// when a GPU before it is no longer listed. nil means the discovery
	// reads the GPU in full (its identity, MIG devices and links: a fault
	// in any degrades it) and it needs no reset nor service, so a node
	// discovered again serves it. Otherwise: ErrGPULost (wrapped) when it
	// is no longer listed; the error that degraded it in the discovery
	// (ErrGPULost wrapped when it is lost); ErrResetRequired or
	// ErrNeedsService (wrapped, with the reasons) when it answers but must
	// be reset or serviced first; else the NVML error met. A discovery that
	// fails, or a library not initialised, is every GPU's error.
	RecheckGPUs(earlier []GPURef, indexes []int) []error
	// CheckMIG compares the MIG mode and MIG devices of inv's GPUs with the
	// driver's now: nil when unchanged, an error wrapping ErrMIGChanged
	// when they changed (a *MIGChange per GPU that changed, joined:
	// MIGChanges), else the NVML errors met.
	CheckMIG(inv *Inventory) error
}
