package nvml

import (
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// nvlinkEnds is what one GPU's NVLink walk finds: lanes to each peer GPU (by
// index) and lanes into an NVSwitch fabric.
type nvlinkEnds struct {
	peers    map[int]int
	switches int
	version  int
}

// readLinks builds the N x N link matrix: the PCIe common ancestor of every
// pair, then the NVLink lanes found by walking each GPU's links. A GPU whose
// walk fails is degraded (gpus[i].Degraded); every link of a degraded GPU
// is unknown, without NVLink. Warnings go to logger.
func (l *lib) readLinks(logger klog.Logger, gpus []GPU, devs []gonvml.Device) ([][]Link, error) {
	n := len(gpus)
	links := make([][]Link, n)
	for i := range links {
		links[i] = make([]Link, n)
	}
	ok := func(i int) bool { return gpus[i].Degraded == nil && devs[i] != nil }
	fail := func(i int, err error) error {
		if isGlobal(err) {
			return err
		}
		gpus[i] = degrade(gpus[i], err)
		return nil
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			if !ok(i) || !ok(j) {
				continue
			}
			level, err := commonAncestor(gpus[i], devs[i], gpus[j], devs[j])
			if err != nil {
				// The question is about both GPUs: the one that no longer
				// answers (fallen off the bus since it was read) is at
				// fault, not GPU i, which would take every GPU asked about
				// a lost one out with it.
				at := i
				if answers(devs[i]) && !answers(devs[j]) {
					at = j
				}
				if err := fail(at, err); err != nil {
					return nil, err
				}
				continue
			}
			links[i][j].Level, links[j][i].Level = level, level
		}
	}
	byBus := make(map[string]int, n)
	for _, g := range gpus {
		if g.PCIBusID != "" {
			byBus[g.PCIBusID] = g.Index
		}
	}
	ends := make([]nvlinkEnds, n)
	for i := range n {
		if !ok(i) {
			continue
		}
		e, err := l.walkNvLinks(gpus[i], devs[i], byBus)
		if err != nil {
			if err := fail(i, err); err != nil {
				return nil, err
			}
			continue
		}
		ends[i] = e
		gpus[i].NVLinkVersion = e.version
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			if !ok(i) || !ok(j) {
				links[i][j], links[j][i] = Link{}, Link{}
				continue
			}
			lanes, sw := pairLanes(logger, gpus, ends, i, j)
			links[i][j].NVLinks, links[i][j].NVSwitch = lanes, sw
			links[j][i].NVLinks, links[j][i].NVSwitch = lanes, sw
		}
	}
	for i := range n {
		if !ok(i) {
			gpus[i].NVLinkVersion = 0
		}
	}
	return links, nil
}

// pairLanes combines the two GPUs' walks: direct lanes when there are any,
// else the smaller of their NVSwitch lane counts. When the two ends count
// different direct lanes (a lane reads down at one end only), the smaller
// count is taken, with a warning: a lane carries traffic only when both ends
// have it up, and refusing the pair would fail discovery, and so every GPU of
// the node, over one lane.
func pairLanes(logger klog.Logger, gpus []GPU, ends []nvlinkEnds, i, j int) (int, bool) {
	ij, ji := ends[i].peers[j], ends[j].peers[i]
	direct := min(ij, ji)
	if ij != ji {
		logger.Info("Warning: two GPUs disagree on their NVLink lanes; counting only the lanes both ends report up",
			"gpu", gpuName(i, gpus[i].UUID), "peer", gpuName(j, gpus[j].UUID),
			"lanes", ij, "peerLanes", ji, "using", direct)
	}
	if direct > 0 {
		return direct, false
	}
	if s := min(ends[i].switches, ends[j].switches); s > 0 {
		return s, true
	}
	return 0, false
}

// answers reports whether a GPU answers a basic question (its memory, as
// CheckGPU asks).
func answers(dev gonvml.Device) bool {
	_, ret := dev.GetMemoryInfo()
	return ret == gonvml.SUCCESS
}

// commonAncestor maps GetTopologyCommonAncestor to a LinkLevel.
func commonAncestor(a GPU, da gonvml.Device, b GPU, db gonvml.Device) (LinkLevel, error) {
	level, ret := da.GetTopologyCommonAncestor(db)
	switch ret {
	case gonvml.SUCCESS:
	case gonvml.ERROR_NOT_SUPPORTED:
		return LevelUnknown, nil
	default:
		return LevelUnknown, callError(gpuName(a.Index, a.UUID),
			fmt.Sprintf("GetTopologyCommonAncestor(GPU %d)", b.Index), ret)
	}
	switch level {
	case gonvml.TOPOLOGY_INTERNAL:
		return LevelSameBoard, nil
	case gonvml.TOPOLOGY_SINGLE:
		return LevelPIX, nil
	case gonvml.TOPOLOGY_MULTIPLE:
		return LevelPXB, nil
	case gonvml.TOPOLOGY_HOSTBRIDGE:
		return LevelPHB, nil
	case gonvml.TOPOLOGY_NODE:
		return LevelNODE, nil
	case gonvml.TOPOLOGY_SYSTEM:
		return LevelSYS, nil
	default:
		return LevelUnknown, fmt.Errorf("GPU %s: GetTopologyCommonAncestor(GPU %d): unknown level %d",
			gpuName(a.Index, a.UUID), b.Index, level)
	}
}

// walkNvLinks visits links 0..NVLINK_MAX_LINKS-1 of one GPU and counts the
// active lanes per remote end. A link that answers NOT_SUPPORTED or
// INVALID_ARGUMENT does not exist on this GPU.
func (l *lib) walkNvLinks(g GPU, dev gonvml.Device, byBus map[string]int) (nvlinkEnds, error) {
	name := gpuName(g.Index, g.UUID)
	e := nvlinkEnds{peers: map[int]int{}}
	hasRemoteType := l.hasSymbol(symNvLinkRemType)
	for link := range gonvml.NVLINK_MAX_LINKS {
		state, ret := dev.GetNvLinkState(link)
		if absent(ret) {
			continue
		}
		if ret != gonvml.SUCCESS {
			return e, callError(name, fmt.Sprintf("GetNvLinkState(link %d)", link), ret)
		}
		if state != gonvml.FEATURE_ENABLED {
			continue
		}
		peer, isSwitch, err := l.remoteEnd(name, dev, link, byBus, hasRemoteType)
		if err != nil {
			return e, err
		}
		switch {
		case isSwitch:
			e.switches++
		case peer == g.Index:
			return e, fmt.Errorf("GPU %s: NVLink %d loops back to the GPU itself", name, link)
		case peer >= 0:
			e.peers[peer]++
		default:
			continue // a CPU (IBM NPU) end: not a GPU-GPU link
		}
		if e.version == 0 {
			v, err := nvlinkVersion(name, dev, link)
			if err != nil {
				return e, err
			}
			e.version = v
		}
	}
	return e, nil
}

// remoteEnd says what one active link reaches: a peer GPU (its index), an
// NVSwitch, or neither (peer -1, e.g. an IBM NPU).
func (l *lib) remoteEnd(name string, dev gonvml.Device, link int, byBus map[string]int, hasRemoteType bool) (int, bool, error) {
	remoteType := gonvml.NVLINK_DEVICE_TYPE_UNKNOWN
	if hasRemoteType {
		t, ret := dev.GetNvLinkRemoteDeviceType(link)
		switch {
		case ret == gonvml.SUCCESS:
			remoteType = t
		case absent(ret) || ret == gonvml.ERROR_FUNCTION_NOT_FOUND:
		default:
			return -1, false, callError(name, fmt.Sprintf("GetNvLinkRemoteDeviceType(link %d)", link), ret)
		}
	}
	switch remoteType {
	case gonvml.NVLINK_DEVICE_TYPE_SWITCH:
		return -1, true, nil
	case gonvml.NVLINK_DEVICE_TYPE_IBMNPU:
		return -1, false, nil
	}
	pci, ret := dev.GetNvLinkRemotePciInfo(link)
	if ret != gonvml.SUCCESS {
		return -1, false, callError(name, fmt.Sprintf("GetNvLinkRemotePciInfo(link %d)", link), ret)
	}
	bus, err := NormalizeBusID(busIDString(pci))
	if err != nil {
		return -1, false, fmt.Errorf("GPU %s: GetNvLinkRemotePciInfo(link %d): %w", name, link, err)
	}
	peer, ok := byBus[bus]
	switch {
	case ok:
		return peer, false, nil
	case remoteType == gonvml.NVLINK_DEVICE_TYPE_UNKNOWN:
		// Drivers without the remote-type call: a remote end that is no GPU of
		// this node is an NVSwitch (DGX-2 era), unless its PCI identity names
		// another vendor's device (a POWER9 CPU's NPU, IBM's).
		return -1, !otherVendor(pci), nil
	default:
		// A GPU NVML does not list (fallen off the bus, or hidden from this
		// container): the link leads nowhere usable. Only that GPU is out;
		// the rest of the node must still be discovered.
		return -1, false, nil
	}
}

// nvidiaVendorID is NVIDIA's PCI vendor ID.
const nvidiaVendorID = 0x10de

// otherVendor reports whether a PciInfo names a device of a vendor other
// than NVIDIA (PciDeviceId: the device ID in the upper 16 bits, the vendor
// ID in the lower); an identity left 0 names none.
func otherVendor(pci gonvml.PciInfo) bool {
	vendor := pci.PciDeviceId & 0xffff
	return vendor != 0 && vendor != nvidiaVendorID
}

// nvlinkVersion reads a link's version (nvmlNvlinkVersion_t) as the NVLink
// generation: 1, 2, 3, 4, 5 or 6.
func nvlinkVersion(name string, dev gonvml.Device, link int) (int, error) {
	v, ret := dev.GetNvLinkVersion(link)
	if absent(ret) {
		return 0, nil
	}
	if ret != gonvml.SUCCESS {
		return 0, callError(name, fmt.Sprintf("GetNvLinkVersion(link %d)", link), ret)
	}
	switch gonvml.NvlinkVersion(v) {
	case gonvml.NVLINK_VERSION_1_0:
		return 1, nil
	case gonvml.NVLINK_VERSION_2_0, gonvml.NVLINK_VERSION_2_2:
		return 2, nil
	case gonvml.NVLINK_VERSION_3_0, gonvml.NVLINK_VERSION_3_1:
		return 3, nil
	case gonvml.NVLINK_VERSION_4_0:
		return 4, nil
	case gonvml.NVLINK_VERSION_5_0:
		return 5, nil
	case gonvml.NVLINK_VERSION_6_0:
		return 6, nil
	default:
		return 0, fmt.Errorf("GPU %s: GetNvLinkVersion(link %d): unknown version %d", name, link, v)
	}
}

// absent reports the answers NVML gives for a link or feature the GPU lacks.
func absent(ret gonvml.Return) bool {
	return ret == gonvml.ERROR_NOT_SUPPORTED || ret == gonvml.ERROR_INVALID_ARGUMENT
}
