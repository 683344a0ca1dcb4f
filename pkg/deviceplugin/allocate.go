package deviceplugin

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// EnvVisibleDevices is the NVIDIA container runtime's device list variable.
const EnvVisibleDevices = "NVIDIA_VISIBLE_DEVICES"

// Allocate validates each container's device IDs and answers with the
// device list per the device list and ID strategies (NVIDIA's): by default
// NVIDIA_VISIBLE_DEVICES with GPU UUIDs, parent UUIDs for replicas, MIG
// UUIDs for MIG devices. Unknown IDs and requests over failRequestsGreaterThanOne are
// InvalidArgument; a device on an unhealthy GPU is FailedPrecondition, and
// so is a withheld one (a running container holds its GPU under another
// resource name or device ID: the error names it), read again from the
// kubelet's PodResources API first (once a read has failed, waiting at
// most heldStalledWait for one before deciding with what is known).
func (p *Plugin) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	logger := klog.FromContext(ctx).WithValues("resource", p.resource.Name)
	resp := &pluginapi.AllocateResponse{ContainerResponses: make([]*pluginapi.ContainerAllocateResponse, 0, len(req.GetContainerRequests()))}
	allocs := p.allocs
	if p.refreshHeld != nil {
		// The kubelet's choice may predate the update that withheld a
		// device (a holder listed only after the first read).
		err := p.refreshHeld(ctx, "allocate")
		if allocs != nil {
			// The handoff marks what this call served with this read,
			// not one more (which would wait again while the API hangs).
			allocs = readAnswer{answer: p.held.lastAnswer(), err: err}
		}
	}
	withheld := p.held.of(p.resource.Name)
	// One device is one container's: an ID in two container requests of
	// one call is refused as one named twice in a container is.
	seen := map[string]bool{}
	for _, creq := range req.GetContainerRequests() {
		cresp, err := p.allocateContainer(creq.GetDevicesIds(), seen, withheld)
		if err != nil {
			logger.Error(err, "Allocate rejected", "devices", loggedIDs(creq.GetDevicesIds()), "requested", len(creq.GetDevicesIds()))
			p.handoff.refused(p.resource.Name, requestedIDs(req))
			return nil, err
		}
		resp.ContainerResponses = append(resp.ContainerResponses, cresp)
	}
	for _, creq := range req.GetContainerRequests() {
		p.held.noteAllocated(p.resource.Name, creq.GetDevicesIds())
		p.handoff.allocatedFrom(allocs, p.resource.Name, creq.GetDevicesIds())
		p.metrics.allocated(p.resource.Name)
		logger.V(2).Info("Allocated devices", "devices", creq.GetDevicesIds())
	}
	if p.afterAllocate != nil {
		p.afterAllocate(p.resource.Name, requestedIDs(req))
	}
	return resp, nil
}

// maxLoggedIDs bounds the device IDs one log line carries of a refused
// request: a malformed one may name thousands, and the log is read by people.
const maxLoggedIDs = 16

// loggedIDs is ids, or its first maxLoggedIDs when it is longer (the log line
// gives the count beside it).
func loggedIDs(ids []string) []string {
	if len(ids) > maxLoggedIDs {
		return ids[:maxLoggedIDs]
	}
	return ids
}

// allocateContainer answers one container request; seen holds the IDs of
// the call's earlier containers and gets this one's; withheld are the
// resource's withheld devices (ID -> holder).
func (p *Plugin) allocateContainer(ids []string, seen map[string]bool, withheld map[string]sharing.Holding) (*pluginapi.ContainerAllocateResponse, error) {
	if len(ids) == 0 {
		p.metrics.reject(p.resource.Name, "empty")
		return nil, status.Errorf(codes.InvalidArgument, "resource %s: container request without devices", p.resource.Name)
	}
	health := p.health.Snapshot()
	devs := make([]*sharing.Device, 0, len(ids))
	shared := false
	for _, id := range ids {
		d, ok := p.byID[id]
		if !ok {
			p.metrics.reject(p.resource.Name, "unknown-device")
			return nil, status.Errorf(codes.InvalidArgument, "resource %s: unknown device ID %q", p.resource.Name, id)
		}
		if seen[id] {
			p.metrics.reject(p.resource.Name, "duplicate-device")
			return nil, status.Errorf(codes.InvalidArgument, "resource %s: device ID %q requested twice", p.resource.Name, id)
		}
		if !health.Device(d.GPUIndex, migUUID(d)) {
			p.metrics.reject(p.resource.Name, "unhealthy")
			return nil, status.Errorf(codes.FailedPrecondition, "resource %s: device %q is unhealthy (GPU %d)", p.resource.Name, id, d.GPUIndex)
		}
		if h, ok := withheld[id]; ok {
			p.metrics.reject(p.resource.Name, "withheld")
			return nil, status.Errorf(codes.FailedPrecondition,
				"resource %s: device %q is withheld: %s (a config reload changed its name or ID); it is advertised unhealthy until that container is gone",
				p.resource.Name, id, h)
		}
		seen[id] = true
		shared = shared || d.Shared()
		devs = append(devs, d)
	}
	if shared && p.opts.FailRequestsGreaterThanOne && len(ids) > 1 {
		p.metrics.reject(p.resource.Name, "greater-than-one")
		return nil, status.Errorf(codes.InvalidArgument,
			"resource %s: %d shared replicas requested but failRequestsGreaterThanOne allows 1 (always under MPS)", p.resource.Name, len(ids))
	}
	resp := &pluginapi.ContainerAllocateResponse{}
	if err := p.deviceList(resp, devs); err != nil {
		p.metrics.reject(p.resource.Name, "device-list")
		return nil, status.Errorf(codes.Internal, "resource %s: %v", p.resource.Name, err)
	}
	if err := p.mpsResponse(resp, devs); err != nil {
		p.metrics.reject(p.resource.Name, "mps")
		return nil, status.Errorf(codes.InvalidArgument, "resource %s: %v", p.resource.Name, err)
	}
	if p.opts.PassDeviceSpecs && !p.cdiOnly() {
		specs, err := p.deviceSpecs(devs)
		if err != nil {
			p.metrics.reject(p.resource.Name, "device-specs")
			return nil, status.Errorf(codes.FailedPrecondition, "resource %s: %v", p.resource.Name, err)
		}
		resp.Devices = specs
	}
	return resp, nil
}

// cdiOnly reports whether every device list strategy is a CDI one: then,
// as in NVIDIA's plugin, the CDI spec alone carries the device nodes and
// passDeviceSpecs has no effect.
func (p *Plugin) cdiOnly() bool {
	if len(p.opts.DeviceListStrategies) == 0 {
		return false // the default, envvar
	}
	for _, s := range p.opts.DeviceListStrategies {
		if s != configv1.DeviceListStrategyCDIAnnotations && s != configv1.DeviceListStrategyCDICRI {
			return false
		}
	}
	return true
}

// deviceSpecs lists the control devices present under the driver root
// (as NVIDIA's plugin: each one only when it exists), each GPU's /dev/nvidia<minor> and,
// for MIG devices, the /dev/nvidia-caps/nvidia-cap<N> nodes of their GPU and
// compute instance (minors from the driver's mig-minors file, read at each
// Allocate: instances come and go with the MIG layout).
func (p *Plugin) deviceSpecs(devs []*sharing.Device) ([]*pluginapi.DeviceSpec, error) {
	root := p.opts.DriverRoot
	if root == "" {
		root = "/"
	}
	hostRoot := p.opts.DevRoot
	if hostRoot == "" {
		hostRoot = root
	}
	paths := presentControlNodes(root)
	seen := map[string]bool{}
	add := func(path string) {
		if !seen[path] {
			seen[path] = true
			paths = append(paths, path)
		}
	}
	var minors nvml.MIGMinors
	for _, d := range devs {
		add(fmt.Sprintf("/dev/nvidia%d", d.GPUMinor))
		if !d.MIG {
			continue
		}
		if minors == nil {
			var err error
			if minors, err = nvml.ReadMIGMinors(root); err != nil {
				return nil, fmt.Errorf("device specs of MIG device %s: %w", d.UUID, err)
			}
		}
		caps, err := minors.CapPaths(d.GPUMinor, d.GIID, d.CIID)
		if err != nil {
			return nil, fmt.Errorf("device specs of MIG device %s: %w", d.UUID, err)
		}
		for _, c := range caps {
			add(c)
		}
	}
	specs := make([]*pluginapi.DeviceSpec, 0, len(paths)+len(p.opts.IMEXChannels))
	for _, path := range paths {
		specs = append(specs, &pluginapi.DeviceSpec{ContainerPath: path, HostPath: filepath.Join(hostRoot, path), Permissions: "rw"})
	}
	return append(specs, imexDeviceSpecs(p.opts.IMEXChannels)...), nil
}

// requestedIDs are the device IDs of each container request of req.
func requestedIDs(req *pluginapi.AllocateRequest) [][]string {
	out := make([][]string, 0, len(req.GetContainerRequests()))
	for _, c := range req.GetContainerRequests() {
		out = append(out, c.GetDevicesIds())
	}
	return out
}
