// Package nodepublish writes what the device plugin knows about its node onto
// the Node object: the gpupack.io/topology annotation and the GPU labels
// (GPU Feature Discovery's, pkg/gfd, and gpupack.io/nvlink; one server-side
// apply) and the gpupack.io/in-use report (from the kubelet's PodResources
// API; a merge patch). It owns the API writes and
// the PodResources reads for the report; the kubelet's gRPC side lives in
// pkg/deviceplugin, which this package does not import: what it needs from
// the plugin is the small Source, Allocations and Recorder interfaces below.
package nodepublish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Source is what the publisher reads from the running device plugin
// (deviceplugin.Manager): the node's topology with current health, and a
// channel closed at the next health change.
type Source interface {
	// Node is the node's topology with current health; not modified.
	Node() *topology.Node
	// GFD is what GPU Feature Discovery's labels derive from (inventory,
	// host files, the config's MIG strategy and sharing); not modified.
	GFD() *gfd.Node
	// ResourceNames are the extended resources the plugin serves.
	ResourceNames() []string
	// HealthChanged is closed at the next health change.
	HealthChanged() <-chan struct{}
}

// GoneMIGSource is a Source that remembers the parent GPUs of MIG devices
// destroyed under running pods (deviceplugin.Manager): MIG UUID -> parent
// GPU UUID. The in-use report names the parent beside such a pod's device,
// so the scheduler counts the GPU held whole, as the device plugin
// withholds it (pkg/sharing gone.go): the pod's container still has the
// GPU's device node, and the GPU's new MIG devices or the GPU itself
// would be given again.
type GoneMIGSource interface {
	GoneMIGParents() map[string]string
}

// Allocations is the kubelet's record of allocations (the PodResources API,
// deviceplugin.PodResources): pod -> container -> resource -> device IDs.
type Allocations interface {
	Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error)
}

// Recorder counts what the in-use report finds (deviceplugin.Metrics). A
// nil Recorder records nothing.
type Recorder interface {
	// SetPodDevices records the kubelet's latest allocations.
	SetPodDevices(pods []PodDevice)
	// HandoffNotHonoured counts a pod given devices of resource outside the
	// scheduler's set (once per pod).
	HandoffNotHonoured(resource string)
	// MalformedDevice counts a device ID held under resource that the
	// in-use report leaves out as malformed (once while the kubelet lists
	// it).
	MalformedDevice(resource string)
}

// PodLister lists the pods of this node (an informer's lister).
type PodLister interface {
	List(selector labels.Selector) ([]*v1.Pod, error)
}

// PodDevice is one device a container holds, as the kubelet's PodResources
// reports it.
type PodDevice struct {
	Namespace, Pod, Container, Resource, Device string
}

// Options configure a Publisher.
type Options struct {
	Client   kubernetes.Interface
	NodeName string
	// PodResources is the kubelet's PodResources API; nil reads no in-use
	// report.
	PodResources Allocations
	// Pods resolves pod UIDs for the in-use report; may be nil.
	Pods PodLister
	// What to publish at first (Reconfigure changes it).
	Topology, Labels, InUse bool
	// InUseInterval refreshes the in-use report periodically.
	InUseInterval time.Duration
	// Clock paces the in-use refresh and the retries, and dates
	// nvidia.com/gfd.timestamp.
	Clock clock.WithTicker
	// Retry paces the retries of a failed publication; the zero value
	// means DefaultPublishRetry.
	Retry wait.Backoff
	// Recorder receives an event for each pod the handoff did not give its
	// scheduled set; Metrics counts them. Both may be nil.
	Recorder record.EventRecorder
	Metrics  Recorder
}

// DefaultPublishRetry paces the retries of a failed node patch or
// PodResources read: 1s doubling up to 5 min, jittered, without end.
var DefaultPublishRetry = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: 5 * time.Minute}

// FieldManager is the field manager of every write to the Node: the
// server-side apply of the topology annotation and the labels, and the
// merge patch of the in-use annotation (an Update, tracked apart from the
// apply).
const FieldManager = "gpupack-device-plugin"

// Settings say what the publisher writes: the config's publish section
// and GPU Feature Discovery's flags.gfd.
type Settings struct {
	Topology, Labels, InUse bool
	// InUseInterval refreshes the in-use report periodically (0: never).
	InUseInterval time.Duration
	// RelabelInterval republishes the labels periodically, as GFD relabels
	// every --sleep-interval (flags.gfd.sleepInterval, default
	// DefaultRelabelInterval): nvidia.com/gfd.timestamp then says when the
	// labels were last confirmed. 0 publishes them only at start and on
	// each change (GFD's --oneshot).
	RelabelInterval time.Duration
	// LabelFile, when set, also receives the labels at each publication,
	// one key=value a line, replaced atomically (GFD's --output-file, the
	// file NFD's local source reads).
	LabelFile string
}

// DefaultRelabelInterval is GFD's default --sleep-interval.
const DefaultRelabelInterval = 60 * time.Second

// Publisher writes the gpupack.io/topology and gpupack.io/in-use annotations
// and the GPU labels on this plugin's Node, and only there.
type Publisher struct {
	opts Options
	kick chan struct{}

	// inUseMu orders the in-use rounds: a kubelet read, the metric and
	// report state it sets, and the patch of the report, one round at a
	// time. Without it, Run's round begun before an allocation could store
	// (and patch) its older read after a newer InUse call had.
	inUseMu sync.Mutex

	mu       sync.Mutex
	settings Settings
	reported map[types.UID]bool // pods already reported as not given their scheduled set
	seen     *gfd.Node          // the GFD facts whose unread host files were logged
	// malformed are the malformed device IDs logged and counted, while
	// the kubelet lists them: at most maxMalformed.
	malformed *deviceid.Reported
	// awaited are allocations an Allocate made that the kubelet's
	// PodResources answer has not listed yet, with a pod the lister
	// knows: at most maxAwaited (KickAllocated).
	awaited []awaited
	// applied is the topology annotation the last apply wrote ("" when it
	// wrote none); seenTopology is the node's annotation as last seen (an
	// apply's or in-use patch's response, a watch event, a dry-run read),
	// with its resourceVersion and when (seenAt zero: never). They tell
	// drift: the annotation changed on the Node by someone else
	// (selfheal.go).
	applied, seenTopology, seenRV string
	seenAt                        time.Time
	// drift is signalled when the node is seen with another annotation
	// than applied.
	drift chan struct{}
}

// awaited is an allocation of ids of resource the in-use report waits
// for, until a bound.
type awaited struct {
	resource string
	ids      []string
	until    time.Time
}

const (
	// allocatedRecheck paces the in-use reads while an allocation is
	// awaited (KickAllocated).
	allocatedRecheck = 200 * time.Millisecond
	// allocatedWait bounds how long an allocation is awaited: the kubelet
	// may fail the pod's admission after the Allocate (another resource
	// refused it), or the pod may end first.
	allocatedWait = 10 * time.Second
	// maxAwaited bounds Publisher.awaited.
	maxAwaited = 64
)

// maxMalformed bounds Publisher.malformed: the malformed device IDs of the
// kubelet's answer logged and counted, each once.
const maxMalformed = 1024

// firstSight reports whether g is new to the publisher (its unread host
// files are then logged once, not at each publication).
func (p *Publisher) firstSight(g *gfd.Node) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.seen != g
	p.seen = g
	return first
}

// Reasons of the events on pods.
const (
	// ReasonScheduledSetNotHonoured: the kubelet gave the pod devices
	// outside the set the scheduler chose for it.
	ReasonScheduledSetNotHonoured = "ScheduledDevicesNotHonoured"
)

// New returns a Publisher; Run starts it.
func New(o Options) *Publisher {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Retry.Duration <= 0 {
		o.Retry = DefaultPublishRetry
	}
	return &Publisher{
		opts: o, kick: make(chan struct{}, 1), drift: make(chan struct{}, 1), reported: map[types.UID]bool{}, malformed: deviceid.NewReported(maxMalformed),
		settings: Settings{Topology: o.Topology, Labels: o.Labels, InUse: o.InUse, InUseInterval: o.InUseInterval},
	}
}

// Reconfigure changes what is published (a reloaded config's publish
// section): the next node publication applies it, and the next Run uses
// its in-use settings. Labels or topology turned off are removed from the
// node (server-side apply drops the fields this manager no longer
// applies); the in-use annotation, a merge patch, keeps its last value.
func (p *Publisher) Reconfigure(s Settings) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settings = s
}

// Settings are what the publisher writes now.
func (p *Publisher) Settings() Settings {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.settings
}

// Kick asks for an in-use refresh (after an Allocate); it never blocks.
func (p *Publisher) Kick() {
	if p == nil {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// KickAllocated asks for an in-use refresh after an Allocate of
// containers' device IDs of resource (Kick), and for more, every
// allocatedRecheck, until the kubelet's PodResources answer lists those
// devices with a pod the lister knows, at most allocatedWait. The kubelet
// records an allocation only once the Allocate has answered, so the
// refresh Kick starts often reads before it: the report then lacked the
// running pod until the next periodic refresh, the scheduler saw its
// devices free meanwhile, and a pod not given its scheduled set that
// ended before that refresh was never told (event, metric). It never
// blocks.
func (p *Publisher) KickAllocated(resource string, containers [][]string) {
	if p == nil {
		return
	}
	if p.readsInUse() {
		until := p.opts.Clock.Now().Add(allocatedWait)
		p.mu.Lock()
		for _, ids := range containers {
			if len(ids) > 0 {
				p.awaited = append(p.awaited, awaited{resource: resource, ids: slices.Clone(ids), until: until})
			}
		}
		if n := len(p.awaited); n > maxAwaited {
			p.awaited = slices.Delete(p.awaited, 0, n-maxAwaited)
		}
		p.mu.Unlock()
	}
	p.Kick()
}

// awaiting reports whether an allocation is still awaited (KickAllocated),
// dropping those past their bound.
func (p *Publisher) awaiting(logger klog.Logger) bool {
	now := p.opts.Clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.awaited = slices.DeleteFunc(p.awaited, func(a awaited) bool {
		if !now.After(a.until) {
			return false
		}
		logger.V(2).Info("The kubelet's PodResources did not list an allocation in time; the periodic refresh reports it", "resource", a.resource, "devices", a.ids, "waited", allocatedWait)
		return true
	})
	return len(p.awaited) > 0
}

// settleAwaited drops the awaited allocations that allocated lists, each
// device under its resource, held by pods known (named in the report with
// their UID, and judged by notHonoured; any pod without a lister).
func (p *Publisher) settleAwaited(allocated map[types.NamespacedName]map[string]map[string][]string, known map[types.NamespacedName]*v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.awaited) == 0 {
		return // every refresh gets here: no index of the node's devices to build
	}
	holder := map[[2]string]types.NamespacedName{}
	for key, containers := range allocated {
		for _, byRes := range containers {
			for res, ids := range byRes {
				for _, id := range ids {
					holder[[2]string{res, id}] = key
				}
			}
		}
	}
	p.awaited = slices.DeleteFunc(p.awaited, func(a awaited) bool {
		for _, id := range a.ids {
			key, ok := holder[[2]string{a.resource, id}]
			if !ok || (p.opts.Pods != nil && known[key] == nil) {
				return false
			}
		}
		return true
	})
}

// Run publishes the node at start, on each health change and every
// RelabelInterval, and the in-use report on Kick and every InUseInterval,
// until ctx ends. A publication that fails is retried with backoff
// (DefaultPublishRetry) until it succeeds, so a node whose first patch
// failed (apiserver down, policy not loaded yet) is published once the
// apiserver answers, with or without an in-use loop. A topology
// annotation changed on the Node by someone else is restored once the
// publisher sees it (selfheal.go), also without the relabel loop.
func (p *Publisher) Run(ctx context.Context, src Source) {
	logger := klog.FromContext(ctx).WithValues("node", p.opts.NodeName)
	settings := p.Settings()
	var tick, relabel <-chan time.Time
	if settings.InUse && settings.InUseInterval > 0 {
		t := p.opts.Clock.NewTicker(settings.InUseInterval)
		defer t.Stop()
		tick = t.C()
	}
	if settings.Labels && settings.RelabelInterval > 0 {
		t := p.opts.Clock.NewTicker(settings.RelabelInterval)
		defer t.Stop()
		relabel = t.C()
	}
	// Without the relabel loop nothing applies the topology annotation
	// periodically: it is checked as often instead (selfheal.go).
	var check <-chan time.Time
	checkEvery := settings.RelabelInterval
	if checkEvery <= 0 {
		checkEvery = DefaultRelabelInterval
	}
	if settings.Topology && relabel == nil {
		t := p.opts.Clock.NewTicker(checkEvery)
		defer t.Stop()
		check = t.C()
	}
	heal := newRepairs(p.opts.Retry)
	defer heal.stop()
	resources := src.ResourceNames()
	backoff := p.opts.Retry
	nodeDirty, inUseDirty := true, true
	// Taken once and again only when it fires, before the next publish
	// reads the node: a change that comes beside a kick or a tick stays
	// ready for the next select, and one made meanwhile is in that read.
	changed := src.HealthChanged()
	for {
		if nodeDirty {
			if err := p.PublishNode(ctx, src.Node(), src.GFD()); err != nil {
				logger.Error(err, "Publishing the node (topology, labels or label file) failed")
			} else {
				nodeDirty = false
			}
		}
		if inUseDirty {
			if err := p.refreshInUse(ctx, resources, src.Node(), goneMIGParents(src)); err != nil {
				logger.Error(err, "Publishing the in-use report failed")
			} else {
				inUseDirty = false
			}
		}
		var retry <-chan time.Time
		var timer clock.Timer
		recheck := false
		if nodeDirty || inUseDirty {
			d := backoff.Step()
			logger.Info("Retrying the publication", "after", d)
			timer = p.opts.Clock.NewTimer(d)
			retry = timer.C()
		} else {
			backoff = p.opts.Retry
			// An Allocate's devices the kubelet has not listed yet.
			if recheck = p.awaiting(logger); recheck {
				timer = p.opts.Clock.NewTimer(allocatedRecheck)
				retry = timer.C()
			}
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-changed:
			nodeDirty = true
			changed = src.HealthChanged()
		case <-p.kick:
			inUseDirty = true
		case <-tick:
			inUseDirty = true
		case <-relabel:
			nodeDirty = true
		case <-check:
			p.checkTopology(ctx, checkEvery)
		case <-p.drift:
			if !nodeDirty {
				heal.arm(logger, p.opts.Clock)
			}
		case <-heal.due():
			heal.fired(p.opts.Clock.Now())
			if p.drifted() {
				logger.Info("The node's topology annotation was changed by someone else; restoring it")
				nodeDirty = true
			}
		case <-retry:
			inUseDirty = inUseDirty || recheck
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// goneMIGParents is src's memory of destroyed MIG devices' parents (nil
// when src keeps none).
func goneMIGParents(src Source) map[string]string {
	if g, ok := src.(GoneMIGSource); ok {
		return g.GoneMIGParents()
	}
	return nil
}

// refreshInUse reads the kubelet's allocations, reports pods the handoff did
// not give their scheduled set, and publishes the in-use report when asked to.
// gone are the parents of MIG devices destroyed under running pods
// (GoneMIGSource).
func (p *Publisher) refreshInUse(ctx context.Context, resources []string, node *topology.Node, gone map[string]string) error {
	if !p.readsInUse() {
		return nil
	}
	inUse := p.Settings().InUse
	p.inUseMu.Lock()
	defer p.inUseMu.Unlock()
	pods, err := p.inUse(ctx, resources, node, gone)
	if err != nil {
		return err
	}
	if !inUse {
		return nil
	}
	return p.patchInUse(ctx, pods)
}

// readsInUse reports whether the in-use refresh reads the kubelet's
// allocations: there is a PodResources API, and a report to publish or
// pods to judge (event, metric).
func (p *Publisher) readsInUse() bool {
	return p.opts.PodResources != nil && (p.Settings().InUse || p.opts.Recorder != nil || p.opts.Metrics != nil)
}

// PublishNode writes the topology annotation and the labels (GFD's, from
// g, and gpupack.io/nvlink) onto the node in one server-side apply by
// FieldManager, forced: the node then carries exactly what this apply
// holds of ours. A label (or the annotation) applied before and not now is
// removed, unless another manager also set it; labels and annotations of
// others are left alone. With neither published, the apply is empty and
// removes what an earlier one wrote. The apply never creates a Node: the
// device plugin may only patch (RBAC), so a Node that is gone is an error.
// With Settings.LabelFile set, the applied labels are then written there too
// (an error if the file cannot be written: Run retries the publication).
func (p *Publisher) PublishNode(ctx context.Context, n *topology.Node, g *gfd.Node) error {
	settings := p.Settings()
	ac := corev1ac.Node(p.opts.NodeName)
	if settings.Topology {
		s, err := protocol.EncodeTopology(n)
		if err != nil {
			return err
		}
		ac.WithAnnotations(map[string]string{protocol.TopologyAnnotation: s})
	}
	if settings.Labels {
		labels, errs := Labels(n, g, p.opts.Clock.Now())
		logger := klog.FromContext(ctx)
		for _, err := range errs {
			logger.Error(err, "A GPU Feature Discovery label is left out", "node", p.opts.NodeName)
		}
		if g != nil && p.firstSight(g) {
			for _, err := range g.Unread {
				logger.Info("A host file GPU Feature Discovery reads could not be read; its label says unknown", "node", p.opts.NodeName, "err", err)
			}
		}
		ac.WithLabels(labels)
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	node, err := p.opts.Client.CoreV1().Nodes().Apply(ctx, ac, opts)
	if err != nil {
		return fmt.Errorf("applying the labels and topology of node %s: %w", p.opts.NodeName, err)
	}
	p.setApplied(ac.Annotations[protocol.TopologyAnnotation])
	p.Observe(ctx, node)
	moved, err := p.takeOverLegacy(ctx, node)
	if err != nil {
		// The apply landed; the hand-over is tried again at the next one.
		klog.FromContext(ctx).Error(err, "Taking over an earlier gpupack's labels failed", "node", p.opts.NodeName)
	}
	if moved {
		// What the earlier gpupack wrote and this apply does not hold goes now.
		node, err := p.opts.Client.CoreV1().Nodes().Apply(ctx, ac, opts)
		if err != nil {
			return fmt.Errorf("applying the labels and topology of node %s: %w", p.opts.NodeName, err)
		}
		p.Observe(ctx, node)
	}
	if settings.Labels && settings.LabelFile != "" {
		// After the apply, with the labels it holds.
		return WriteLabelFile(settings.LabelFile, ac.Labels)
	}
	return nil
}

// PublishInUse reads the kubelet's PodResources API and patches the in-use
// report of the given resources (and node's devices under other names, as
// InUse) onto the node.
func (p *Publisher) PublishInUse(ctx context.Context, resources []string, node *topology.Node) error {
	p.inUseMu.Lock()
	defer p.inUseMu.Unlock()
	pods, err := p.inUse(ctx, resources, node, nil)
	if err != nil {
		return err
	}
	return p.patchInUse(ctx, pods)
}

func (p *Publisher) patchInUse(ctx context.Context, pods []protocol.PodDevices) error {
	s, err := protocol.EncodeInUse(pods)
	if err != nil {
		return err
	}
	return p.patch(ctx, map[string]any{"annotations": map[string]string{protocol.InUseAnnotation: s}})
}

// InUse asks the kubelet which pods hold devices of the given resources; a
// pod holding a device outside the set the scheduler chose for it carries
// that set (Scheduled), and is reported once with an event and a metric.
//
// With node, a device held under another resource name counts too when its
// ID names one of node's GPUs or MIG devices (a replica <UUID>::<n> by its
// UUID): the kubelet keeps a running pod's devices under the name they were
// allocated under, and a config reload (renameByDefault, a rename, another
// MIG strategy) serves the same devices under a new name. Dropping them
// would show the scheduler those GPUs free while the pods run on them.
//
// Calls and Run's rounds take turns: the per-pod metric always holds the
// latest read's devices.
func (p *Publisher) InUse(ctx context.Context, resources []string, node *topology.Node) ([]protocol.PodDevices, error) {
	p.inUseMu.Lock()
	defer p.inUseMu.Unlock()
	return p.inUse(ctx, resources, node, nil)
}

// inUse is InUse with inUseMu held; gone as refreshInUse's.
func (p *Publisher) inUse(ctx context.Context, resources []string, node *topology.Node, gone map[string]string) ([]protocol.PodDevices, error) {
	if p.opts.PodResources == nil {
		return nil, errors.New("no PodResources API")
	}
	allocated, err := p.opts.PodResources.Allocated(ctx)
	if err != nil {
		return nil, err
	}
	return p.report(ctx, allocated, ownedBy(resources, node, gone), gone), nil
}

// ownedBy reports whether a device held under a resource is one of the
// node's: the resource is one of resources, or the ID names a GPU or MIG
// device of node (nil: resources alone), or a MIG device of gone (destroyed
// under its pod). Other plugins' devices (a NIC) stay out.
func ownedBy(resources []string, node *topology.Node, gone map[string]string) func(res, id string) bool {
	uuids := map[string]bool{}
	for mig := range gone {
		uuids[mig] = true
	}
	if node != nil {
		for _, g := range node.GPUs {
			uuids[g.UUID] = true
		}
		for _, m := range node.MIG {
			uuids[m.UUID] = true
		}
	}
	return func(res, id string) bool {
		if slices.Contains(resources, res) {
			return true
		}
		uuid, _ := deviceid.UUIDOf(id)
		return uuids[uuid]
	}
}

func (p *Publisher) report(ctx context.Context, allocated map[types.NamespacedName]map[string]map[string][]string, ours func(res, id string) bool, gone map[string]string) []protocol.PodDevices {
	byName := map[types.NamespacedName]*v1.Pod{}
	if p.opts.Pods != nil {
		if pods, err := p.opts.Pods.List(labels.Everything()); err == nil {
			for _, pod := range pods {
				byName[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}] = pod
			}
		}
	}
	var out []protocol.PodDevices
	var podDevices, malformed []PodDevice
	present := map[types.UID]bool{}
	for key, containers := range allocated {
		held := map[string][]string{}
		for container, byRes := range containers {
			for res, ids := range byRes {
				for _, id := range ids {
					if !ours(res, id) {
						continue // another plugin's device (a NIC): not ours to report, nor to judge
					}
					d := PodDevice{Namespace: key.Namespace, Pod: key.Name, Container: container, Resource: res, Device: id}
					// An ID the in-use payload refuses
					// (protocol.ValidateInUseDevice: empty, too long, a
					// space, control or invalid character) would make
					// EncodeInUse refuse the whole report, and Run retry it
					// without end while the scheduler keeps the last report
					// (GPUs of finished pods counted used). It is left out
					// alone, which loses nothing real: it is none of the
					// node's devices. Every ID the plugin serves is valid
					// (GPU and MIG UUIDs pass deviceid.ValidateUUID at
					// discovery; a replica ID adds "::<n>" within
					// deviceid.MaxLen), Allocate refuses any other ID, and
					// no report could ever carry it (DecodeInUse refuses it
					// too), so the scheduler never counted it. ours cannot
					// tell: it keeps any ID under the plugin's names, and
					// under other names an ID whose UUID part is the
					// node's, as in "<UUID>::1 x". The per-pod metric
					// leaves it out too (a label value that is not valid
					// UTF-8 fails the whole scrape).
					if protocol.ValidateInUseDevice(id) != nil {
						malformed = append(malformed, d)
						continue
					}
					held[res] = append(held[res], id)
					podDevices = append(podDevices, d)
				}
			}
		}
		if len(held) == 0 {
			continue
		}
		pd := protocol.PodDevices{PodRef: protocol.PodRef{Namespace: key.Namespace, Name: key.Name}}
		for _, res := range slices.Sorted(maps.Keys(held)) {
			pd.Devices = append(pd.Devices, held[res]...)
		}
		pd.Devices = withGoneParents(pd.Devices, gone)
		if pod := byName[key]; pod != nil {
			pd.UID = string(pod.UID)
			present[pod.UID] = true
			pd.Scheduled = p.notHonoured(ctx, pod, held)
		}
		out = append(out, pd)
	}
	if p.opts.Metrics != nil {
		p.opts.Metrics.SetPodDevices(podDevices)
	}
	p.mu.Lock()
	for uid := range p.reported {
		if !present[uid] {
			delete(p.reported, uid)
		}
	}
	p.mu.Unlock()
	p.noteMalformed(ctx, malformed)
	p.settleAwaited(allocated, byName)
	return out
}

// withGoneParents is ids and, after them, the parent GPU of each MIG device
// (or replica of one) of ids that gone names, once each: the GPU the device
// plugin withholds whole for the pod (GoneMIGSource).
func withGoneParents(ids []string, gone map[string]string) []string {
	for _, id := range ids {
		uuid, _ := deviceid.UUIDOf(id)
		if parent, ok := gone[uuid]; ok && !slices.Contains(ids, parent) {
			ids = append(ids, parent)
		}
	}
	return ids
}

// noteMalformed logs and counts each malformed device ID of the kubelet's
// answer (by resource and ID) the first time the answer lists it, up to
// maxMalformed of them at once, and then says once that it logs no more
// of them. An ID the answer no longer lists is forgotten (and noted again
// should it come back): deviceid.Reported.
func (p *Publisher) noteMalformed(ctx context.Context, malformed []PodDevice) {
	listed := make([]deviceid.Held, len(malformed))
	for i, d := range malformed {
		listed[i] = deviceid.Held{Resource: d.Resource, ID: d.Device}
	}
	p.mu.Lock()
	report, tooMany := p.malformed.Listed(listed)
	p.mu.Unlock()
	logger := klog.FromContext(ctx)
	for _, j := range report {
		d := malformed[j]
		err := protocol.ValidateInUseDevice(d.Device)
		logger.Info("The kubelet's PodResources lists a malformed device ID; leaving it out of the in-use report", "node", p.opts.NodeName,
			"pod", klog.KRef(deviceid.Prefix(d.Namespace, deviceid.MaxQuoted), deviceid.Prefix(d.Pod, deviceid.MaxQuoted)),
			"container", deviceid.Quote(d.Container), "resource", deviceid.Quote(d.Resource), "device", deviceid.Quote(d.Device), "problem", err)
		if p.opts.Metrics != nil {
			p.opts.Metrics.MalformedDevice(d.Resource)
		}
	}
	if tooMany {
		logger.Info("The kubelet's PodResources lists more malformed device IDs than are logged; not logging or counting further ones", "node", p.opts.NodeName,
			"listed", len(malformed), "logged", maxMalformed)
	}
}

// notHonoured returns the scheduler's set of the pod when the pod holds a
// device of a resource outside it (a pod still being admitted holds a
// subset), nil otherwise; the first time, it records an event and counts it.
func (p *Publisher) notHonoured(ctx context.Context, pod *v1.Pod, held map[string][]string) []string {
	s, ok := pod.Annotations[protocol.DevicesAnnotation]
	if !ok {
		return nil // another scheduler's pod: no choice to honour
	}
	choice, err := protocol.DecodeDevices(s)
	if err != nil {
		return nil // reported by the handoff, which ignores it
	}
	var scheduled, missed []string
	for _, res := range slices.Sorted(maps.Keys(held)) {
		want, ok := choice.Resources[res]
		if !ok {
			continue
		}
		for _, id := range held[res] {
			if !slices.Contains(want, id) {
				missed = append(missed, res)
				scheduled = append(scheduled, want...)
				break
			}
		}
	}
	if len(missed) == 0 {
		return nil
	}
	p.mu.Lock()
	first := !p.reported[pod.UID]
	p.reported[pod.UID] = true
	p.mu.Unlock()
	if first {
		klog.FromContext(ctx).Info("The pod did not get the devices the scheduler chose", "pod", klog.KObj(pod), "resources", missed, "held", held, "scheduled", scheduled)
		for _, res := range missed {
			if p.opts.Metrics != nil {
				p.opts.Metrics.HandoffNotHonoured(res)
			}
		}
		if p.opts.Recorder != nil {
			p.opts.Recorder.Eventf(pod, v1.EventTypeWarning, ReasonScheduledSetNotHonoured,
				"The kubelet gave %s devices %v; the scheduler chose %v (the node's in-use report corrects the scheduler's view)",
				strings.Join(missed, ","), held, scheduled)
		}
	}
	return scheduled
}

func (p *Publisher) patch(ctx context.Context, meta map[string]any) error {
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return fmt.Errorf("encoding node patch: %w", err)
	}
	node, err := p.opts.Client.CoreV1().Nodes().Patch(ctx, p.opts.NodeName, types.MergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("patching node %s: %w", p.opts.NodeName, err)
	}
	// The response is the whole Node: its topology annotation is checked
	// at no extra request.
	p.Observe(ctx, node)
	return nil
}
