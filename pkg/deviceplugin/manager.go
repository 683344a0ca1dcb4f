package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"k8s.io/utils/clock"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/mps"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/topology"
)

// KubeletSocketName is the kubelet's registration socket in the device-plugin directory.
var KubeletSocketName = filepath.Base(pluginapi.KubeletSocket)

// Options configure a Manager.
type Options struct {
	// Lib is an initialised NVML (the real library or a fake machine).
	Lib nvml.Lib
	// Config is a defaulted, validated config.
	Config *configv1.Config
	// CDISpecDir is where the node's CDI spec is written when a CDI device
	// list strategy is in force; empty writes none (--print-topology).
	CDISpecDir string
	// PluginDir is the kubelet's device-plugin directory; its kubelet.sock
	// is the Registration service.
	PluginDir string
	// Clock drives health recovery; nil means the real clock.
	Clock clock.WithTicker
	// Metrics may be nil.
	Metrics *Metrics
	// Events is told of each GPU health change (Node events); may be nil.
	Events HealthEvents
	// Handoff looks up the scheduler's choices; nil disables the handoff.
	Handoff *Handoff
	// Publisher writes the node annotations and labels (it reads the
	// Manager as a nodepublish.Source); nil publishes nothing.
	Publisher *nodepublish.Publisher
	// MPS runs the MPS control daemons when the config shares GPUs with
	// MPS; nil runs none (--print-topology: the resources only).
	MPS *MPSOptions
	// HostRoot is where the host's files GPU Feature Discovery reads are
	// (DMI product name, PCI classes): "/" in a pod with the host's /sys;
	// empty reads none (the labels say unknown).
	HostRoot string
	// Logger gets the messages of the libraries New runs (nvcdi, building
	// the CDI spec's driver edits); the zero Logger discards them.
	Logger klog.Logger
	// Unhealthy are the UUIDs of the GPUs and MIG devices that start
	// unhealthy: the previous Manager's Health().UnhealthyUUIDs() when this
	// one replaces it (HealthOptions.Unhealthy).
	Unhealthy []string
	// PodResources is the kubelet's PodResources API: which containers hold
	// which devices, under which resource names. The Manager withholds the
	// devices whose GPU a running container holds under another name or ID
	// (a config reload); nil withholds none.
	PodResources Allocations
	// Held is what the previous Manager knew of the devices containers hold
	// (its Held()) when this one replaces it: used until PodResources
	// answers, so that a reload while the API fails still withholds what
	// was known held.
	Held []sharing.Holding
	// Withheld is what the previous Manager withheld (its Withheld()) when
	// this one replaces it: a held share keeps the replica it was withheld
	// on wherever this Manager serves that replica too (sharing.Withheld's
	// prev), so that a reload does not move it onto a replica the kubelet
	// sees free.
	Withheld map[string]map[string]sharing.Holding
	// MIGParents are the parent GPUs of MIG devices discovered before this
	// Manager (MIG UUID -> GPU UUID): the previous Manager's MIGParents()
	// when this one replaces it, and at the process's start those of the
	// node's last published gpupack.io/topology annotation. A container
	// the kubelet still lists with a MIG device a MIG layout change
	// destroyed keeps that GPU withheld whole (sharing.Withheld); one whose
	// GPU is not known here keeps every MIG-capable GPU withheld. nil: none
	// known.
	MIGParents sharing.MIGParents
	// ResyncPeriod is how often Run resyncs without a directory event
	// (resync: a plugin whose socket is gone is served again, one not
	// registered with the kubelet listening now is registered, the MIG
	// layout and the kubelet's PodResources are read again), on Clock;
	// zero means DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// WithheldPollPeriod is how often Run reads the kubelet's PodResources
	// while it withholds a device, so that the device comes back soon after
	// its holder ended rather than at the next resync; each failed read
	// doubles it, up to ResyncPeriod, until one succeeds. With nothing
	// withheld nothing is read for it. On Clock; zero means
	// DefaultWithheldPollPeriod.
	WithheldPollPeriod time.Duration
	// PodEnds tells Run that pods of the node ended (the node's pod
	// informer feeds it): while a device is withheld, PodResources is read
	// again at once. nil: the poll alone (WithheldPollPeriod).
	PodEnds *PodEnds
	// PodResourcesDown says that the Manager this one replaces told that
	// the kubelet's PodResources API does not answer, and not that it
	// answers again (its PodResourcesDown): this one tells when it does.
	PodResourcesDown bool
}

// ErrRediscover is returned by Run when a GPU that discovery could not read
// answers again: build a new Manager (New discovers the node again) and run
// it; the kubelet then sees the GPU under its real device ID.
var ErrRediscover = errors.New("a GPU that discovery could not read answers again: discover the node again")

// ErrRestartOnUnhealthy is returned by Run when a device goes unhealthy and
// flags.restartOnDeviceUnhealthy is set: NVIDIA's plugin then fails its
// liveness probe and is restarted, which brings every device back healthy;
// the command does the same by discovering the node again (it is an
// ErrRediscover).
var ErrRestartOnUnhealthy = fmt.Errorf("a device went unhealthy and flags.restartOnDeviceUnhealthy is set: %w", ErrRediscover)

// ErrDiscovery is wrapped by New's error when discovering the node failed
// (an NVML error in a node-wide answer, the GPU count or the driver
// version): no fault of the config, so the same build may succeed when
// tried again.
var ErrDiscovery = errors.New("discovering GPUs")

// ErrMIGChanged is returned by Run (wrapped with what changed) when a GPU's
// MIG mode or MIG devices are no longer those discovered: the devices served
// must be discovered again (it is an ErrRediscover).
var ErrMIGChanged error = migChanged{}

type migChanged struct{}

func (migChanged) Error() string        { return "the node's MIG devices changed: discover the node again" }
func (migChanged) Is(target error) bool { return target == ErrRediscover }

// Manager runs one Plugin per resource of the node, their health and the
// kubelet-restart watch.
type Manager struct {
	opts      Options
	inv       *nvml.Inventory
	base      *topology.Node
	health    *Health
	held      *holdings
	mps       *mps.Runner
	plugins   []*Plugin
	startedAt int64
	// startNotes are what New skipped (IMEX channels not found), logged by Run.
	startNotes []error

	nodeMu      sync.Mutex
	node        *topology.Node
	nodeVersion uint64

	gfdOnce sync.Once
	gfd     *gfd.Node

	// watchDir watches the device-plugin directory (watchDirFS; tests
	// lose events through it).
	watchDir func(dir string) (*dirWatch, error)
	// kubeletMu guards kubeletSeen and batchFor: Run's goroutine and
	// registrations in flight (kubeletDialed) use them.
	kubeletMu sync.Mutex
	// batchFor is the kubelet instance whose start the handoff last marked
	// as a batch (Handoff.KubeletRestarted), so that it is marked once.
	batchFor string
	// kubeletSeen is the identity of the last kubelet socket Run saw
	// (kubeletIdentity); under kubeletMu.
	kubeletSeen string
	// heldAsk asks watchHeld for a read of PodResources (why it is asked):
	// one waits while a read is under way, later ones join it.
	heldAsk chan string
	// reported is what reportWithheld last told (under reportMu).
	reportMu sync.Mutex
	reported map[string]map[string]sharing.Holding
	// podResourcesDown is set while an outage of the kubelet's
	// PodResources API was told (by this Manager, or the one it replaced)
	// and its end was not; outageTold once this Manager told the outage
	// under way (reportOutage; under reportMu).
	podResourcesDown, outageTold bool
	// rebuildAsked is set once Run returned an ErrRediscover: the rebuild
	// it asked for is pending, so a later Run (the rebuild failed, and the
	// command serves this Manager again until it retries) serves without
	// asking for it again.
	rebuildAsked atomic.Bool
}

// dirWatch is a watch of the device-plugin directory: its events and
// errors, and how to end it.
type dirWatch struct {
	Events <-chan fsnotify.Event
	Errors <-chan error
	Close  func() error
}

// watchDirFS watches dir with fsnotify (inotify on Linux).
func watchDirFS(dir string) (*dirWatch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", dir, err)
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("watching %s: %w", dir, err)
	}
	return &dirWatch{Events: w.Events, Errors: w.Errors, Close: w.Close}, nil
}

// Defaults of Options.ResyncPeriod and Options.WithheldPollPeriod.
const (
	// DefaultResyncPeriod is how often Run checks, without a directory
	// event, that every plugin still has its socket and is registered with
	// the kubelet listening now (resync): a lost event must not leave the
	// node without its devices for good.
	DefaultResyncPeriod = 30 * time.Second
	// DefaultWithheldPollPeriod is how often Run reads the kubelet's
	// PodResources while it withholds a device: the device comes back at
	// most this long after the kubelet stopped listing its holder.
	DefaultWithheldPollPeriod = 5 * time.Second
)

// New discovers the GPUs and builds the resources and their plugins.
func New(opts Options) (*Manager, error) {
	if opts.Lib == nil || opts.Config == nil {
		return nil, errors.New("device plugin: Lib and Config are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.ResyncPeriod <= 0 {
		opts.ResyncPeriod = DefaultResyncPeriod
	}
	if opts.WithheldPollPeriod <= 0 {
		opts.WithheldPollPeriod = DefaultWithheldPollPeriod
	}
	inv, err := opts.Lib.Discover()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}

	resources, err := sharing.Build(inv, opts.Config)
	if err != nil {
		return nil, fmt.Errorf("building resources: %w", err)
	}
	c := opts.Config
	m := &Manager{opts: opts, inv: inv, base: inv.Topology(), startedAt: opts.Clock.Now().UnixMilli(), watchDir: watchDirFS,
		heldAsk: make(chan string, 1), podResourcesDown: opts.PodResourcesDown}
	setReplicas(m.base, resources)
	m.base.Resources = publishedResources(resources, &c.Sharing)
	if err := checkListAndWatchSize(resources); err != nil {
		return nil, err
	}
	if *c.Flags.MigStrategy == configv1.MIGStrategyNone {
		// MIG-enabled GPUs are advertised whole: publish and score them so.
		for i := range m.base.GPUs {
			m.base.GPUs[i].MIGEnabled = false
		}
		m.base.MIG = nil
	}
	healthInv, unhealthy := inv, goneMarksToParents(inv, opts.Unhealthy, opts.MIGParents)
	if *c.Flags.MigStrategy == configv1.MIGStrategyNone {
		healthInv, unhealthy = servedWhole(inv, unhealthy)
	}
	m.health = NewHealth(opts.Lib, healthInv, HealthOptions{
		Critical:  c.Health.Critical,
		Watched:   func(k nvml.EventKind) bool { return watched(&c.Health, k) },
		Recover:   c.Health.Recovery.Enabled != nil && *c.Health.Recovery.Enabled,
		Checks:    c.Health.Recovery.RequiredChecks(),
		Interval:  recoveryInterval(c),
		Clock:     opts.Clock,
		Metrics:   opts.Metrics,
		Events:    opts.Events,
		Unhealthy: unhealthy,
	})
	if opts.MPS != nil && c.Sharing.Strategy() == configv1.SharingStrategyMPS {
		if err := m.newMPSRunner(resources, c.Flags.MPSRoot()); err != nil {
			return nil, err
		}
	}
	policy := score.Packed
	if ts, _ := c.Sharing.Replicated(); ts.ReplicaPolicy == configv1.ReplicaPolicySpread {
		policy = score.Spread
	}
	popts := pluginOptions(c, policy)
	if popts.IMEXChannels, m.startNotes, err = IMEXChannels(c.Imex.ChannelIDs, c.Imex.Required, popts.DriverRoot, popts.DevRoot); err != nil {
		return nil, err
	}
	if c.Flags.Plugin.UsesCDI() && opts.CDISpecDir != "" {
		notes, err := writeCDISpecs(opts.Logger, opts.CDISpecDir, c, inv.DriverVersion, resources, popts)
		if err != nil {
			return nil, err
		}
		m.startNotes = append(m.startNotes, notes...)
	}
	m.held = newHoldings(opts.PodResources, inv, opts.MIGParents, resources, opts.Held, opts.Withheld, opts.Metrics)
	m.held.gone, _ = opts.Events.(GoneMIGEvents)
	for _, r := range resources {
		p := NewPlugin(r, popts, m.health, m.Node, opts.Handoff, opts.Metrics)
		p.kubeletDialed = m.kubeletDialed
		p.afterAllocate = opts.Publisher.KickAllocated
		p.held, p.refreshHeld = m.held, m.refreshHeld
		if opts.PodResources != nil {
			p.allocs = handoffReads{m}
		}
		m.plugins = append(m.plugins, p)
	}
	opts.Metrics.attach(m)
	return m, nil
}

// goneMarksToParents is the marks carried from the previous Manager with
// each mark of a MIG device that inv no longer has (its instance destroyed
// or MIG turned off: a layout change) moved to its parent GPU, known from
// parents (Options.MIGParents): a rebuild is no recovery check, so the GPU
// that held a faulty instance starts unhealthy and comes back only through
// the recovery checks. A mark whose device nothing remembers is kept as it
// is (it names nothing of inv and is dropped).
func goneMarksToParents(inv *nvml.Inventory, unhealthy []string, parents sharing.MIGParents) []string {
	var out []string
	for _, uuid := range unhealthy {
		if gpu, ok := parents[uuid]; ok && !slices.ContainsFunc(inv.MIG, func(m nvml.MIGDevice) bool { return m.UUID == uuid }) {
			uuid = gpu
		}
		if !slices.Contains(out, uuid) {
			out = append(out, uuid)
		}
	}
	return out
}

// servedWhole is what health tracks under migStrategy none, where every GPU,
// MIG-enabled or not, is advertised whole: the GPUs without their MIG
// devices, so that an XID naming one of a GPU's instances takes the whole
// GPU (the device a pod holds) out, as NVIDIA's plugin does; and the marks
// carried from the Manager replaced with each MIG device's mark moved to its
// GPU.
func servedWhole(inv *nvml.Inventory, unhealthy []string) (*nvml.Inventory, []string) {
	whole := *inv
	whole.MIG = nil
	parent := make(map[string]string, len(inv.MIG))
	for _, d := range inv.MIG {
		for _, g := range inv.GPUs {
			if g.Index == d.ParentIndex {
				parent[d.UUID] = g.UUID
			}
		}
	}
	marks := make([]string, 0, len(unhealthy))
	for _, uuid := range unhealthy {
		if gpu, ok := parent[uuid]; ok {
			uuid = gpu
		}
		if !slices.Contains(marks, uuid) {
			marks = append(marks, uuid)
		}
	}
	return &whole, marks
}

// setReplicas records each time-shared GPU's replica count on the node.
func setReplicas(n *topology.Node, resources []sharing.Resource) {
	for _, r := range resources {
		for _, d := range r.Devices {
			if d.Shared() && !d.MIG && d.GPUIndex < len(n.GPUs) {
				n.GPUs[d.GPUIndex].Replicas = d.Replicas
			}
		}
	}
}

// pluginOptions are the per-resource settings from a defaulted config.
func pluginOptions(c *configv1.Config, policy score.ReplicaPolicy) PluginOptions {
	pf := c.Flags.Plugin
	o := PluginOptions{
		FailRequestsGreaterThanOne: c.Sharing.FailRequestsGreaterThanOne(),
		PassDeviceSpecs:            deref(pf.PassDeviceSpecs),
		ReplicaPolicy:              policy,
		DriverRoot:                 deref(c.Flags.NvidiaDriverRoot),
		DevRoot:                    c.Flags.DevRoot(),
		DeviceIDStrategy:           deref(pf.DeviceIDStrategy),
		CDIAnnotationPrefix:        deref(pf.CDIAnnotationPrefix),
	}
	if c.Sharing.Strategy() == configv1.SharingStrategyMPS {
		o.MPSRoot = c.Flags.MPSRoot()
	}
	if pf.ContainerDriverRoot != nil && *pf.ContainerDriverRoot != "" {
		// The plugin sees the host's driver root here; host paths keep
		// the driver (dev) root.
		if o.DevRoot == "" {
			o.DevRoot = o.DriverRoot
		}
		o.DriverRoot = *pf.ContainerDriverRoot
	}
	if pf.DeviceListStrategy != nil {
		o.DeviceListStrategies = *pf.DeviceListStrategy
	}
	for env, on := range map[string]*bool{"NVIDIA_GDS": c.Flags.GDSEnabled, "NVIDIA_MOFED": c.Flags.MOFEDEnabled, "NVIDIA_GDRCOPY": c.Flags.GDRCopyEnabled} {
		if deref(on) {
			if o.Envs == nil {
				o.Envs = map[string]string{}
			}
			o.Envs[env] = "enabled"
		}
	}
	return o
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// checkListAndWatchSize refuses a resource whose ListAndWatch message the
// kubelet could not read (gRPC's 4 MiB receive limit), naming the most
// replicas per device this node can advertise: the config allows up to
// topology.MaxReplicas (what one message carries for a one-GPU node), and
// more GPUs and MIG devices divide it.
func checkListAndWatchSize(resources []sharing.Resource) error {
	for _, r := range resources {
		msg := &pluginapi.ListAndWatchResponse{Devices: make([]*pluginapi.Device, 0, len(r.Devices))}
		for i := range r.Devices {
			d := &r.Devices[i]
			msg.Devices = append(msg.Devices, &pluginapi.Device{ID: d.ID, Health: pluginapi.Unhealthy,
				Topology: &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(max(d.NUMANode, 0))}}}})
		}
		if size := proto.Size(msg); size > topology.KubeletMaxMessageBytes {
			parents := map[string]bool{}
			for i := range r.Devices {
				parents[r.Devices[i].UUID] = true
			}
			// The devices the message holds at this entry size, shared
			// among the resource's physical devices.
			fit := topology.KubeletMaxMessageBytes / (size/len(r.Devices) + 1)
			return fmt.Errorf("resource %s: %d devices make a %d-byte ListAndWatch message, more than the kubelet's %d-byte limit: "+
				"this node's %d devices take at most %d replicas each",
				r.Name, len(r.Devices), size, topology.KubeletMaxMessageBytes, len(parents), fit/len(parents))
		}
	}
	return nil
}

func recoveryInterval(c *configv1.Config) time.Duration {
	if c.Health.Recovery.Interval == nil {
		return 0
	}
	return c.Health.Recovery.Interval.Duration
}

// Inventory is what discovery found.
func (m *Manager) Inventory() *nvml.Inventory { return m.inv }

// MIGCapable reports whether any GPU of the node can run MIG.
func (m *Manager) MIGCapable() bool {
	for _, g := range m.inv.GPUs {
		if g.MIGCapable {
			return true
		}
	}
	return false
}

// Plugins are the per-resource servers, sorted by resource name.
func (m *Manager) Plugins() []*Plugin { return m.plugins }

// Health is the GPU health tracker.
func (m *Manager) Health() *Health { return m.health }

// Held is what m knows of the devices the node's containers hold (the
// kubelet's last PodResources answer and what m allocated since), for the
// Manager that replaces it (Options.Held); nil when nothing is known.
func (m *Manager) Held() []sharing.Holding { return m.held.snapshot() }

// Withheld is what m withholds: resource -> device ID -> holder, for the
// Manager that replaces it (Options.Withheld); not to be modified.
func (m *Manager) Withheld() map[string]map[string]sharing.Holding { return m.held.all() }

// MIGParents is the memory of MIG devices for the Manager that replaces m
// (Options.MIGParents): the parents of m's MIG devices, and of earlier
// ones that a holding m knows of still names (sharing.RememberMIG); nil
// without PodResources.
func (m *Manager) MIGParents() sharing.MIGParents { return m.held.migParents() }

// GoneMIGParents are the parent GPUs of MIG devices destroyed under running
// pods that this node still remembers (MIG UUID -> GPU UUID): the in-use
// report names the parent beside such a pod's MIG device, so that the
// scheduler counts the GPU held whole, as the plugin withholds it.
func (m *Manager) GoneMIGParents() map[string]string { return m.held.goneMIGParents() }

// The node publisher reads the running Manager.
var (
	_ nodepublish.Source        = (*Manager)(nil)
	_ nodepublish.GoneMIGSource = (*Manager)(nil)
)

// ResourceNames are the names of the resources served, sorted.
func (m *Manager) ResourceNames() []string {
	out := make([]string, 0, len(m.plugins))
	for _, p := range m.plugins {
		out = append(out, p.Name())
	}
	return out
}

// HealthChanged is closed at the next health change.
func (m *Manager) HealthChanged() <-chan struct{} { return m.health.Changed() }

// Node returns the node's topology with current health; callers must not
// modify it. It is rebuilt only after a health change.
func (m *Manager) Node() *topology.Node {
	health := m.health.Snapshot()
	version := health.Version
	m.nodeMu.Lock()
	defer m.nodeMu.Unlock()
	if m.node != nil && m.nodeVersion == version {
		return m.node
	}
	n := *m.base
	n.GPUs = append([]topology.GPU(nil), m.base.GPUs...)
	n.MIG = append([]topology.MIGDevice(nil), m.base.MIG...)
	for i := range n.GPUs {
		n.GPUs[i].Healthy = health.GPU(n.GPUs[i].Index)
	}
	for i := range n.MIG {
		n.MIG[i].Healthy = health.Device(n.MIG[i].Parent, n.MIG[i].UUID)
	}
	n.Generation = m.startedAt + int64(version)
	m.node, m.nodeVersion = &n, version
	return &n
}

// Run serves every plugin, registers them with the kubelet, watches health
// and the device-plugin directory, and publishes; it returns when ctx ends,
// or with an ErrRediscover when the node must be discovered again. Run may
// be called again once it returned: the Manager serves again (a rebuild
// that failed leaves it serving until the retry), and once it asked for a
// rediscovery it does not ask again (a GPU read again, a device unhealthy
// under restartOnDeviceUnhealthy, a MIG change: the rebuild is pending).
func (m *Manager) Run(ctx context.Context) (err error) {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rebuildPending := m.rebuildAsked.Load()
	defer func() {
		if errors.Is(err, ErrRediscover) {
			m.rebuildAsked.Store(true)
		}
	}()

	for _, err := range m.startNotes {
		logger.Info("Skipped at start", "reason", err.Error())
	}
	// The per-resource gauges of resources this Manager does not serve (a
	// reload removed or renamed them) go.
	m.opts.Metrics.serve(m.ResourceNames())
	for _, g := range m.inv.GPUs {
		if g.Degraded != nil {
			// Served unhealthy (capacity stays) until the probe reads it.
			logger.Error(g.Degraded, "GPU could not be discovered; listing it unhealthy", "gpu", g.Index, "uuid", g.UUID)
		}
	}
	// Subscribed before anything can change health (the NVML watch, the
	// recovery probe, the MPS daemons): a change is a closed channel that
	// only its subscribers see, and one made before the main loop below
	// subscribed was missed (a GPU that went unhealthy while the plugins
	// were registering never restarted the plugin).
	var healthChanged <-chan struct{}
	if deref(m.opts.Config.Flags.RestartOnDeviceUnhealthy) && !rebuildPending {
		healthChanged = m.health.Changed()
		// Marks carried from the previous Manager (a reload that turned
		// the flag on, or one that raced a fault): no change will come
		// for them, and a restart is what the flag asks for.
		if m.health.AnyUnhealthy() {
			logger.Info("Devices are unhealthy from before this config and flags.restartOnDeviceUnhealthy is set: restarting")
			return ErrRestartOnUnhealthy
		}
	}
	if !m.opts.Config.Health.Disabled {
		uuids := make([]string, 0, len(m.inv.GPUs))
		for _, g := range m.inv.GPUs {
			if nvml.IsPlaceholderUUID(g.UUID) {
				continue // no UUID to watch by; the recovery probe reads it by index
			}
			uuids = append(uuids, g.UUID)
		}
		events, err := m.opts.Lib.WatchEvents(ctx, uuids)
		if err != nil {
			// Without events we still recover and serve; log loudly.
			logger.Error(err, "Watching NVML health events failed; health checks limited to recovery probes")
		}
		go m.health.Run(ctx, events)
	} else if m.health.AnyDegraded() {
		// No health checks, but a GPU discovery could not read is served
		// unhealthy under a placeholder: it is read again (no events)
		// until it answers and the node is discovered anew.
		go m.health.Run(ctx, nil)
	}

	w, err := m.watchDir(m.opts.PluginDir)
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	// The MPS daemons' health is known before the kubelet sees a device;
	// they quit when Run returns, after the plugins stopped.
	waitMPS := m.runMPS(ctx)
	defer func() {
		cancel()
		waitMPS()
	}()
	removed, err := removeStaleSockets(m.opts.PluginDir)
	if err != nil {
		logger.Error(err, "Removing stale sockets of earlier gpupack processes")
	}
	for _, path := range removed {
		logger.Info("Removed a stale socket of an earlier gpupack process", "socket", path)
	}
	m.kubeletMu.Lock()
	id := kubeletIdentity(filepath.Join(m.opts.PluginDir, KubeletSocketName))
	if prev := m.opts.Handoff.sawKubelet(id); prev != "" && id != "" && id != prev {
		// The kubelet restarted while the plugin was rebuilt (after the
		// Manager before this one saw it last): it admits the pods still
		// pending as one batch, by creation time, as soon as it has the
		// plugin's devices.
		logger.Info("The kubelet restarted while the plugin was rebuilt: its first pods are a batch")
		m.kubeletStartedLocked(id)
	} else {
		m.kubeletSeen = id
	}
	m.kubeletMu.Unlock()
	// Before the kubelet sees a device: one whose GPU a running container
	// holds under an earlier config's name or ID is withheld from the
	// first ListAndWatch on.
	m.refreshHeld(ctx, "start")
	for _, p := range m.plugins {
		_ = p.Devices() // sets the resource's gauges, as served from now on
	}
	// The resync ticker runs from before the first registration: whoever
	// sees a plugin registered (a test stepping a fake clock, too) knows
	// the next period's resync is due.
	resync := m.opts.Clock.NewTicker(m.opts.ResyncPeriod)
	defer resync.Stop()
	// Stopped however Run ends, also when a later plugin fails to start
	// (an earlier one's server would serve on, registered, otherwise).
	defer func() {
		for _, p := range m.plugins {
			p.Stop()
		}
	}()
	// Before the kubelet can admit a pod with the plugins' devices: the
	// pods it lists now had their admission before this process served.
	m.opts.Handoff.beforeRegistration(ctx, m.opts.PodResources)
	for _, p := range m.plugins {
		if err := m.start(ctx, p); err != nil {
			return err
		}
	}
	if m.opts.Publisher != nil {
		go m.opts.Publisher.Run(ctx, m)
	}
	// PodResources is read again aside, so that a kubelet slow to answer
	// does not hold up the loop (a read is bounded; a later one wins).
	var heldWatch sync.WaitGroup
	heldWatch.Go(func() { m.watchHeld(ctx) })
	defer func() {
		cancel()
		heldWatch.Wait()
	}()
	rediscover := m.health.Rediscover()
	if rebuildPending {
		rediscover = nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync.C():
			m.resync(ctx, "resync period")
			m.askHeld("resync period")
			if rebuildPending {
				continue
			}
			if err := m.checkMIG(ctx); err != nil {
				return err
			}
		case <-rediscover:
			return ErrRediscover
		case <-healthChanged:
			healthChanged = m.health.Changed()
			if m.health.AnyUnhealthy() {
				logger.Info("A device went unhealthy and flags.restartOnDeviceUnhealthy is set: restarting")
				return ErrRestartOnUnhealthy
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("fsnotify watcher closed")
			}
			logger.Error(err, "Watching the device-plugin directory")
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: a kubelet restart or a removed
				// socket among them would go unseen until the next
				// resync.
				m.resync(ctx, "directory events lost")
			}
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("fsnotify watcher closed")
			}
			if filepath.Clean(ev.Name) == filepath.Clean(m.opts.PluginDir) && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
				// The watch ends with its directory: a kubelet.sock created
				// in a new one would never be seen.
				return fmt.Errorf("the device-plugin directory %s was removed: starting over", m.opts.PluginDir)
			}
			m.onFSEvent(ctx, ev)
		}
	}
}

// onFSEvent re-registers everything when kubelet.sock is (re)created and
// restarts a plugin whose socket was removed by someone else.
func (m *Manager) onFSEvent(ctx context.Context, ev fsnotify.Event) {
	logger := klog.FromContext(ctx)
	name := filepath.Base(ev.Name)
	if name == KubeletSocketName && ev.Has(fsnotify.Create) {
		logger.Info("kubelet.sock created: the kubelet restarted, registering again")
		// The restarted kubelet admits the pods still pending as one batch,
		// by creation time, not in the order they reached this plugin
		// (unless a registration with it marked that already).
		m.kubeletMu.Lock()
		m.kubeletStartedLocked(kubeletIdentity(ev.Name))
		m.kubeletMu.Unlock()
		for _, p := range m.plugins {
			// The restarted kubelet wiped our socket and we may already have
			// served again and registered with it: a second Serve would cut
			// the connection the kubelet just made.
			if p.RegisteredWith(ev.Name) {
				continue
			}
			var err error
			if _, serr := os.Stat(p.Socket()); serr == nil {
				m.register(ctx, p)
			} else {
				err = m.start(ctx, p)
			}
			if err != nil {
				logger.Error(err, "Restarting the plugin failed", "resource", p.Name())
			}
		}
		return
	}
	if !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		return
	}
	for _, p := range m.plugins {
		if s := p.Socket(); s == "" || filepath.Clean(ev.Name) != filepath.Clean(s) {
			continue
		}
		if _, err := os.Stat(ev.Name); err == nil {
			return // already served again
		}
		logger.Info("Our socket was removed, serving again", "resource", p.Name(), "socket", ev.Name)
		if err := m.start(ctx, p); err != nil {
			logger.Error(err, "Restarting the plugin failed", "resource", p.Name())
		}
	}
}

// checkMIG reads the MIG layout again under migStrategy single or mixed,
// where MIG devices are served: an error wrapping ErrMIGChanged when a GPU's
// MIG mode or MIG devices changed (devices that are gone must not stay
// advertised: they are marked gone, unhealthy, should this Manager be
// served again after a failed rediscovery). An NVML error is logged and
// changes nothing: health deals with a failing GPU.
func (m *Manager) checkMIG(ctx context.Context) error {
	if *m.opts.Config.Flags.MigStrategy == configv1.MIGStrategyNone || !m.MIGCapable() {
		return nil
	}
	err := m.opts.Lib.CheckMIG(m.inv)
	if errors.Is(err, nvml.ErrMIGChanged) {
		klog.FromContext(ctx).Info("The node's MIG devices changed; discovering the node again", "change", err.Error())
		// Should the rediscovery fail, this Manager is served again until
		// it is retried: the devices gone must not be given meanwhile.
		// Every GPU's: CheckMIG names each GPU that changed. A GPU whose
		// MIG mode changed is gone as served too (whole, it is now in
		// MIG mode; its MIG devices, it is whole now).
		var gpus []int
		var migs []string
		for _, c := range nvml.MIGChanges(err) {
			if c.Mode {
				gpus = append(gpus, c.GPU)
			}
			migs = append(migs, c.Gone...)
		}
		m.health.MarkGone(ctx, gpus, migs)
		return fmt.Errorf("%w: %w", ErrMIGChanged, err)
	}
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Reading the MIG devices again failed", "err", err)
	}
	return nil
}

// resync does what lost directory events would have asked for: it serves
// again every plugin whose socket is gone, and registers every plugin not
// registered with the kubelet listening now that no kubelet streams
// ListAndWatch from (a kubelet that does has it, whatever its socket's
// identity says). A kubelet not seen before is a restart (the handoff's
// batch). Why is logged with what it does.
func (m *Manager) resync(ctx context.Context, why string) {
	logger := klog.FromContext(ctx)
	kubelet := filepath.Join(m.opts.PluginDir, KubeletSocketName)
	m.kubeletMu.Lock()
	if id := kubeletIdentity(kubelet); id != "" && id != m.kubeletSeen {
		if m.kubeletSeen != "" {
			logger.Info("The kubelet restarted without a directory event", "why", why)
		} else {
			logger.Info("The kubelet started after the plugin, without a directory event", "why", why)
		}
		// Either way it admits the pods still pending as one batch, by
		// creation time (marked once per kubelet: kubeletDialed may have).
		m.kubeletStartedLocked(id)
	}
	m.kubeletMu.Unlock()
	for _, p := range m.plugins {
		var err error
		switch {
		case !p.serving():
			logger.Info("Our socket is gone without a directory event, serving again", "resource", p.Name(), "why", why)
			err = m.start(ctx, p)
		case !p.RegisteredWith(kubelet) && !p.Connected() && kubeletIdentity(kubelet) != "":
			logger.Info("Not registered with the kubelet listening now, registering", "resource", p.Name(), "why", why)
			m.register(ctx, p)
		}
		if err != nil {
			logger.Error(err, "Restarting the plugin failed", "resource", p.Name())
		}
	}
}

// kubeletStartedLocked records the kubelet instance id (kubeletIdentity)
// as seen, and marks its start as the handoff's batch unless it was marked
// already; m.kubeletMu must be held.
func (m *Manager) kubeletStartedLocked(id string) {
	m.kubeletSeen = id
	m.opts.Handoff.sawKubelet(id)
	if id != "" && id == m.batchFor {
		return
	}
	m.batchFor = id
	m.opts.Handoff.KubeletRestarted()
}

// kubeletDialed is called by a registration (Plugin.Register) that reached
// the kubelet instance id, before it tells that kubelet of the plugin. A
// kubelet other than the last one seen started after this process did: it
// admits the pods still pending as one batch, by creation time, and asks
// for their allocations as soon as it has the plugin's devices. Its start
// is marked here, before it can ask. Marked when kubelet.sock's creation
// event was handled, it came too late when the plugin had served again and
// registered on the event before (the restarted kubelet removes our socket
// first): the kubelet admitted its batch in between, in the arrival order,
// and pods got each other's sets.
func (m *Manager) kubeletDialed(logger klog.Logger, id string) {
	m.kubeletMu.Lock()
	defer m.kubeletMu.Unlock()
	if id == m.kubeletSeen {
		return
	}
	logger.Info("Registering with a kubelet that started after the last one seen: its first pods are a batch")
	m.kubeletStartedLocked(id)
}

// start serves p on a fresh socket and registers it when the kubelet is
// there. The previous server stops once the kubelet has a newer one (make
// before break: serveNext says why), or at once when no kubelet listens.
// When the new server cannot listen the previous one keeps serving.
func (m *Manager) start(ctx context.Context, p *Plugin) error {
	gen, err := p.serveNext(ctx, m.opts.PluginDir)
	if err != nil {
		return fmt.Errorf("serving %s: %w", p.Name(), err)
	}
	if !m.register(ctx, p) {
		p.retireBefore(gen)
	}
	return nil
}

// register announces p's current server to the kubelet, retrying in the
// background when the kubelet refuses it for now; false when no kubelet
// socket is there to register with.
func (m *Manager) register(ctx context.Context, p *Plugin) bool {
	kubelet := filepath.Join(m.opts.PluginDir, KubeletSocketName)
	if _, err := os.Stat(kubelet); err != nil {
		klog.FromContext(ctx).Info("No kubelet socket yet, waiting for it", "resource", p.Name(), "socket", kubelet)
		return false
	}
	if err := p.Register(ctx, kubelet); err != nil {
		// The kubelet could not reach the new server (or is going away):
		// retry with backoff, the previous server still serving it.
		klog.FromContext(ctx).Info("Registration failed, retrying", "resource", p.Name(), "err", err)
		go m.retryRegister(ctx, p, p.generation(), kubelet)
	}
	return true
}

// Registration retry backoff.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = 5 * time.Second
)

// retryRegister registers p until it succeeds, ctx ends, or p is served
// again (a newer start registers by itself, and retires the servers this
// one was to retire once the kubelet has it).
func (m *Manager) retryRegister(ctx context.Context, p *Plugin, gen uint64, kubelet string) {
	logger := klog.FromContext(ctx)
	delay := retryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if p.generation() != gen || p.RegisteredWith(kubelet) {
			return // served again, or registered meanwhile (kubelet.sock created)
		}
		err := p.Register(ctx, kubelet)
		if err == nil {
			return
		}
		logger.V(2).Info("Registration failed, retrying", "resource", p.Name(), "err", err, "delay", delay)
		delay = min(2*delay, retryMax)
	}
}
