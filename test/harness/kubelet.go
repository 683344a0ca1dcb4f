package harness

// The kubelet of a fake node: the REAL kubelet device manager
// (k8s.io/kubernetes/pkg/kubelet/cm/devicemanager) run in-process on a socket
// directory of the node's own, and the kubelet's real PodResources v1 server
// backed by it. Its exported constructor is fixed to
// /var/lib/kubelet/device-plugins, so the unexported one that takes a socket
// path is reached with //go:linkname (DESIGN.md section 9).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	_ "unsafe" // for go:linkname

	cadvisorapi "github.com/google/cadvisor/lib/model"
	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/kubelet/apis/podresources"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
)

//go:linkname newManagerImpl k8s.io/kubernetes/pkg/kubelet/cm/devicemanager.newManagerImpl
func newManagerImpl(logger klog.Logger, socketPath string, topology []cadvisorapi.Node, topologyAffinityStore topologymanager.Store) (*devicemanager.ManagerImpl, error)

// File names in a node's directory.
const (
	// KubeletSocket is the device manager's Registration socket.
	KubeletSocket = "kubelet.sock"
	// PodResourcesSocket is the PodResources API socket.
	PodResourcesSocket = "pod-resources.sock"
)

// Kubelet is the device-manager half of a kubelet, with the admitted pods.
type Kubelet struct {
	dir    string
	logger klog.Logger
	ctx    context.Context

	mu     sync.Mutex
	m      *devicemanager.ManagerImpl // replaced by Restart; under mu
	podres *grpc.Server               // under mu
	pods   map[types.UID]*v1.Pod      // admitted and not yet gone

	// ready is the kubelet's "all pod sources seen": false from a restart
	// until the first batch is admitted (SourcesReady).
	ready atomic.Bool
}

// sourcesReady is the kubelet's config.SourcesReady as the device manager
// sees it. The kubelet marks its pod source seen only after
// HandlePodAdditions returns for the source's first update
// (Kubelet.syncLoopIteration: AddSource after the handler), so while a
// restarted kubelet admits its first batch, UpdateAllocatedDevices does not
// drop the checkpointed devices of running pods it has not re-admitted yet.
// (Always true, the harness let a pending pod created in the same second as
// a running one be allocated the running pod's devices.)
type sourcesReady struct{ k *Kubelet }

func (sourcesReady) AddSource(string) {}
func (s sourcesReady) AllReady() bool { return s.k.ready.Load() }

// SourcesSeen marks the restarted kubelet's first batch admitted.
func (k *Kubelet) SourcesSeen() { k.ready.Store(true) }

// StartKubelet starts the device manager on dir/kubelet.sock and the
// PodResources server on dir/pod-resources.sock.
func StartKubelet(ctx context.Context, dir string) (*Kubelet, error) {
	logger := klog.FromContext(ctx)
	m, err := newManagerImpl(logger, filepath.Join(dir, KubeletSocket), nil, topologymanager.NewFakeManager(logger))
	if err != nil {
		return nil, fmt.Errorf("creating the device manager in %s: %w", dir, err)
	}
	k := &Kubelet{dir: dir, logger: logger, ctx: ctx, m: m, pods: map[types.UID]*v1.Pod{}}
	k.ready.Store(true) // a new node has no pods: its first batch is empty
	if err := k.start(m); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Kubelet) start(m *devicemanager.ManagerImpl) error {
	if err := m.Start(k.logger, k.activePods, sourcesReady{k}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		return fmt.Errorf("starting the device manager: %w", err)
	}
	if err := k.servePodResources(k.ctx); err != nil {
		_ = m.Stop(k.logger)
		return err
	}
	return nil
}

// Restart stops the kubelet and starts a new one on the same directory, as
// a kubelet restart does: the new device manager reads the old one's
// checkpoint (the running pods keep their devices), recreates kubelet.sock
// (device plugins register again), and knows no admitted pod until they
// are admitted again (Node.RestartKubelet does it, as the kubelet does).
// down runs while no kubelet is there.
func (k *Kubelet) Restart(down func() error) error {
	k.Stop()
	k.ready.Store(false) // until the caller admitted the first batch (SourcesSeen)
	if down != nil {
		if err := down(); err != nil {
			return err
		}
	}
	m, err := newManagerImpl(k.logger, filepath.Join(k.dir, KubeletSocket), nil, topologymanager.NewFakeManager(k.logger))
	if err != nil {
		return fmt.Errorf("creating the device manager in %s: %w", k.dir, err)
	}
	k.mu.Lock()
	k.m = m
	k.pods = map[types.UID]*v1.Pod{}
	k.mu.Unlock()
	return k.start(m)
}

// manager is the current device manager.
func (k *Kubelet) manager() *devicemanager.ManagerImpl {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m
}

func (k *Kubelet) servePodResources(ctx context.Context) error {
	path := filepath.Join(k.dir, PodResourcesSocket)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	p := providers{k}
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, podresources.NewV1PodResourcesServer(ctx,
		podresources.PodResourcesProviders{Pods: p, Devices: p, Cpus: p, Memory: p, DynamicResources: p}))
	k.mu.Lock()
	k.podres = srv
	k.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
	return nil
}

// Dir is the node's socket directory (kubelet.sock, pod-resources.sock).
func (k *Kubelet) Dir() string { return k.dir }

// Stop stops the PodResources server and the device manager.
func (k *Kubelet) Stop() {
	k.mu.Lock()
	srv, m := k.podres, k.m
	k.mu.Unlock()
	srv.Stop()
	if err := m.Stop(k.logger); err != nil {
		k.logger.Error(err, "Stopping the device manager")
	}
}

func (k *Kubelet) activePods() []*v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Collect(maps.Values(k.pods))
}

// Admit runs the device manager's admission of a pod as the kubelet does
// (cm.GetAllocateResourcesPodAdmitHandler): Allocate for every init and app
// container, in order. On failure the pod is not admitted.
func (k *Kubelet) Admit(ctx context.Context, pod *v1.Pod) error {
	k.mu.Lock()
	k.pods[pod.UID] = pod
	k.mu.Unlock()
	for _, c := range containers(pod) {
		if err := k.manager().Allocate(ctx, pod, c, lifecycle.AddOperation); err != nil {
			k.Forget(pod.UID)
			return fmt.Errorf("allocating devices for container %s: %w", c.Name, err)
		}
		if _, err := k.manager().GetDeviceRunContainerOptions(ctx, pod, c); err != nil {
			k.Forget(pod.UID)
			return fmt.Errorf("preparing devices for container %s: %w", c.Name, err)
		}
	}
	return nil
}

// containers are the pod's init and app containers, in the kubelet's order.
func containers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	podutil.VisitContainers(&pod.Spec, podutil.InitContainers|podutil.Containers, func(c *v1.Container, _ podutil.ContainerType) bool {
		out = append(out, c)
		return true
	})
	return out
}

// Env returns the environment the device manager gives a container of an
// admitted pod (NVIDIA_VISIBLE_DEVICES and the plugin's other variables).
func (k *Kubelet) Env(ctx context.Context, pod *v1.Pod, container *v1.Container) (map[string]string, error) {
	opts, err := k.manager().GetDeviceRunContainerOptions(ctx, pod, container)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", container.Name, err)
	}
	env := map[string]string{}
	if opts != nil {
		for _, e := range opts.Envs {
			env[e.Name] = e.Value
		}
	}
	return env, nil
}

// Mounts returns the container's device mounts: container path -> host path.
func (k *Kubelet) Mounts(ctx context.Context, pod *v1.Pod, container *v1.Container) (map[string]string, error) {
	opts, err := k.manager().GetDeviceRunContainerOptions(ctx, pod, container)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", container.Name, err)
	}
	out := map[string]string{}
	if opts != nil {
		for _, m := range opts.Mounts {
			out[m.ContainerPath] = m.HostPath
		}
	}
	return out, nil
}

// Forget drops a pod that finished or was deleted; the device manager frees
// its devices at its next update.
func (k *Kubelet) Forget(uid types.UID) {
	k.mu.Lock()
	delete(k.pods, uid)
	k.mu.Unlock()
	k.manager().UpdateAllocatedDevices(k.logger)
}

// Admitted reports whether the pod is admitted.
func (k *Kubelet) Admitted(uid types.UID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.pods[uid]
	return ok
}

// Devices returns resource -> device IDs the manager gave the pod, over all
// its containers, sorted.
func (k *Kubelet) Devices(pod *v1.Pod) map[string][]string {
	out := map[string][]string{}
	for _, c := range containers(pod) {
		for res, devs := range k.manager().GetDevices(string(pod.UID), c.Name) {
			for id := range devs {
				if !slices.Contains(out[res], id) {
					out[res] = append(out[res], id)
				}
			}
		}
	}
	for res := range out {
		slices.Sort(out[res])
	}
	return out
}

// Capacity returns the extended resources the device manager reports:
// capacity (all devices), allocatable (healthy ones), and the resources it
// no longer has.
func (k *Kubelet) Capacity() (capacity, allocatable v1.ResourceList, removed []string) {
	return k.manager().GetCapacity(k.logger)
}

// providers back the PodResources server with the admitted pods and the
// device manager; CPU, memory and DRA are not managed on fake nodes.
type providers struct{ k *Kubelet }

func (p providers) GetActivePods() []*v1.Pod { return p.k.activePods() }
func (p providers) GetPods() []*v1.Pod       { return p.k.activePods() }
func (p providers) GetPodByName(ns, name string) (*v1.Pod, bool) {
	for _, pod := range p.k.activePods() {
		if pod.Namespace == ns && pod.Name == name {
			return pod, true
		}
	}
	return nil, false
}
func (p providers) UpdateAllocatedDevices(logger klog.Logger) {
	p.k.manager().UpdateAllocatedDevices(logger)
}
func (p providers) GetDevices(podUID, container string) []*podresourcesv1.ContainerDevices {
	return containerDevices(p.k.manager().GetDevices(podUID, container))
}
func (p providers) GetAllocatableDevices(logger klog.Logger) []*podresourcesv1.ContainerDevices {
	return containerDevices(p.k.manager().GetAllocatableDevices(logger))
}

func containerDevices(devs devicemanager.ResourceDeviceInstances) []*podresourcesv1.ContainerDevices {
	var out []*podresourcesv1.ContainerDevices
	for _, res := range slices.Sorted(maps.Keys(devs)) {
		out = append(out, &podresourcesv1.ContainerDevices{ResourceName: res, DeviceIds: slices.Sorted(maps.Keys(devs[res]))})
	}
	return out
}

func (providers) GetCPUs(*v1.Pod, *v1.Container) []int64 { return nil }
func (providers) GetPodCPUs(string) []int64              { return nil }
func (providers) GetAllocatableCPUs() []int64            { return nil }
func (providers) GetMemory(klog.Logger, *v1.Pod, *v1.Container) []*podresourcesv1.ContainerMemory {
	return nil
}
func (providers) GetPodMemory(klog.Logger, string) []*podresourcesv1.ContainerMemory { return nil }
func (providers) GetAllocatableMemory(klog.Logger) []*podresourcesv1.ContainerMemory { return nil }
func (providers) GetDynamicResources(klog.Logger, *v1.Pod, *v1.Container) []*podresourcesv1.DynamicResource {
	return nil
}
