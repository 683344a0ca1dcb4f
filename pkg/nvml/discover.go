package nvml

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Symbols that older drivers lack. go-nvml binds symbols lazily, so calling a
// missing one would crash: look them up first.
const (
	symMemoryAffinity = "nvmlDeviceGetMemoryAffinity"
	symFabricInfo     = "nvmlDeviceGetGpuFabricInfo"
	symNvLinkRemType  = "nvmlDeviceGetNvLinkRemoteDeviceType"
)

// Discover reads GPUs, MIG devices and pairwise links. An NVML error about
// one GPU degrades that GPU only (GPU.Degraded): it stays listed, with what
// could be read, and the rest of the node is discovered. Errors about the
// library or the node as a whole (GPU count, versions, two GPUs or MIG
// devices with one UUID) fail discovery. NVLink ends that count different
// lanes to each other are logged (WithLogger) and the pair keeps the lanes
// both ends report.
//
// A session the driver no longer serves (reloaded under the plugin) is
// replaced by a new one and discovery runs again on it (withSession).
func (l *lib) Discover() (*Inventory, error) {
	var inv *Inventory
	err := l.withSession(l.logger, func() (err error) {
		inv, _, err = l.discover(l.logger)
		return err
	})
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// discover is Discover, with the GPUs' handles (nil for a GPU without
// one); its warnings go to logger.
func (l *lib) discover(logger klog.Logger) (*Inventory, []gonvml.Device, error) {
	inv := &Inventory{}
	var err error
	if inv.DriverVersion, inv.CUDADriverVersion, err = l.versions(); err != nil {
		return nil, nil, err
	}
	count, ret := l.iface.DeviceGetCount()
	if ret != gonvml.SUCCESS {
		return nil, nil, fmt.Errorf("nvml DeviceGetCount: %w", ret)
	}
	if count < 0 || count > maxGPUs {
		return nil, nil, fmt.Errorf("nvml DeviceGetCount: implausible GPU count %d (want 0..%d)", count, maxGPUs)
	}
	devs := make([]gonvml.Device, count)
	for i := range count {
		dev, gpu, err := l.readGPUAt(logger, i)
		if err != nil {
			if isGlobal(err) {
				return nil, nil, err
			}
			gpu = degrade(gpu, err)
			dev = nil
		}
		devs[i] = dev
		inv.GPUs = append(inv.GPUs, gpu)
	}
	if err := checkUnique(inv.GPUs); err != nil {
		return nil, nil, err
	}
	for i := range inv.GPUs {
		if !inv.GPUs[i].MIGEnabled || devs[i] == nil {
			continue
		}
		migs, err := l.readMIG(&inv.GPUs[i], devs[i])
		if err != nil {
			if isGlobal(err) {
				return nil, nil, err
			}
			inv.GPUs[i] = degrade(inv.GPUs[i], err)
			continue
		}
		inv.MIG = append(inv.MIG, migs...)
	}
	if err := checkUniqueMIG(inv.GPUs, inv.MIG); err != nil {
		return nil, nil, err
	}
	if inv.Links, err = l.readLinks(logger, inv.GPUs, devs); err != nil {
		return nil, nil, err
	}
	return inv, devs, nil
}

// readGPUAt takes GPU i's handle and reads it. On error, the GPU holds what
// was read before the failing call.
func (l *lib) readGPUAt(logger klog.Logger, i int) (gonvml.Device, GPU, error) {
	dev, ret := l.iface.DeviceGetHandleByIndex(i)
	if ret != gonvml.SUCCESS {
		return nil, GPU{Index: i, NUMANode: -1}, callError(gpuName(i, ""), "DeviceGetHandleByIndex", ret)
	}
	if dev == nil {
		return nil, GPU{Index: i, NUMANode: -1}, fmt.Errorf("GPU %d: DeviceGetHandleByIndex returned no handle", i)
	}
	gpu, err := l.readGPU(logger, i, dev)
	return dev, gpu, err
}

// RecheckGPUs discovers the node again and checks in it the GPUs of an
// earlier discovery at indexes (in earlier), each found by its identity
// (locate), not by its index. The index alone named another GPU once a
// GPU before it was no longer listed (a false pass), and one past the new
// end never passed (no rediscovery of a GPU readable again). nil means
// that discovery reads the GPU in full (its identity, its MIG devices,
// its links: a fault in any of them degrades it) and it needs no reset
// nor service (checkMemory): a nil answer makes the node be discovered
// again and the GPU served, so it must not be nil while that discovery
// would degrade the GPU again. A GPU not found fails with ErrGPULost
// (wrapped); a discovery that fails is the error of every GPU.
// Discovery's warnings are not logged again here.
func (l *lib) RecheckGPUs(earlier []GPURef, indexes []int) []error {
	errs := make([]error, len(indexes))
	if len(indexes) == 0 {
		return errs
	}
	fail := func(err error) []error {
		for k := range errs {
			errs[k] = err
		}
		return errs
	}
	// The GPUs are checked on the session their discovery ran on: a
	// session the driver no longer serves is replaced first (withSession).
	err := l.withSession(l.logger, func() error {
		inv, devs, err := l.discover(logr.Discard())
		if err != nil {
			return err
		}
		l.recheckIn(earlier, indexes, inv, devs, errs)
		// A GPU whose answer is the session's (a driver reloaded between
		// the count and its read) is read again on a new one.
		for _, e := range errs {
			if IsSessionError(e) {
				return e
			}
		}
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("discovering the node again: %w", err))
	}
	return errs
}

// recheckIn is RecheckGPUs's check of the GPUs in inv (devs: their
// handles), into errs.
func (l *lib) recheckIn(earlier []GPURef, indexes []int, inv *Inventory, devs []gonvml.Device, errs []error) {
	at := locate(earlier, inv.GPUs)
	for k, index := range indexes {
		j, ok := at[index]
		if !ok {
			errs[k] = fmt.Errorf("GPU %d%s: %w: not found among the %d GPUs NVML lists now (by its identity, or its place between the GPUs found)", index, refName(earlier, index), ErrGPULost, len(inv.GPUs))
			continue
		}
		if inv.GPUs[j].Degraded != nil {
			errs[k] = inv.GPUs[j].Degraded
			continue
		}
		errs[k] = checkMemory(gpuName(j, inv.GPUs[j].UUID), devs[j])
	}
}

// refName names the earlier GPU index by the identity read of it (" (bus
// ID, UUID)"), "" when none was read.
func refName(earlier []GPURef, index int) string {
	for _, r := range earlier {
		if r.Index != index {
			continue
		}
		var ids []string
		if r.PCIBusID != "" {
			ids = append(ids, "PCI bus ID "+r.PCIBusID)
		}
		if realUUID(r.UUID) {
			ids = append(ids, r.UUID)
		}
		if len(ids) == 0 {
			return " (identity not read)"
		}
		return " (" + strings.Join(ids, ", ") + ")"
	}
	return ""
}

// realUUID reports whether uuid is a GPU's UUID as read, not "" or a
// PlaceholderUUID.
func realUUID(uuid string) bool { return uuid != "" && !IsPlaceholderUUID(uuid) }

// identifiedBy reports whether a GPU has an identity read (a PCI bus ID or
// its UUID).
func identifiedBy(uuid, bus string) bool { return bus != "" || realUUID(uuid) }

// sameGPU reports whether the earlier GPU r is the GPU g now: same PCI
// bus ID (and no other UUID where both were read), else, where a bus ID
// is missing, same UUID.
func sameGPU(r GPURef, g GPU) bool {
	if r.PCIBusID != "" && g.PCIBusID != "" {
		return r.PCIBusID == g.PCIBusID && (!realUUID(r.UUID) || !realUUID(g.UUID) || r.UUID == g.UUID)
	}
	return realUUID(r.UUID) && r.UUID == g.UUID
}

// locate maps each GPU of an earlier discovery (by its index there) to its
// index in now, the GPUs NVML lists now; a GPU not found is absent. First
// by identity (sameGPU). Then the ones left, whose identity could not be
// read then or now, by their place: NVML numbers GPUs in PCI bus order,
// so between two GPUs found (or an end) lie the same GPUs as before; when
// as many GPUs are left there as before, they are paired in order, a GPU
// whose identity was read then and one whose identity is read now never
// with each other (they were found by identity otherwise). With a
// different count there, which is which is not known: none is found.
func locate(earlier []GPURef, now []GPU) map[int]int {
	old := slices.SortedFunc(slices.Values(earlier), func(a, b GPURef) int { return a.Index - b.Index })
	at := make(map[int]int, len(old)) // earlier index -> index in now
	taken := make([]bool, len(now))   // now's GPUs found already
	found := make([]int, len(old))    // position in old -> index in now, -1: none
	for p, r := range old {
		found[p] = -1
		for j, g := range now {
			if !taken[j] && sameGPU(r, g) {
				found[p], taken[j] = j, true
				at[r.Index] = j
				break
			}
		}
	}
	for p := 0; p < len(old); {
		if found[p] >= 0 {
			p++
			continue
		}
		// old[p:q] were not found; lo and hi bound their place in now.
		q := p
		for q < len(old) && found[q] < 0 {
			q++
		}
		lo, hi := -1, len(now)
		if p > 0 {
			lo = found[p-1]
		}
		if q < len(old) {
			hi = found[q]
		}
		var left []int
		for j := lo + 1; j < hi; j++ {
			if !taken[j] {
				left = append(left, j)
			}
		}
		if len(left) == q-p {
			for k, j := range left {
				r, g := old[p+k], now[j]
				if identifiedBy(r.UUID, r.PCIBusID) && identifiedBy(g.UUID, g.PCIBusID) {
					continue // two GPUs known by different identities
				}
				taken[j] = true
				at[r.Index] = j
			}
		}
		p = q
	}
	return at
}

// PlaceholderUUIDPrefix starts the UUID given to a GPU whose real UUID
// discovery could not read.
const PlaceholderUUIDPrefix = "GPU-unreadable-"

// PlaceholderUUID is the stand-in UUID of GPU index when its own could not
// be read: unique on the node, never an NVIDIA UUID.
func PlaceholderUUID(index int) string { return fmt.Sprintf("%s%d", PlaceholderUUIDPrefix, index) }

// IsPlaceholderUUID reports whether uuid is a PlaceholderUUID.
func IsPlaceholderUUID(uuid string) bool { return strings.HasPrefix(uuid, PlaceholderUUIDPrefix) }

// degrade marks g as not fully discovered because of err.
func degrade(g GPU, err error) GPU {
	g.Degraded = err
	if g.UUID == "" {
		g.UUID = PlaceholderUUID(g.Index)
	}
	return g
}

// isGlobal reports errors that concern the library, not one GPU: they fail
// discovery instead of degrading GPU after GPU.
func isGlobal(err error) bool {
	for _, ret := range []gonvml.Return{gonvml.ERROR_UNINITIALIZED, gonvml.ERROR_LIBRARY_NOT_FOUND,
		gonvml.ERROR_DRIVER_NOT_LOADED, gonvml.ERROR_FUNCTION_NOT_FOUND, gonvml.ERROR_LIB_RM_VERSION_MISMATCH} {
		if errors.Is(err, ret) {
			return true
		}
	}
	return errors.Is(err, errNotInitialized)
}

// versions reads the driver version and the CUDA driver version ("12.4").
func (l *lib) versions() (string, string, error) {
	driver, ret := l.iface.SystemGetDriverVersion()
	if ret != gonvml.SUCCESS {
		return "", "", fmt.Errorf("nvml SystemGetDriverVersion: %w", ret)
	}
	cuda, ret := l.iface.SystemGetCudaDriverVersion()
	if ret != gonvml.SUCCESS {
		return "", "", fmt.Errorf("nvml SystemGetCudaDriverVersion: %w", ret)
	}
	if cuda < 0 {
		return "", "", fmt.Errorf("nvml SystemGetCudaDriverVersion: implausible version %d", cuda)
	}
	return driver, fmt.Sprintf("%d.%d", cuda/1000, (cuda%1000)/10), nil
}

// readGPU reads one GPU's identity and capabilities.
func (l *lib) readGPU(logger klog.Logger, i int, dev gonvml.Device) (GPU, error) {
	g := GPU{Index: i, NUMANode: -1}
	var ret gonvml.Return
	if g.UUID, ret = dev.GetUUID(); ret != gonvml.SUCCESS {
		return g, callError(gpuName(i, ""), "GetUUID", ret)
	}
	if g.UUID == "" {
		return g, fmt.Errorf("GPU %d: GetUUID returned an empty UUID", i)
	}
	if err := deviceid.ValidateUUID(g.UUID); err != nil {
		// It would name the GPU's devices to the kubelet and in the
		// node's annotations: the GPU is listed under a placeholder.
		g.UUID = ""
		return g, fmt.Errorf("GPU %d: GetUUID: %w", i, err)
	}
	name := gpuName(i, g.UUID)
	if g.Minor, ret = dev.GetMinorNumber(); ret != gonvml.SUCCESS {
		return g, callError(name, "GetMinorNumber", ret)
	}
	if g.Name, ret = dev.GetName(); ret != gonvml.SUCCESS {
		return g, callError(name, "GetName", ret)
	}
	mem, ret := dev.GetMemoryInfo()
	if ret != gonvml.SUCCESS {
		return g, callError(name, "GetMemoryInfo", ret)
	}
	g.MemoryMiB = mem.Total / (1024 * 1024)
	pci, ret := dev.GetPciInfo()
	if ret != gonvml.SUCCESS {
		return g, callError(name, "GetPciInfo", ret)
	}
	var err error
	if g.PCIBusID, err = NormalizeBusID(busIDString(pci)); err != nil {
		return g, fmt.Errorf("GPU %s: GetPciInfo: %w", name, err)
	}
	if g.NUMANode, err = l.numaNode(logger, name, dev); err != nil {
		return g, err
	}
	arch, ret := dev.GetArchitecture()
	if ret != gonvml.SUCCESS && ret != gonvml.ERROR_NOT_SUPPORTED {
		return g, callError(name, "GetArchitecture", ret)
	}
	g.Architecture = archName(arch)
	major, minor, ret := dev.GetCudaComputeCapability()
	if ret != gonvml.SUCCESS {
		return g, callError(name, "GetCudaComputeCapability", ret)
	}
	g.CUDACompute = fmt.Sprintf("%d.%d", major, minor)
	current, _, ret := dev.GetMigMode()
	switch ret {
	case gonvml.SUCCESS:
		g.MIGCapable = true
		g.MIGEnabled = current == gonvml.DEVICE_MIG_ENABLE
	case gonvml.ERROR_NOT_SUPPORTED:
	default:
		return g, callError(name, "GetMigMode", ret)
	}
	if g.ClusterUUID, g.CliqueID, err = l.fabric(name, dev); err != nil {
		return g, err
	}
	return g, nil
}

// numaNode returns the NUMA node closest to the GPU, the one whose CPUs the
// kubelet's Topology Manager aligns with it (nvidia-smi topo -m's "NUMA
// Affinity"): the sole node of its memory affinity (node scope); -1 when
// the driver cannot tell, or names several nodes or none.
// nvmlDeviceGetNumaNodeId is not it: it names the GPU's own memory node,
// and only where GPUs are NUMA nodes (Grace: a node without CPUs), and
// answers NOT_SUPPORTED on x86.
//
// The NUMA node is advice to the kubelet's Topology Manager, not part of
// the GPU's identity: any other failure of the call leaves it unknown
// (-1) with a warning, rather than keeping the GPU out of service, except
// answers that say the GPU itself is gone or needs a reset (ErrGPULost,
// ErrResetRequired), which discovery reports as it reports them for every
// call.
func (l *lib) numaNode(logger klog.Logger, name string, dev gonvml.Device) (int, error) {
	if !l.hasSymbol(symMemoryAffinity) {
		return -1, nil
	}
	set, ret := dev.GetMemoryAffinity(topology.MaxNUMANode+1, gonvml.AFFINITY_SCOPE_NODE)
	switch ret {
	case gonvml.SUCCESS:
		return soleNode(set), nil
	case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_FUNCTION_NOT_FOUND:
		return -1, nil
	case gonvml.ERROR_GPU_IS_LOST, gonvml.ERROR_RESET_REQUIRED:
		return -1, callError(name, "GetMemoryAffinity", ret)
	default:
		logger.Info("Warning: GPU's NUMA node unknown; it is served without one", "gpu", name,
			"err", callError(name, "GetMemoryAffinity", ret))
		return -1, nil
	}
}

// soleNode is the one node set in a node bit mask (bits.UintSize nodes per
// word), -1 when none or several are, or it is beyond topology.MaxNUMANode.
func soleNode(set []uint) int {
	node := -1
	for w, word := range set {
		switch {
		case word == 0:
			continue
		case node >= 0 || bits.OnesCount(word) != 1:
			return -1
		}
		node = w*bits.UintSize + bits.TrailingZeros(word)
	}
	if node > topology.MaxNUMANode {
		return -1
	}
	return node
}

// fabric returns the multi-node NVLink cluster UUID and clique ID, empty when
// the GPU is not part of a completed fabric.
func (l *lib) fabric(name string, dev gonvml.Device) (string, uint32, error) {
	if !l.hasSymbol(symFabricInfo) {
		return "", 0, nil
	}
	info, ret := dev.GetGpuFabricInfo()
	switch ret {
	case gonvml.SUCCESS:
	case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_FUNCTION_NOT_FOUND:
		return "", 0, nil
	default:
		return "", 0, callError(name, "GetGpuFabricInfo", ret)
	}
	if info.State != gonvml.GPU_FABRIC_STATE_COMPLETED || gonvml.Return(info.Status) != gonvml.SUCCESS {
		return "", 0, nil
	}
	if info.ClusterUuid == ([16]uint8{}) {
		return "", 0, nil
	}
	return uuid.UUID(info.ClusterUuid).String(), info.CliqueId, nil
}

func (l *lib) hasSymbol(name string) bool {
	ext := l.iface.Extensions()
	if ext == nil {
		return false
	}
	return ext.LookupSymbol(name) == nil
}

// checkUnique rejects two GPUs with one UUID or one PCI bus ID: the link walk
// identifies peers by bus ID.
func checkUnique(gpus []GPU) error {
	uuids := map[string]int{}
	buses := map[string]int{}
	for _, g := range gpus {
		// Every GPU's UUID counts, a degraded one's too: it names the
		// GPU's devices whatever else could be read.
		if j, ok := uuids[g.UUID]; ok {
			return fmt.Errorf("GPUs %d and %d report the same UUID %s", j, g.Index, g.UUID)
		}
		uuids[g.UUID] = g.Index
		if g.PCIBusID == "" {
			continue // a degraded GPU whose bus ID could not be read
		}
		if j, ok := buses[g.PCIBusID]; ok {
			return fmt.Errorf("GPUs %d and %d report the same PCI bus ID %s", j, g.Index, g.PCIBusID)
		}
		buses[g.PCIBusID] = g.Index
	}
	return nil
}

// checkUniqueMIG rejects a MIG device whose UUID another MIG device or a
// GPU has: it is the device's ID at the kubelet and in the node's topology.
func checkUniqueMIG(gpus []GPU, migs []MIGDevice) error {
	owner := make(map[string]string, len(gpus)+len(migs))
	for _, g := range gpus {
		owner[g.UUID] = fmt.Sprintf("GPU %d", g.Index)
	}
	for _, d := range migs {
		name := fmt.Sprintf("GPU %d MIG device (GI %d, CI %d)", d.ParentIndex, d.GIID, d.CIID)
		if other, ok := owner[d.UUID]; ok {
			return fmt.Errorf("%s and %s report the same UUID %s", other, name, d.UUID)
		}
		owner[d.UUID] = name
	}
	return nil
}

// busIDString reads the NUL-terminated bus ID of a PciInfo.
func busIDString(p gonvml.PciInfo) string {
	var b strings.Builder
	for _, c := range p.BusId {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// NormalizeBusID turns an NVML bus ID ("00000000:07:00.0", "0000:07:00.0",
// upper or lower case) into the sysfs form "0000:07:00.0".
func NormalizeBusID(s string) (string, error) {
	var domain, bus, device, function uint64
	n, err := fmt.Sscanf(strings.ToLower(strings.TrimSpace(s)), "%x:%x:%x.%x", &domain, &bus, &device, &function)
	if err != nil || n != 4 {
		return "", fmt.Errorf("malformed PCI bus ID %q", s)
	}
	if domain > 0xffff || bus > 0xff || device > 0x1f || function > 0x7 {
		return "", fmt.Errorf("PCI bus ID %q out of range", s)
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", domain, bus, device, function), nil
}

// archName spells a DeviceArchitecture in lower case ("ampere").
func archName(a gonvml.DeviceArchitecture) string {
	switch a {
	case gonvml.DEVICE_ARCH_KEPLER:
		return "kepler"
	case gonvml.DEVICE_ARCH_MAXWELL:
		return "maxwell"
	case gonvml.DEVICE_ARCH_PASCAL:
		return "pascal"
	case gonvml.DEVICE_ARCH_VOLTA:
		return "volta"
	case gonvml.DEVICE_ARCH_TURING:
		return "turing"
	case gonvml.DEVICE_ARCH_AMPERE:
		return "ampere"
	case gonvml.DEVICE_ARCH_ADA:
		return "ada"
	case gonvml.DEVICE_ARCH_HOPPER:
		return "hopper"
	case gonvml.DEVICE_ARCH_BLACKWELL:
		return "blackwell"
	default:
		return "unknown"
	}
}
