// Package gfd computes the node labels NVIDIA's GPU Feature Discovery (GFD,
// gpu-feature-discovery of NVIDIA/k8s-device-plugin) writes, with GFD's
// keys, values and sanitising, from what the device plugin already knows:
// the NVML inventory, the host's DMI product name and PCI classes, and the
// device plugin's config (MIG strategy, time-slicing or MPS). gpupack
// publishes them itself (pkg/nodepublish), so a node needs no GFD; with
// publish.labels off, a GFD running beside gpupack writes them instead.
//
// The package is pure: it reads no files and calls no NVML (the device
// plugin fills a Node through pkg/nvml), so it is tested on plain values.
package gfd

// Node is what GFD's labels derive from.
type Node struct {
	// DriverVersion is NVML's driver version ("550.54.15").
	DriverVersion string
	// CUDADriverVersion is NVML's CUDA driver version ("12.4").
	CUDADriverVersion string
	// GPUs in NVML index order.
	GPUs []GPU
	// MIG devices, grouped by parent in GPU order (NVML's order).
	MIG []MIGDevice
	// VGPUs are the node's vGPU devices (a vGPU guest; none on bare metal).
	VGPUs []VGPU
	// MachineType is the DMI product name as read (trimmed); "" when it
	// could not be read (the label then says "unknown", as GFD's does).
	MachineType string
	// MIGStrategy is the config's flags.migStrategy: none, single or mixed.
	MIGStrategy string
	// Sharing is the config's sharing section (SharingOf).
	Sharing Sharing
	// NoTimestamp drops nvidia.com/gfd.timestamp (flags.gfd.noTimestamp).
	NoTimestamp bool
	// Unread are the host files that could not be read (their values are
	// unknown), for the publisher to log.
	Unread []error
}

// GPU is one GPU as GFD's labels see it.
type GPU struct {
	// Name is NVML's product name ("NVIDIA A100-SXM4-40GB"); a GPU whose
	// name NVML could not read is left out of the labels.
	Name      string
	MemoryMiB uint64
	// ComputeCapability is "<major>.<minor>" ("8.0"); "" or a major of 0
	// means unknown (no family or compute labels, as in GFD).
	ComputeCapability string
	MIGCapable        bool
	MIGEnabled        bool
	// PCIClass is the PCI class code (0x030200); 0 when it could not be read.
	PCIClass uint32
	// ClusterUUID and CliqueID are the GPU's NVLink fabric identity; an
	// empty ClusterUUID means the GPU is not fabric-attached.
	ClusterUUID string
	CliqueID    uint32
}

// VGPU is one vGPU device of a guest: what it says of its host's vGPU
// manager (empty when it says nothing).
type VGPU struct {
	HostDriverVersion, HostDriverBranch string
}

// MIGDevice is one MIG device as GFD's labels see it.
type MIGDevice struct {
	// Parent is the index of the parent GPU in Node.GPUs.
	Parent int
	// Profile is NVIDIA's profile name ("1g.5gb", "1g.10gb+me").
	Profile   string
	MemoryMiB uint64
	// The instance's attributes (NVML's nvmlDeviceGetAttributes).
	Multiprocessors, CopyEngines, Decoders, Encoders, JPEGs, OFAs uint32
	GISlices, CISlices                                            uint32
}
