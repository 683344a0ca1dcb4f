package deviceplugin

import (
	"context"
	"fmt"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/mps"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// MPS client variables, as NVIDIA's plugin sets them.
const (
	EnvMPSPipeDirectory = "CUDA_MPS_PIPE_DIRECTORY"
)

// MPSOptions run the MPS control daemons of a node whose config shares
// GPUs with MPS (sharing.mps); their root is the config's flags.mpsRoot.
type MPSOptions struct {
	// Binary is nvidia-cuda-mps-control: a path or a name in PATH.
	Binary string
	// CheckInterval, InitialBackoff and MaxBackoff tune the daemon checks
	// and restarts (0: pkg/mps's defaults). The Manager's Clock drives them.
	CheckInterval, InitialBackoff, MaxBackoff time.Duration
}

// mpsGPUs lists the GPUs whose devices are MPS replicas, with their replica
// count and memory; GPUs discovery could not read are left out (they are
// served unhealthy until the node is discovered again).
func mpsGPUs(inv *nvml.Inventory, resources []sharing.Resource) []mps.GPU {
	byIndex := map[int]*mps.GPU{}
	var order []int
	for _, r := range resources {
		for _, d := range r.Devices {
			if !d.MPS || byIndex[d.GPUIndex] != nil || nvml.IsPlaceholderUUID(d.GPUUUID) {
				continue
			}
			g := &mps.GPU{Index: d.GPUIndex, UUID: d.GPUUUID, Replicas: d.Replicas}
			for _, ig := range inv.GPUs {
				if ig.Index == d.GPUIndex && ig.Degraded == nil {
					g.MemoryMiB = ig.MemoryMiB
				}
			}
			byIndex[d.GPUIndex] = g
			order = append(order, d.GPUIndex)
		}
	}
	out := make([]mps.GPU, 0, len(order))
	for _, i := range order {
		out = append(out, *byIndex[i])
	}
	return out
}

// newMPSRunner builds the runner of the node's MPS daemons; its health
// reports become the GPUs' device health.
func (m *Manager) newMPSRunner(resources []sharing.Resource, root string) error {
	gpus := mpsGPUs(m.inv, resources)
	if len(gpus) == 0 {
		return nil
	}
	o := m.opts.MPS
	ro := mps.Options{
		Binary: o.Binary, Root: mps.Root(root), Clock: m.opts.Clock,
		CheckInterval: o.CheckInterval, InitialBackoff: o.InitialBackoff, MaxBackoff: o.MaxBackoff,
		OnHealth: func(ctx context.Context, g mps.GPU, err error) { m.health.SetDaemonHealth(ctx, g.Index, err) },
	}
	if cm, ok := m.opts.Lib.(nvml.ComputeModeSetter); ok {
		ro.SetExclusiveProcess = cm.SetExclusiveProcess
	}
	r, err := mps.New(gpus, ro)
	if err != nil {
		return fmt.Errorf("sharing GPUs with MPS: %w", err)
	}
	m.mps = r
	return nil
}

// runMPS starts the MPS daemons (their health is known before the kubelet
// sees a device) and supervises them until ctx ends; the returned function
// waits until they have quit.
func (m *Manager) runMPS(ctx context.Context) (wait func()) {
	if m.mps == nil {
		return func() {}
	}
	m.mps.Start(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.mps.Supervise(ctx)
	}()
	return func() { <-done }
}

// mpsResponse gives a container the MPS replica it was allocated, as
// NVIDIA's plugin does: the GPU's pipe directory (mounted from the MPS
// root, named by CUDA_MPS_PIPE_DIRECTORY) and the MPS root's shm as
// /dev/shm. The container sees its GPU through the device list as for any
// replica. Every device list strategy gets the same (NVIDIA's CDI spec has
// no MPS edits either).
func (p *Plugin) mpsResponse(resp *pluginapi.ContainerAllocateResponse, devs []*sharing.Device) error {
	gpu := ""
	for _, d := range devs {
		if !d.MPS {
			continue
		}
		if gpu != "" && gpu != d.GPUUUID {
			return fmt.Errorf("MPS replicas of two GPUs (%s, %s) in one container: one MPS client has one pipe directory", gpu, d.GPUUUID)
		}
		gpu = d.GPUUUID
	}
	if gpu == "" {
		return nil
	}
	if p.opts.MPSRoot == "" {
		return fmt.Errorf("MPS replica of %s but no MPS root", gpu)
	}
	host := mps.Root(p.opts.MPSRoot)
	pipe := mps.ContainerRoot.PipeDir(gpu)
	setEnv(resp, EnvMPSPipeDirectory, pipe)
	resp.Mounts = append(resp.Mounts,
		&pluginapi.Mount{ContainerPath: pipe, HostPath: host.PipeDir(gpu)},
		&pluginapi.Mount{ContainerPath: mps.ShmContainerPath, HostPath: host.ShmDir()},
	)
	return nil
}
