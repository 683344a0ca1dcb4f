// Package deviceplugin is gpupack's kubelet device plugin: one gRPC server per
// extended resource (whole GPUs, MIG devices, time-shared replicas), health
// from NVML events with recovery, the handoff that honours the scheduler's
// device choice, and what the plugin publishes on its Node.
package deviceplugin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/topology"
)

var _ pluginapi.DevicePluginServer = &Plugin{}

// PluginOptions are the per-resource settings a Plugin needs.
type PluginOptions struct {
	// FailRequestsGreaterThanOne rejects requests of more than one replica.
	FailRequestsGreaterThanOne bool
	// PassDeviceSpecs adds the GPU device nodes to Allocate responses.
	PassDeviceSpecs bool
	// DriverRoot is where the driver's files live, as the plugin reads them
	// (the MIG capability minors) ("/" usually).
	DriverRoot string
	// DevRoot is where the device nodes live on the host: the host paths of
	// device specs and of the CDI spec. Empty means DriverRoot.
	DevRoot string
	// DeviceListStrategies say how Allocate passes the device list to the
	// runtime (configv1.DeviceListStrategy*); empty means envvar.
	DeviceListStrategies []string
	// DeviceIDStrategy names devices in that list: uuid (default) or index.
	DeviceIDStrategy string
	// CDIAnnotationPrefix prefixes the cdi-annotations keys (default cdi.k8s.io/).
	CDIAnnotationPrefix string
	// MPSRoot is the MPS root on the host (flags.mpsRoot) when the resource
	// may hold MPS replicas; their containers mount their GPU's pipe
	// directory and the root's shm from it.
	MPSRoot string
	// Envs are added to every container's environment (NVIDIA_GDS=enabled ...).
	Envs map[string]string
	// IMEXChannels are given to every container (NVIDIA's imex section).
	IMEXChannels []IMEXChannel
	// ReplicaPolicy places multi-replica requests (score.Packed or score.Spread).
	ReplicaPolicy score.ReplicaPolicy
	// Workload is passed to score.Preferred; nil means the default workload.
	Workload *score.Workload
}

// Plugin serves one resource to the kubelet.
type Plugin struct {
	pluginapi.UnimplementedDevicePluginServer

	resource sharing.Resource
	byID     map[string]*sharing.Device
	opts     PluginOptions
	health   *Health
	node     func() *topology.Node
	handoff  *Handoff
	metrics  *Metrics
	// request is the kind (and MIG profile) of this resource's devices for
	// score.Preferred; scorable is false when pkg/score cannot choose among
	// them (mixed kinds, MIG replicas) and the kubelet picks.
	request  score.Request
	scorable bool

	// afterAllocate runs after each successful Allocate, with the resource
	// and each container's device IDs (an in-use refresh that awaits them).
	afterAllocate func(resource string, containers [][]string)
	// kubeletDialed runs when a registration has reached the kubelet
	// instance id (kubeletIdentity), before that kubelet is told of this
	// plugin (the Manager's kubeletDialed; nil: nothing).
	kubeletDialed func(logger klog.Logger, id string)
	// held are the devices withheld for holders under other names (the
	// Manager's; nil withholds none); refreshHeld reads them again (nil:
	// never).
	held        *holdings
	refreshHeld func(ctx context.Context, why string) error
	// allocs is where the handoff reads the kubelet's allocations: the
	// Manager's reads (handoffReads, bounded as refreshHeld's); nil: the
	// Handoff's own.
	allocs Allocations

	// instance tells this Plugin's sockets from those of other Plugins of
	// the resource (rebuilt after rediscovery, or in a restarted process).
	instance string

	// serveMu serializes Serve; regMu serializes Register, so that one
	// Serve is registered with one kubelet once (a second registration on
	// the same path is refused, and the refusal drops the kubelet's record
	// of the first: see socketName).
	serveMu, regMu sync.Mutex

	mu     sync.Mutex
	server *grpc.Server
	socket string
	gen    uint64 // incremented by every Serve
	// registered identifies the kubelet socket (and our serving generation)
	// of the last successful registration, so one kubelet restart, which both
	// wipes our socket and recreates kubelet.sock, registers us only once.
	registered string
	// streams counts the ListAndWatch streams open per serving generation
	// (Connected).
	streams map[uint64]int
	// previous are the servers replaced by a newer one that still serve
	// until the kubelet has registered a newer one (retireBefore): make
	// before break, see serveNext.
	previous []previousServer
}

// previousServer is a replaced server still serving, of generation gen.
type previousServer struct {
	gen    uint64
	server *grpc.Server
	socket string
}

// NewPlugin returns the server for one resource. node returns the node's
// current topology (with health and replicas) for score.Preferred; handoff
// may be nil (no scheduler choices are looked up).
func NewPlugin(res sharing.Resource, opts PluginOptions, health *Health, node func() *topology.Node, handoff *Handoff, metrics *Metrics) *Plugin {
	p := &Plugin{resource: res, byID: make(map[string]*sharing.Device, len(res.Devices)), opts: opts,
		health: health, node: node, handoff: handoff, metrics: metrics, instance: newInstanceID()}
	for i := range res.Devices {
		p.byID[res.Devices[i].ID] = &res.Devices[i]
	}
	p.request, p.scorable = requestKind(res, opts.ReplicaPolicy)
	return p
}

// requestKind works out which score.Kind the resource's devices are; a
// resource mixing kinds (or MIG replicas) is not scorable.
func requestKind(res sharing.Resource, policy score.ReplicaPolicy) (score.Request, bool) {
	if len(res.Devices) == 0 {
		return score.Request{}, false
	}
	first := res.Devices[0]
	for _, d := range res.Devices {
		if d.MIG != first.MIG || d.Shared() != first.Shared() || d.Profile != first.Profile {
			return score.Request{}, false
		}
	}
	switch {
	case first.MIG && first.Shared():
		return score.Request{}, false
	case first.MIG:
		return score.Request{Kind: score.KindMIG, MIGProfile: first.Profile}, true
	case first.Shared():
		return score.Request{Kind: score.KindShared, Policy: policy}, true
	default:
		return score.Request{Kind: score.KindWhole}, true
	}
}

// Name is the resource name the plugin serves.
func (p *Plugin) Name() string { return p.resource.Name }

// Devices returns the resource's devices with their current health.
func (p *Plugin) Devices() []*pluginapi.Device {
	return p.apiDevices(p.health.Snapshot())
}

// apiDevices are the devices as the kubelet sees them: Unhealthy when their
// GPU (MIG device) is, or when they are withheld (a running container holds
// their GPU under another resource name or device ID).
func (p *Plugin) apiDevices(health View) []*pluginapi.Device {
	out := make([]*pluginapi.Device, 0, len(p.resource.Devices))
	withheld := p.held.of(p.resource.Name)
	good := 0
	for i := range p.resource.Devices {
		d := &p.resource.Devices[i]
		dev := &pluginapi.Device{ID: d.ID, Health: pluginapi.Unhealthy}
		if _, held := withheld[d.ID]; !held && health.Device(d.GPUIndex, migUUID(d)) {
			dev.Health = pluginapi.Healthy
			good++
		}
		if d.NUMANode >= 0 {
			dev.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(d.NUMANode)}}}
		}
		out = append(out, dev)
	}
	p.metrics.setDevices(p.resource.Name, good, len(out)-good, len(withheld))
	return out
}

// GetDevicePluginOptions says the plugin implements GetPreferredAllocation.
func (p *Plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// PreStartContainer is not used (PreStartRequired is false).
func (p *Plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// socketPrefix starts the name of every socket gpupack serves in the
// device-plugin directory (removeStaleSockets cleans up only those).
const socketPrefix = "gpupack-"

// socketName is the socket file name of one Serve of a plugin in the
// device-plugin directory: gpupack-<resource>-<instance>-<generation>.sock
// ("nvidia.com/gpu" -> "gpupack-nvidia_com-gpu-3f9a1c2e-1.sock").
//
// Every Serve gets a name of its own. The kubelet's device manager
// (v1.37) keeps one endpoint per socket path and refuses a registration
// on a path it still holds ("device plugin already connected"); when the
// new registration arrives before it noticed the old server's stream end,
// that refusal also drops its record of the old client, whose end then
// never clears the endpoint, and every later registration on that path is
// refused until the kubelet restarts (kubernetes/kubernetes#121994). A
// plugin served again (a kubelet restart, a removed socket), rebuilt after
// rediscovery or restarted so never reuses a path.
func socketName(resource, instance string, gen uint64) string {
	r := strings.NewReplacer("/", "-", ".", "_")
	return fmt.Sprintf("%s%s-%s-%d.sock", socketPrefix, r.Replace(resource), instance, gen)
}

// socketPath is where one Serve of a plugin listens in dir: dir/socketName,
// or, when that path is longer than a unix socket address holds
// (maxSocketPath; a long resource name, renamed in the config), the same
// name with the resource replaced by 12 hex digits of its SHA-256.
func socketPath(dir, resource, instance string, gen uint64) string {
	path := filepath.Join(dir, socketName(resource, instance, gen))
	if len(path) <= maxSocketPath {
		return path
	}
	sum := sha256.Sum256([]byte(resource))
	return filepath.Join(dir, fmt.Sprintf("%s%s-%s-%d.sock", socketPrefix, hex.EncodeToString(sum[:6]), instance, gen))
}

// maxSocketPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// newInstanceID is 8 random hex digits (the process ID and the time if the
// system's random source fails).
func newInstanceID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("%x%x", os.Getpid(), time.Now().UnixNano()&0xffff)
	}
	return hex.EncodeToString(b[:])
}

// migUUID is the MIG UUID of a MIG device (or its replica), "" otherwise.
func migUUID(d *sharing.Device) string {
	if d.MIG {
		return d.UUID
	}
	return ""
}
