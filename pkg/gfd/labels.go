package gfd

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels are GFD's labels for n at time now, as GFD's default flags write
// them (with flags.gfd.noTimestamp honoured). GFD fails the whole label set
// on some NVML answers; here each such case drops only the labels it
// concerns and is returned as an error (the rest is published):
//   - a driver version not of the form X.Y[.Z]: no driver version labels;
//   - a label value that is not a valid label value (a DMI product name
//     with a '(' ...): that label is left out, as NFD leaves it out of
//     GFD's output;
//   - mps.capable with MPS sharing and a MIG-enabled GPU: "false" (GFD
//     refuses the node).
//
// A node without GPUs gets the machine and timestamp labels only.
func Labels(n *Node, now time.Time) (map[string]string, []error) {
	var errs []error
	out := map[string]string{LabelMachine: machineValue(n.MachineType)}
	if !n.NoTimestamp {
		out[LabelTimestamp] = strconv.FormatInt(now.Unix(), 10)
	}
	gpus := readable(n)
	if len(gpus) > 0 {
		v, err := versionLabels(n.DriverVersion, n.CUDADriverVersion)
		if err != nil {
			errs = append(errs, err)
		}
		maps.Copy(out, v)
		out[LabelMIGCapable] = strconv.FormatBool(anyGPU(gpus, func(g *GPU) bool { return g.MIGCapable }))
		maps.Copy(out, mpsLabels(n, gpus))
		maps.Copy(out, resourceLabels(n, gpus))
		out[LabelMode] = mode(gpus)
		clique, err := cliqueLabels(gpus)
		if err != nil {
			errs = append(errs, err)
		}
		maps.Copy(out, clique)
	}
	maps.Copy(out, vgpuLabels(n.VGPUs))
	return validLabels(out, errs)
}

// vgpuLabels are GFD's vGPU labels: present with any vGPU device, and the
// host driver's version and branch as the last device that says them.
func vgpuLabels(vgpus []VGPU) map[string]string {
	if len(vgpus) == 0 {
		return nil
	}
	out := map[string]string{LabelVGPUPresent: "true"}
	for _, v := range vgpus {
		if v.HostDriverVersion != "" || v.HostDriverBranch != "" {
			out[LabelVGPUHostDriver], out[LabelVGPUHostBranch] = v.HostDriverVersion, v.HostDriverBranch
		}
	}
	return out
}

// readable are the GPUs whose name NVML could read (with their index in
// n.GPUs): a GPU discovery degraded before reading its name has nothing to
// label.
func readable(n *Node) []indexed {
	var out []indexed
	for i := range n.GPUs {
		if n.GPUs[i].Name != "" {
			out = append(out, indexed{i, &n.GPUs[i]})
		}
	}
	return out
}

type indexed struct {
	index int
	*GPU
}

func anyGPU(gpus []indexed, f func(*GPU) bool) bool {
	for _, g := range gpus {
		if f(g.GPU) {
			return true
		}
	}
	return false
}

// versionLabels are the driver and CUDA driver version labels: the driver
// version split at '.', into major, minor and revision ("" for a two-part
// version), and the CUDA driver version's major and minor.
func versionLabels(driver, cuda string) (map[string]string, error) {
	out := map[string]string{}
	var err error
	parts := strings.Split(driver, ".")
	if len(parts) < 2 || len(parts) > 3 {
		err = fmt.Errorf("driver version %q is not of the form X.Y[.Z]: no driver version labels", driver)
	} else {
		rev := ""
		if len(parts) == 3 {
			rev = parts[2]
		}
		out[LabelDriverMajor], out[LabelDriverVersionMajor] = parts[0], parts[0]
		out[LabelDriverMinor], out[LabelDriverVersionMinor] = parts[1], parts[1]
		out[LabelDriverRev], out[LabelDriverVersionRev] = rev, rev
		out[LabelDriverVersionFull] = driver
	}
	if major, minor, ok := majorMinor(cuda); ok {
		out[LabelRuntimeMajor], out[LabelRuntimeVersionMajor] = strconv.Itoa(major), strconv.Itoa(major)
		out[LabelRuntimeMinor], out[LabelRuntimeVersionMinor] = strconv.Itoa(minor), strconv.Itoa(minor)
		out[LabelRuntimeVersionFull] = fmt.Sprintf("%d.%d", major, minor)
	} else if err == nil {
		err = fmt.Errorf("CUDA driver version %q is not of the form X.Y: no CUDA version labels", cuda)
	}
	return out, err
}

// majorMinor parses "<major>.<minor>" of non-negative numbers.
func majorMinor(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return 0, 0, false
	}
	return major, minor, true
}

// mpsLabels is nvidia.com/mps.capable: true only when the config shares
// with MPS and no GPU has MIG enabled.
func mpsLabels(n *Node, gpus []indexed) map[string]string {
	capable := n.Sharing.Strategy == SharingMPS && !anyGPU(gpus, func(g *GPU) bool { return g.MIGEnabled })
	return map[string]string{LabelMPSCapable: strconv.FormatBool(capable)}
}

// mode is nvidia.com/gpu.mode from the GPUs' PCI classes: graphics (VGA
// controller), compute (3D controller), unknown when a class could not be
// read, the GPUs differ, or the class is another.
func mode(gpus []indexed) string {
	class := gpus[0].PCIClass
	for _, g := range gpus {
		if g.PCIClass == 0 || g.PCIClass != class {
			return "unknown"
		}
	}
	switch class {
	case pciClassVGA:
		return "graphics"
	case pciClass3D:
		return "compute"
	default:
		return "unknown"
	}
}

// PCI class codes (pkg/nvml's PCIClassVGA and PCIClass3D; this package
// does not import pkg/nvml).
const (
	pciClassVGA uint32 = 0x030000
	pciClass3D  uint32 = 0x030200
)

// cliqueLabels is nvidia.com/gpu.clique, the node's NVLink clique
// (cliqueOf); none when no GPU is attached to a fabric, or, with an error
// naming each GPU's clique, when the attached ones disagree.
func cliqueLabels(gpus []indexed) (map[string]string, error) {
	ids := make([]fabricID, 0, len(gpus))
	for _, g := range gpus {
		ids = append(ids, fabricID{g.index, g.ClusterUUID, g.CliqueID})
	}
	c, err := cliqueOf(ids)
	if err != nil {
		return nil, fmt.Errorf("label %s left out: %w", LabelClique, err)
	}
	if c == "" {
		return nil, nil
	}
	return map[string]string{LabelClique: c}, nil
}

// Clique is the NVLink clique of a node whose GPUs are gpus (GPU i at
// gpus[i]), as cliqueOf: "" when none is attached or, with an error, when
// the attached GPUs disagree. The topology annotation's node.clique is
// this, so that it and nvidia.com/gpu.clique always say the same.
func Clique(gpus []GPU) (string, error) {
	ids := make([]fabricID, len(gpus))
	for i, g := range gpus {
		ids[i] = fabricID{i, g.ClusterUUID, g.CliqueID}
	}
	return cliqueOf(ids)
}

// fabricID is GPU index's NVLink fabric identity; cluster is empty when
// the GPU is not attached to a completed fabric.
type fabricID struct {
	index   int
	cluster string
	clique  uint32
}

// cliqueOf is <cluster UUID>.<clique ID> of the GPUs attached to a fabric
// (a GPU without a cluster UUID is skipped), as GPU Feature Discovery
// (getFabricIDs): when they do not all share one cluster UUID and one
// clique ID, the node has none and the error names each clique with its
// GPUs (GFD logs a warning); no attached GPU is no clique, no error. One
// GPU's clique is never the node's while another attached GPU differs.
func cliqueOf(ids []fabricID) (string, error) {
	var cliques []string
	members := map[string][]string{}
	for _, id := range ids {
		if id.cluster == "" {
			continue
		}
		c := fmt.Sprintf("%s.%d", id.cluster, id.clique)
		if _, ok := members[c]; !ok {
			cliques = append(cliques, c)
		}
		members[c] = append(members[c], strconv.Itoa(id.index))
	}
	switch len(cliques) {
	case 0:
		return "", nil
	case 1:
		return cliques[0], nil
	}
	parts := make([]string, len(cliques))
	for i, c := range cliques {
		gpus := "GPU "
		if len(members[c]) > 1 {
			gpus = "GPUs "
		}
		parts[i] = gpus + strings.Join(members[c], ", ") + ": " + c
	}
	return "", fmt.Errorf("the GPUs' NVLink fabrics disagree (%s): no clique is the node's", strings.Join(parts, "; "))
}

// validLabels drops each label whose key or value the apiserver would
// refuse, or whose key is not one of GFD's (IsLabel: a MIG profile name
// outside NVIDIA's spelling; the node policy would refuse the whole
// write), with an error naming it.
func validLabels(in map[string]string, errs []error) (map[string]string, []error) {
	for k, v := range in {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 || !IsLabel(k) {
			if len(msgs) == 0 {
				msgs = []string{"not a key GPU Feature Discovery writes"}
			}
			errs = append(errs, fmt.Errorf("label key %q left out: %s", k, strings.Join(msgs, "; ")))
			delete(in, k)
			continue
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("label %s=%q left out: %s", k, v, strings.Join(msgs, "; ")))
			delete(in, k)
		}
	}
	return in, errs
}
