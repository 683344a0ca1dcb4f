package fake

import (
	"fmt"
	"slices"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// linkEnd is the remote end of one NVLink lane: a peer GPU, a switch, or
// the GPU's CPU (cpuEnd).
type linkEnd struct {
	peer int // GPU index, -1 for a switch, cpuEnd for the CPU
	sw   int
}

// links lists GPU i's NVLink lanes in link-index order: direct lanes to each
// peer (ascending peer index), then lanes into the NVSwitch fabric.
func (s *spec) links(i int) []linkEnd {
	var out []linkEnd
	peers := make([]int, 0, len(s.direct))
	for pair := range s.direct {
		switch i {
		case pair[0]:
			peers = append(peers, pair[1])
		case pair[1]:
			peers = append(peers, pair[0])
		}
	}
	slices.Sort(peers)
	for _, p := range peers {
		for range s.direct[[2]int{min(i, p), max(i, p)}] {
			out = append(out, linkEnd{peer: p})
		}
	}
	for range s.cpuLanes {
		out = append(out, linkEnd{peer: cpuEnd})
	}
	if s.fabric != nil {
		perBoard := len(s.slots) / max(s.fabric.boards, 1)
		first := (i / perBoard) * len(s.fabric.lanes)
		for k, lanes := range s.fabric.lanes {
			for range lanes {
				out = append(out, linkEnd{peer: -1, sw: first + k})
			}
		}
	}
	return out
}

// switchBus is the PCI bus ID of NVSwitch k.
func (s *spec) switchBus(k int) string {
	return fmt.Sprintf("0000:%02x:00.0", s.fabric.busBase+k)
}

// installLinks fills the topology, NUMA (installNUMA), NVLink and fabric
// functions of GPU i.
func (m *Machine) installLinks(i int, d *server.Device) {
	lanes := m.spec.links(i)
	m.installNUMA(i, d)
	d.GetTopologyCommonAncestorFunc = func(other gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
		j, ok := m.indexOf(other)
		if !ok || j == i {
			return 0, gonvml.ERROR_INVALID_ARGUMENT
		}
		return m.spec.level(i, j), gonvml.SUCCESS
	}
	lane := func(link int) (linkEnd, gonvml.Return) {
		if len(lanes) == 0 {
			return linkEnd{}, gonvml.ERROR_NOT_SUPPORTED
		}
		if link < 0 || link >= len(lanes) {
			return linkEnd{}, gonvml.ERROR_INVALID_ARGUMENT
		}
		return lanes[link], gonvml.SUCCESS
	}
	d.GetNvLinkStateFunc = func(link int) (gonvml.EnableState, gonvml.Return) {
		if _, ret := lane(link); ret != gonvml.SUCCESS {
			return gonvml.FEATURE_DISABLED, ret
		}
		if m.isLaneDown(i, link) {
			return gonvml.FEATURE_DISABLED, gonvml.SUCCESS
		}
		return gonvml.FEATURE_ENABLED, gonvml.SUCCESS
	}
	d.GetNvLinkVersionFunc = func(link int) (uint32, gonvml.Return) {
		if _, ret := lane(link); ret != gonvml.SUCCESS {
			return 0, ret
		}
		return uint32(m.spec.version), gonvml.SUCCESS
	}
	d.GetNvLinkRemoteDeviceTypeFunc = func(link int) (gonvml.IntNvLinkDeviceType, gonvml.Return) {
		end, ret := lane(link)
		switch {
		case ret != gonvml.SUCCESS:
			return gonvml.NVLINK_DEVICE_TYPE_UNKNOWN, ret
		case end.peer == cpuEnd:
			return gonvml.NVLINK_DEVICE_TYPE_IBMNPU, gonvml.SUCCESS
		case end.peer < 0:
			return gonvml.NVLINK_DEVICE_TYPE_SWITCH, gonvml.SUCCESS
		default:
			return gonvml.NVLINK_DEVICE_TYPE_GPU, gonvml.SUCCESS
		}
	}
	d.GetNvLinkRemotePciInfoFunc = func(link int) (gonvml.PciInfo, gonvml.Return) {
		end, ret := lane(link)
		switch {
		case ret != gonvml.SUCCESS:
			return gonvml.PciInfo{}, ret
		case end.peer == cpuEnd:
			return PciInfo(m.spec.npuBus(i), ibmNPUDeviceID), gonvml.SUCCESS
		case end.peer < 0:
			return PciInfo(m.spec.switchBus(end.sw), 0x1af110de), gonvml.SUCCESS
		default:
			return PciInfo(m.spec.slots[end.peer].bus, m.spec.gpuAt(end.peer).PciDeviceId), gonvml.SUCCESS
		}
	}
	d.GetGpuFabricInfoFunc = func() (gonvml.GpuFabricInfo, gonvml.Return) {
		if m.spec.clique == 0 {
			return gonvml.GpuFabricInfo{}, gonvml.ERROR_NOT_SUPPORTED
		}
		return gonvml.GpuFabricInfo{
			ClusterUuid: m.clusterUUID(),
			CliqueId:    m.spec.clique,
			State:       gonvml.GPU_FABRIC_STATE_COMPLETED,
			Status:      uint32(gonvml.SUCCESS),
		}, gonvml.SUCCESS
	}
}

// PciInfo builds the PciInfo NVML reports for a sysfs bus ID such as
// "0000:07:00.0": BusId in NVML's 8-digit-domain upper-case form.
func PciInfo(bus string, deviceID uint32) gonvml.PciInfo {
	var domain, b, dev, fn uint32
	_, _ = fmt.Sscanf(bus, "%x:%x:%x.%x", &domain, &b, &dev, &fn)
	p := gonvml.PciInfo{Domain: domain, Bus: b, Device: dev, PciDeviceId: deviceID}
	copyCString(p.BusId[:], nvmlBusID(bus))
	copyCString(p.BusIdLegacy[:], strings.ToUpper(bus))
	return p
}

// nvmlBusID spells a sysfs bus ID as NVML does: "00000000:07:00.0".
func nvmlBusID(bus string) string {
	return strings.ToUpper("0000" + bus)
}

func copyCString(dst []int8, s string) {
	for k := 0; k < len(s) && k < len(dst)-1; k++ {
		dst[k] = int8(s[k])
	}
}

// LinkDown takes n NVLink lanes between GPU gpu and GPU peer down, at both
// ends (the last n of each end's lanes to the other), as a failed link is
// seen: GetNvLinkState answers FEATURE_DISABLED. With peer -1 it takes n of
// gpu's lanes into the NVSwitch fabric down. It fails when the GPUs have
// fewer lanes than n between them.
func (m *Machine) LinkDown(gpu, peer, n int) error {
	if !m.valid(gpu) || (peer != -1 && (!m.valid(peer) || peer == gpu)) {
		return fmt.Errorf("fake: LinkDown(%d, %d): no such GPUs", gpu, peer)
	}
	ends := [][2]int{{gpu, peer}}
	if peer >= 0 {
		ends = append(ends, [2]int{peer, gpu})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var take [][2]int
	for _, e := range ends {
		var up []int
		for link, end := range m.spec.links(e[0]) {
			if end.peer == e[1] && !m.down[[2]int{e[0], link}] {
				up = append(up, link)
			}
		}
		if len(up) < n {
			return fmt.Errorf("fake: LinkDown: GPU %d has %d lanes up to %d, fewer than %d", e[0], len(up), e[1], n)
		}
		for _, link := range up[len(up)-n:] {
			take = append(take, [2]int{e[0], link})
		}
	}
	if m.down == nil {
		m.down = map[[2]int]bool{}
	}
	for _, k := range take {
		m.down[k] = true
	}
	return nil
}

func (m *Machine) isLaneDown(gpu, link int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.down[[2]int{gpu, link}]
}
