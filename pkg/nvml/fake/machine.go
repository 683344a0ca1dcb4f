package fake

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/uuid"
)

// namespace seeds the deterministic UUIDs of fake GPUs, MIG devices and fabrics.
var namespace = uuid.MustParse("6f1c8a52-5b0e-4d61-9a8e-9a5d1b7c0e2f")

// Option configures a machine.
type Option func(*options) error

type options struct {
	mig  map[int][]string
	host string
}

// WithHostname makes the machine's GPU and MIG UUIDs those of the host
// (node) called host: real UUIDs are unique, so two nodes of one machine
// type must not share them (a check keyed by device ID alone would then
// see false double assignments, or miss real ones). Without it the UUIDs
// derive from the machine type alone, as for one machine per process.
func WithHostname(host string) Option {
	return func(o *options) error {
		if host == "" {
			return errors.New("fake: empty hostname")
		}
		o.host = host
		return nil
	}
}

// WithMIG enables MIG on the given GPUs (by index) and creates, for each
// profile name ("1g.5gb", "3g.20gb", "1c.2g.10gb", ...), one GPU instance with
// one compute instance, at the first set of placements that fits them all.
func WithMIG(layout map[int][]string) Option {
	return func(o *options) error {
		if o.mig == nil {
			o.mig = map[int][]string{}
		}
		for gpu, profiles := range layout {
			o.mig[gpu] = append(o.mig[gpu], profiles...)
		}
		return nil
	}
}

// Machine is one fake node: a go-nvml mock server with its GPUs wired as the
// catalog describes.
type Machine struct {
	// host seeds the GPU and MIG UUIDs ("" : the machine type alone).
	host  string
	spec  *spec
	srv   *server.Server
	devs  []*server.Device
	index map[string]int // GPU UUID -> index

	mu   sync.Mutex
	lost []bool
	// unlisted are the GPUs the driver no longer enumerates (Unlist).
	unlisted []bool
	mem      []memState
	faults   map[fault]gonvml.Return
	sets     map[*mock.EventSet]*eventQueue
	migs     map[migKey]*mock.Device
	// down are the NVLink lanes taken down ({gpu, link}), see LinkDown.
	down map[[2]int]bool
	// driver is the NVIDIA driver and NVML's session (UnloadDriver).
	driver driverState
}

// New builds the catalog machine called name.
func New(name string, opts ...Option) (*Machine, error) {
	build, ok := catalog[name]
	if !ok {
		build, ok = shapes[name]
	}
	if !ok {
		return nil, fmt.Errorf("fake: unknown machine %q (known: %v; shapes: %v)", name, Names(), ShapeNames())
	}
	o := &options{}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	s := build()
	if err := s.validate(); err != nil {
		return nil, err
	}
	srv, err := server.New(
		server.WithGPUs(s.configs()...),
		server.WithDriverVersion(s.driver),
		server.WithNVMLVersion("12."+s.driver),
		server.WithCUDADriverVersion(s.cuda),
	)
	if err != nil {
		return nil, fmt.Errorf("fake: machine %q: %w", name, err)
	}
	m := &Machine{
		host:     o.host,
		spec:     s,
		srv:      srv,
		index:    map[string]int{},
		lost:     make([]bool, len(s.slots)),
		unlisted: make([]bool, len(s.slots)),
		mem:      make([]memState, len(s.slots)),
		faults:   map[fault]gonvml.Return{},
		sets:     map[*mock.EventSet]*eventQueue{},
		migs:     map[migKey]*mock.Device{},
	}
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.UUID = m.gpuUUID(i)
		dev.PciBusID = nvmlBusID(s.slots[i].bus)
		m.devs = append(m.devs, dev)
		m.index[dev.UUID] = i
	}
	for i, d := range m.devs {
		m.installIdentity(i, d)
		m.installLinks(i, d)
		m.installMIG(i, d)
		m.installEvents(i, d)
		m.installLost(i, d)
		m.installComputeMode(i, d)
		m.installMemory(i, d)
	}
	m.installServer()
	if err := m.applyMIG(o.mig); err != nil {
		return nil, fmt.Errorf("fake: machine %q: %w", name, err)
	}
	m.installDriver()
	return m, nil
}

// Interface is the machine as go-nvml's Interface, for nvml.New.
func (m *Machine) Interface() gonvml.Interface { return m.srv }

// Server is the underlying mock server. Tests override its ...Func fields to
// simulate bad NVML answers.
func (m *Machine) Server() *server.Server { return m.srv }

// Device is GPU i's mock device (nil when out of range); tests override its
// ...Func fields.
func (m *Machine) Device(i int) *server.Device {
	if i < 0 || i >= len(m.devs) {
		return nil
	}
	return m.devs[i]
}

// Name is the catalog name of the machine.
func (m *Machine) Name() string { return m.spec.name }

// NumGPUs is the machine's GPU count.
func (m *Machine) NumGPUs() int { return len(m.devs) }

// UUID is GPU i's UUID ("" when out of range).
func (m *Machine) UUID(i int) string {
	if i < 0 || i >= len(m.devs) {
		return ""
	}
	return m.devs[i].UUID
}

// BusID is GPU i's PCI bus ID in sysfs form ("0000:07:00.0").
func (m *Machine) BusID(i int) string {
	if i < 0 || i >= len(m.devs) {
		return ""
	}
	return m.spec.slots[i].bus
}

// LoseGPU makes GPU gpu fall off the bus: handle calls and queries answer
// ERROR_GPU_IS_LOST, and watchers get an XID 79 event.
func (m *Machine) LoseGPU(gpu int) {
	if !m.valid(gpu) {
		return
	}
	m.mu.Lock()
	m.lost[gpu] = true
	m.mu.Unlock()
	m.emit(gpu, gonvml.EventTypeXidCriticalError, 79, noInstance, noInstance)
}

// RestoreGPU brings a lost GPU back.
func (m *Machine) RestoreGPU(gpu int) {
	if !m.valid(gpu) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lost[gpu] = false
}

// Calls a fault can be injected into with Fail.
const (
	CallDeviceGetHandleByIndex = "DeviceGetHandleByIndex"
	CallDeviceGetHandleByUUID  = "DeviceGetHandleByUUID"
	CallRegisterEvents         = "RegisterEvents"
	CallGetMemoryInfo          = "GetMemoryInfo"
)

// FaultCalls lists the calls Fail accepts.
func FaultCalls() []string {
	return []string{CallDeviceGetHandleByIndex, CallDeviceGetHandleByUUID, CallRegisterEvents, CallGetMemoryInfo,
		CallGetRetiredPagesPendingStatus, CallGetRemappedRows, CallGetTotalEccErrors}
}

type fault struct {
	gpu  int
	call string
}

// Fail makes call answer ret for GPU gpu until Heal (ret SUCCESS clears the
// fault). Unlike LoseGPU it breaks one call only, e.g. event registration
// of one GPU while its queries still work.
func (m *Machine) Fail(gpu int, call string, ret gonvml.Return) error {
	if !m.valid(gpu) {
		return fmt.Errorf("fake: no GPU %d", gpu)
	}
	if !slices.Contains(FaultCalls(), call) {
		return fmt.Errorf("fake: cannot inject a fault into %q (known: %v)", call, FaultCalls())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ret == gonvml.SUCCESS {
		delete(m.faults, fault{gpu, call})
		return nil
	}
	m.faults[fault{gpu, call}] = ret
	return nil
}

// Heal clears every fault of GPU gpu injected with Fail.
func (m *Machine) Heal(gpu int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for f := range m.faults {
		if f.gpu == gpu {
			delete(m.faults, f)
		}
	}
}

// faultOf is the injected answer of call on GPU gpu (SUCCESS: none).
func (m *Machine) faultOf(gpu int, call string) gonvml.Return {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ret, ok := m.faults[fault{gpu, call}]; ok {
		return ret
	}
	return gonvml.SUCCESS
}

// Unlist makes the driver no longer enumerate GPU gpu (it fell off the bus
// and was removed): DeviceGetCount counts one GPU less and
// DeviceGetHandleByIndex numbers the GPUs after it one lower, as NVML
// numbers the GPUs it lists. Relist lists it again.
func (m *Machine) Unlist(gpu int) { m.setUnlisted(gpu, true) }

// Relist lists a GPU that Unlist removed again.
func (m *Machine) Relist(gpu int) { m.setUnlisted(gpu, false) }

func (m *Machine) setUnlisted(gpu int, v bool) {
	if !m.valid(gpu) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unlisted[gpu] = v
}

// listed maps NVML's index i to the machine's GPU (-1 when none, and the
// count of the GPUs listed).
func (m *Machine) listed(i int) (gpu, count int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gpu = -1
	for g, gone := range m.unlisted {
		if gone {
			continue
		}
		if count == i {
			gpu = g
		}
		count++
	}
	return gpu, count
}

func (m *Machine) valid(gpu int) bool { return gpu >= 0 && gpu < len(m.devs) }

func (m *Machine) isLost(gpu int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost[gpu]
}

func (m *Machine) gpuUUID(i int) string {
	return "GPU-" + uuid.NewSHA1(namespace, fmt.Appendf(nil, "%s/gpu/%d", m.seed(), i)).String()
}

// seed is what a GPU or MIG UUID derives from besides its numbers: the
// machine type, and the host when known, so that every node's UUIDs
// differ. A fabric's UUID (clusterUUID) is the machine type's alone: the
// nodes of one NVLink clique share it.
func (m *Machine) seed() string {
	if m.host == "" {
		return m.spec.name
	}
	return m.host + "/" + m.spec.name
}

// Hostname is the host the UUIDs were made for ("" when none).
func (m *Machine) Hostname() string { return m.host }

func (m *Machine) clusterUUID() [16]uint8 {
	return uuid.NewSHA1(namespace, fmt.Appendf(nil, "%s/fabric", m.spec.name))
}

// indexOf identifies a GPU handle by its UUID, never by pointer identity.
func (m *Machine) indexOf(d gonvml.Device) (int, bool) {
	var id string
	switch dev := d.(type) {
	case *server.Device:
		id = dev.UUID
	case nil:
		return 0, false
	default:
		var ret gonvml.Return
		if id, ret = d.GetUUID(); ret != gonvml.SUCCESS {
			return 0, false
		}
	}
	i, ok := m.index[id]
	return i, ok
}

// installIdentity gives GPU i a real product name, its bus ID in PciInfo and
// NOT_SUPPORTED MIG calls when its product has no MIG.
func (m *Machine) installIdentity(i int, d *server.Device) {
	bus := m.spec.slots[i].bus
	d.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) {
		return PciInfo(bus, m.spec.gpuAt(i).PciDeviceId), gonvml.SUCCESS
	}
	if !m.spec.migCapableAt(i) {
		d.GetMigModeFunc = func() (int, int, gonvml.Return) {
			return 0, 0, gonvml.ERROR_NOT_SUPPORTED
		}
	}
}

// installServer makes handle lookups answer ERROR_GPU_IS_LOST for lost GPUs,
// find MIG devices by UUID, and create event sets.
func (m *Machine) installServer() {
	count := m.srv.DeviceGetCountFunc
	m.srv.DeviceGetCountFunc = func() (int, gonvml.Return) {
		n, ret := count()
		if ret != gonvml.SUCCESS {
			return n, ret
		}
		_, listed := m.listed(0)
		return listed, ret
	}
	byIndex := m.srv.DeviceGetHandleByIndexFunc
	m.srv.DeviceGetHandleByIndexFunc = func(i int) (gonvml.Device, gonvml.Return) {
		if g, _ := m.listed(i); g >= 0 {
			i = g
		} else if i >= 0 {
			return nil, gonvml.ERROR_INVALID_ARGUMENT
		}
		if m.valid(i) && m.isLost(i) {
			return nil, gonvml.ERROR_GPU_IS_LOST
		}
		if ret := m.faultOf(i, CallDeviceGetHandleByIndex); ret != gonvml.SUCCESS {
			return nil, ret
		}
		return byIndex(i)
	}
	byUUID := m.srv.DeviceGetHandleByUUIDFunc
	m.srv.DeviceGetHandleByUUIDFunc = func(id string) (gonvml.Device, gonvml.Return) {
		if i, ok := m.index[id]; ok && m.isLost(i) {
			return nil, gonvml.ERROR_GPU_IS_LOST
		}
		if i, ok := m.index[id]; ok {
			if ret := m.faultOf(i, CallDeviceGetHandleByUUID); ret != gonvml.SUCCESS {
				return nil, ret
			}
		}
		if mig, parent, ok := m.migByUUID(id); ok {
			if m.isLost(parent) {
				return nil, gonvml.ERROR_GPU_IS_LOST
			}
			return mig, gonvml.SUCCESS
		}
		return byUUID(id)
	}
	byBus := m.srv.DeviceGetHandleByPciBusIdFunc
	m.srv.DeviceGetHandleByPciBusIdFunc = func(bus string) (gonvml.Device, gonvml.Return) {
		d, ret := byBus(bus)
		if ret == gonvml.SUCCESS {
			if i, ok := m.indexOf(d); ok && m.isLost(i) {
				return nil, gonvml.ERROR_GPU_IS_LOST
			}
		}
		return d, ret
	}
	m.srv.EventSetCreateFunc = m.newEventSet
}

// installLost makes GPU i's queries answer ERROR_GPU_IS_LOST while it is lost.
// It wraps whatever the other installers set, so it runs last.
func (m *Machine) installLost(i int, d *server.Device) {
	lost := func() bool { return m.isLost(i) }
	getUUID, getName, getMinor, getIndex := d.GetUUIDFunc, d.GetNameFunc, d.GetMinorNumberFunc, d.GetIndexFunc
	getMem, getPci, getMig := d.GetMemoryInfoFunc, d.GetPciInfoFunc, d.GetMigModeFunc
	d.GetUUIDFunc = func() (string, gonvml.Return) {
		if lost() {
			return "", gonvml.ERROR_GPU_IS_LOST
		}
		return getUUID()
	}
	d.GetNameFunc = func() (string, gonvml.Return) {
		if lost() {
			return "", gonvml.ERROR_GPU_IS_LOST
		}
		return getName()
	}
	d.GetMinorNumberFunc = func() (int, gonvml.Return) {
		if lost() {
			return 0, gonvml.ERROR_GPU_IS_LOST
		}
		return getMinor()
	}
	d.GetIndexFunc = func() (int, gonvml.Return) {
		if lost() {
			return 0, gonvml.ERROR_GPU_IS_LOST
		}
		return getIndex()
	}
	d.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
		if lost() {
			return gonvml.Memory{}, gonvml.ERROR_GPU_IS_LOST
		}
		if ret := m.faultOf(i, CallGetMemoryInfo); ret != gonvml.SUCCESS {
			return gonvml.Memory{}, ret
		}
		return getMem()
	}
	d.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) {
		if lost() {
			return gonvml.PciInfo{}, gonvml.ERROR_GPU_IS_LOST
		}
		return getPci()
	}
	d.GetMigModeFunc = func() (int, int, gonvml.Return) {
		if lost() {
			return 0, 0, gonvml.ERROR_GPU_IS_LOST
		}
		return getMig()
	}
}
