package fake

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	nvlibdevice "github.com/NVIDIA/go-nvlib/pkg/nvlib/device"
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/uuid"
)

// migKey names one MIG device: GPU, GPU instance, compute instance.
type migKey struct{ gpu, gi, ci int }

// profileIDs are the NVML profile IDs behind a MIG profile name.
type profileIDs struct{ gi, ci int }

// migProfiles maps NVIDIA's profile names ("1g.5gb", "1c.2g.10gb",
// "1g.5gb+me") to profile IDs for the machine's GPU, as go-nvlib names them.
func (s *spec) migProfiles() map[string]profileIDs {
	lib := nvlibdevice.New(nil)
	out := map[string]profileIDs{}
	cfg := s.gpu.MIGProfiles
	giIDs := sortedKeys(cfg.GpuInstanceProfiles)
	for _, gi := range giIDs {
		giInfo := cfg.GpuInstanceProfiles[gi]
		for _, ci := range sortedKeys(cfg.ComputeInstanceProfiles[gi]) {
			p, err := lib.NewMigProfile(gi, ci, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
				giInfo.MemorySizeMB, s.gpu.MemoryMB*1024*1024)
			if err != nil {
				continue
			}
			if _, dup := out[p.String()]; !dup {
				out[p.String()] = profileIDs{gi: gi, ci: ci}
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// applyMIG enables MIG on the listed GPUs and creates their instances.
func (m *Machine) applyMIG(layout map[int][]string) error {
	if len(layout) == 0 {
		return nil
	}
	if !m.spec.migCapable() {
		return fmt.Errorf("WithMIG: %s is not MIG capable", m.spec.gpu.Name)
	}
	names := m.spec.migProfiles()
	for _, gpu := range sortedKeys(layout) {
		if !m.valid(gpu) {
			return fmt.Errorf("WithMIG: no GPU %d (machine has %d)", gpu, len(m.devs))
		}
		if _, other := m.spec.others[gpu]; other {
			return fmt.Errorf("WithMIG: GPU %d (%s) is not MIG capable", gpu, m.spec.gpuAt(gpu).Name)
		}
		ids := make([]profileIDs, len(layout[gpu]))
		for k, name := range layout[gpu] {
			p, ok := names[name]
			if !ok {
				return fmt.Errorf("WithMIG: GPU %d: unknown MIG profile %q for %s", gpu, name, m.spec.gpu.Name)
			}
			ids[k] = p
		}
		placements, ok := m.place(ids, 0, 0)
		if !ok {
			return fmt.Errorf("WithMIG: GPU %d: profiles %v do not fit together", gpu, layout[gpu])
		}
		if err := m.createInstances(gpu, ids, placements); err != nil {
			return fmt.Errorf("WithMIG: GPU %d: %w", gpu, err)
		}
	}
	return nil
}

// place finds a placement for each profile (in order) such that no two
// instances share a memory slice: a depth-first search over the possible
// placements, so any layout NVIDIA allows is found.
func (m *Machine) place(ids []profileIDs, k int, used uint64) ([]gonvml.GpuInstancePlacement, bool) {
	if k == len(ids) {
		return []gonvml.GpuInstancePlacement{}, true
	}
	for _, p := range m.spec.gpu.MIGProfiles.GpuInstancePlacements[ids[k].gi] {
		if p.Size == 0 || p.Start+p.Size > 64 {
			continue
		}
		mask := (uint64(1)<<p.Size - 1) << p.Start
		if used&mask != 0 {
			continue
		}
		if rest, ok := m.place(ids, k+1, used|mask); ok {
			return append([]gonvml.GpuInstancePlacement{p}, rest...), true
		}
	}
	return nil, false
}

// createInstances enables MIG mode and creates one GPU instance with one
// compute instance per profile through the mock's own NVML calls.
func (m *Machine) createInstances(gpu int, ids []profileIDs, placements []gonvml.GpuInstancePlacement) error {
	d := m.devs[gpu]
	if ret, _ := d.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		return fmt.Errorf("SetMigMode: %w", ret)
	}
	cfg := m.spec.gpu.MIGProfiles
	for k, p := range ids {
		giInfo := cfg.GpuInstanceProfiles[p.gi]
		gi, ret := d.CreateGpuInstanceWithPlacement(&giInfo, &placements[k])
		if ret != gonvml.SUCCESS {
			return fmt.Errorf("CreateGpuInstanceWithPlacement: %w", ret)
		}
		ciInfo := cfg.ComputeInstanceProfiles[p.gi][p.ci]
		if _, ret := gi.CreateComputeInstance(&ciInfo); ret != gonvml.SUCCESS {
			return fmt.Errorf("CreateComputeInstance: %w", ret)
		}
	}
	return nil
}

// installMIG fills the MIG calls the mock leaves out: instance lookup by id
// and MIG device handles.
func (m *Machine) installMIG(i int, d *server.Device) {
	if !m.spec.migCapableAt(i) {
		d.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
		d.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) {
			return nil, gonvml.ERROR_NOT_SUPPORTED
		}
		return
	}
	createGI, createGIAt := d.CreateGpuInstanceFunc, d.CreateGpuInstanceWithPlacementFunc
	d.CreateGpuInstanceFunc = func(info *gonvml.GpuInstanceProfileInfo) (gonvml.GpuInstance, gonvml.Return) {
		gi, ret := createGI(info)
		return withCIByID(gi), ret
	}
	d.CreateGpuInstanceWithPlacementFunc = func(info *gonvml.GpuInstanceProfileInfo, p *gonvml.GpuInstancePlacement) (gonvml.GpuInstance, gonvml.Return) {
		gi, ret := createGIAt(info, p)
		return withCIByID(gi), ret
	}
	d.GetGpuInstanceByIdFunc = func(id int) (gonvml.GpuInstance, gonvml.Return) {
		d.RLock()
		defer d.RUnlock()
		for gi := range d.GpuInstances {
			if int(gi.Info.Id) == id {
				return gi, gonvml.SUCCESS
			}
		}
		return nil, gonvml.ERROR_NOT_FOUND
	}
	d.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) {
		return int(m.spec.gpu.MIGProfiles.GpuInstanceProfiles[gonvml.GPU_INSTANCE_PROFILE_1_SLICE].InstanceCount), gonvml.SUCCESS
	}
	d.GetMigDeviceHandleByIndexFunc = func(k int) (gonvml.Device, gonvml.Return) {
		if m.isLost(i) {
			return nil, gonvml.ERROR_GPU_IS_LOST
		}
		if mode, _, _ := d.GetMigMode(); mode != gonvml.DEVICE_MIG_ENABLE {
			return nil, gonvml.ERROR_INVALID_ARGUMENT
		}
		migs := m.migDevices(i)
		if k < 0 || k >= len(migs) {
			return nil, gonvml.ERROR_NOT_FOUND
		}
		return migs[k].handle, gonvml.SUCCESS
	}
}

// withCIByID adds the compute-instance lookup the mock GPU instance lacks.
func withCIByID(gi gonvml.GpuInstance) gonvml.GpuInstance {
	g, ok := gi.(*server.GpuInstance)
	if !ok {
		return gi
	}
	g.GetComputeInstanceByIdFunc = func(id int) (gonvml.ComputeInstance, gonvml.Return) {
		g.RLock()
		defer g.RUnlock()
		for ci := range g.ComputeInstances {
			if int(ci.Info.Id) == id {
				return ci, gonvml.SUCCESS
			}
		}
		return nil, gonvml.ERROR_NOT_FOUND
	}
	return g
}

// migEntry is one MIG device of a GPU.
type migEntry struct {
	key    migKey
	handle *mock.Device
}

// migDevices lists GPU i's MIG devices ordered by (GI id, CI id), from the
// instances that exist now.
func (m *Machine) migDevices(i int) []migEntry {
	d := m.devs[i]
	type inst struct {
		gi *server.GpuInstance
		ci *server.ComputeInstance
	}
	var insts []inst
	d.RLock()
	for gi := range d.GpuInstances {
		gi.RLock()
		for ci := range gi.ComputeInstances {
			insts = append(insts, inst{gi, ci})
		}
		gi.RUnlock()
	}
	d.RUnlock()
	slices.SortFunc(insts, func(a, b inst) int {
		if a.gi.Info.Id != b.gi.Info.Id {
			return int(a.gi.Info.Id) - int(b.gi.Info.Id)
		}
		return int(a.ci.Info.Id) - int(b.ci.Info.Id)
	})
	out := make([]migEntry, len(insts))
	for k, in := range insts {
		key := migKey{gpu: i, gi: int(in.gi.Info.Id), ci: int(in.ci.Info.Id)}
		out[k] = migEntry{key: key, handle: m.migHandle(key, in.gi, in.ci)}
	}
	return out
}

// migHandle returns the (cached) MIG device handle of one instance pair.
func (m *Machine) migHandle(key migKey, gi *server.GpuInstance, ci *server.ComputeInstance) *mock.Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.migs[key]; ok {
		return h
	}
	h := m.newMIGHandle(key, gi, ci)
	m.migs[key] = h
	return h
}

func (m *Machine) migUUID(key migKey) string {
	return "MIG-" + uuid.NewSHA1(namespace, fmt.Appendf(nil, "%s/mig/%d/%d/%d", m.seed(), key.gpu, key.gi, key.ci)).String()
}

// newMIGHandle builds a MIG device handle answering the calls discovery and
// health checks make.
func (m *Machine) newMIGHandle(key migKey, gi *server.GpuInstance, ci *server.ComputeInstance) *mock.Device {
	parent := m.devs[key.gpu]
	cfg := m.spec.gpu.MIGProfiles
	giProfile := cfg.GpuInstanceProfiles[int(gi.Info.ProfileId)]
	ciProfile := cfg.ComputeInstanceProfiles[int(gi.Info.ProfileId)][int(ci.Info.ProfileId)]
	id := m.migUUID(key)
	lost := func() bool { return m.isLost(key.gpu) }
	h := &mock.Device{}
	h.IsMigDeviceHandleFunc = func() (bool, gonvml.Return) { return true, gonvml.SUCCESS }
	h.GetUUIDFunc = func() (string, gonvml.Return) {
		if lost() {
			return "", gonvml.ERROR_GPU_IS_LOST
		}
		return id, gonvml.SUCCESS
	}
	h.GetNameFunc = func() (string, gonvml.Return) { return parent.Config.Name, gonvml.SUCCESS }
	h.GetGpuInstanceIdFunc = func() (int, gonvml.Return) { return key.gi, gonvml.SUCCESS }
	h.GetComputeInstanceIdFunc = func() (int, gonvml.Return) { return key.ci, gonvml.SUCCESS }
	h.GetDeviceHandleFromMigDeviceHandleFunc = func() (gonvml.Device, gonvml.Return) { return parent, gonvml.SUCCESS }
	h.GetAttributesFunc = func() (gonvml.DeviceAttributes, gonvml.Return) {
		return gonvml.DeviceAttributes{
			// The compute instance's own SMs; the engines are its GPU
			// instance's, which all of its compute instances share (the
			// mock's CI tables leave them out for Hopper and Blackwell).
			MultiprocessorCount:       ciProfile.MultiprocessorCount,
			SharedCopyEngineCount:     giProfile.CopyEngineCount,
			SharedDecoderCount:        giProfile.DecoderCount,
			SharedEncoderCount:        giProfile.EncoderCount,
			SharedJpegCount:           giProfile.JpegCount,
			SharedOfaCount:            giProfile.OfaCount,
			GpuInstanceSliceCount:     giProfile.SliceCount,
			ComputeInstanceSliceCount: ciProfile.SliceCount,
			MemorySizeMB:              giProfile.MemorySizeMB,
		}, gonvml.SUCCESS
	}
	h.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
		if lost() {
			return gonvml.Memory{}, gonvml.ERROR_GPU_IS_LOST
		}
		return gonvml.Memory{Total: giProfile.MemorySizeMB * 1024 * 1024}, gonvml.SUCCESS
	}
	installMIGMemory(h)
	m.gate(h)
	return h
}

// migByUUID finds a MIG device handle by UUID, with its parent's index.
func (m *Machine) migByUUID(id string) (gonvml.Device, int, bool) {
	if !m.spec.migCapable() || len(id) < 4 || id[:4] != "MIG-" {
		return nil, 0, false
	}
	for i := range m.devs {
		for _, e := range m.migDevices(i) {
			if m.migUUID(e.key) == id {
				return e.handle, i, true
			}
		}
	}
	return nil, 0, false
}

// ReconfigureMIG replaces GPU gpu's MIG devices with the given profiles, as
// NVIDIA's mig-manager does under a running plugin: every compute and GPU
// instance is destroyed, then one instance pair per profile is created (new
// instance IDs, so new MIG UUIDs); no profiles leaves MIG mode enabled with
// no MIG device.
func (m *Machine) ReconfigureMIG(gpu int, profiles []string) error {
	if !m.valid(gpu) {
		return fmt.Errorf("ReconfigureMIG: no GPU %d (machine has %d)", gpu, len(m.devs))
	}
	if !m.spec.migCapable() {
		return fmt.Errorf("ReconfigureMIG: %s is not MIG capable", m.spec.gpu.Name)
	}
	d := m.devs[gpu]
	for _, gi := range lockedKeys(d.RLocker(), d.GpuInstances) {
		for _, ci := range lockedKeys(gi.RLocker(), gi.ComputeInstances) {
			if ret := ci.Destroy(); ret != gonvml.SUCCESS {
				return fmt.Errorf("ReconfigureMIG: GPU %d: ComputeInstance.Destroy: %w", gpu, ret)
			}
		}
		if ret := gi.Destroy(); ret != gonvml.SUCCESS {
			return fmt.Errorf("ReconfigureMIG: GPU %d: GpuInstance.Destroy: %w", gpu, ret)
		}
	}
	if len(profiles) == 0 {
		if ret, _ := d.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
			return fmt.Errorf("ReconfigureMIG: GPU %d: SetMigMode: %w", gpu, ret)
		}
		return nil
	}
	return m.applyMIG(map[int][]string{gpu: profiles})
}

// lockedKeys returns m's keys, read under l (a mock server object's read
// lock: its instance sets change under it).
func lockedKeys[K comparable, V any](l sync.Locker, m map[K]V) []K {
	l.Lock()
	defer l.Unlock()
	return slices.Collect(maps.Keys(m))
}
