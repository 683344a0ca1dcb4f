package nvml

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/gfd"
)

// GFDNode is what GPU Feature Discovery's labels derive from: the
// inventory, plus the host files GFD reads under hostRoot (the DMI product
// name at machineTypeFile, DefaultMachineTypeFile when empty, each GPU's
// PCI class, and the vGPU capability of NVIDIA's PCI devices). An empty hostRoot reads no host files: the machine is
// unknown and so are the PCI classes. A host file that cannot be read
// leaves its value unknown and is returned as an error. The caller fills
// in what the config says (MIG strategy, sharing, timestamp).
func (inv *Inventory) GFDNode(hostRoot, machineTypeFile string) (*gfd.Node, []error) {
	var errs []error
	n := &gfd.Node{DriverVersion: inv.DriverVersion, CUDADriverVersion: inv.CUDADriverVersion}
	if hostRoot != "" {
		if machineTypeFile == "" {
			machineTypeFile = DefaultMachineTypeFile
		}
		var err error
		if n.MachineType, err = ReadMachineType(hostRoot, machineTypeFile); err != nil {
			errs = append(errs, err)
		}
		vgpus, err := ReadVGPUs(hostRoot)
		if err != nil {
			errs = append(errs, err)
		}
		for _, v := range vgpus {
			n.VGPUs = append(n.VGPUs, gfd.VGPU{HostDriverVersion: v.HostDriverVersion, HostDriverBranch: v.HostDriverBranch})
		}
	}
	index := map[int]int{} // GPU.Index -> position in n.GPUs
	for i, g := range inv.GPUs {
		index[g.Index] = i
		out := gfd.GPU{
			Name: g.Name, MemoryMiB: g.MemoryMiB, ComputeCapability: g.CUDACompute,
			MIGCapable: g.MIGCapable, MIGEnabled: g.MIGEnabled,
			ClusterUUID: g.ClusterUUID, CliqueID: g.CliqueID,
		}
		if hostRoot != "" && g.PCIBusID != "" {
			class, err := ReadPCIClass(hostRoot, g.PCIBusID)
			if err != nil {
				errs = append(errs, fmt.Errorf("GPU %d: %w", g.Index, err))
			}
			out.PCIClass = class
		}
		n.GPUs = append(n.GPUs, out)
	}
	for _, m := range inv.MIG {
		parent, ok := index[m.ParentIndex]
		if !ok {
			continue
		}
		a := m.Attributes
		n.MIG = append(n.MIG, gfd.MIGDevice{
			Parent: parent, Profile: m.Profile, MemoryMiB: m.MemoryMiB,
			Multiprocessors: a.Multiprocessors, CopyEngines: a.CopyEngines, Decoders: a.Decoders,
			Encoders: a.Encoders, JPEGs: a.JPEGs, OFAs: a.OFAs, GISlices: a.GISlices, CISlices: a.CISlices,
		})
	}
	return n, errs
}
