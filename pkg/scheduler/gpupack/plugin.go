// Package gpupack is the GPUPack kube-scheduler framework plugin: it
// chooses nodes and exact devices by NVLink topology and fragmentation
// (pkg/score), and hands its choice to the device plugin through the
// gpupack.io/devices pod annotation (DESIGN.md sections 4, 5, 7).
package gpupack

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	configv1 "github.com/gpupack/gpupack/pkg/scheduler/apis/config/v1"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config/validation"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
)

// Name is the plugin's name in the registry and in configuration.
const Name = "GPUPack"

// GPUPack is the plugin.
type GPUPack struct {
	handle    fwk.Handle
	workload  *score.Workload
	cache     gpucache.Interface
	policy    score.ReplicaPolicy
	hint      score.TopologyHint
	now       func() time.Time
	rank      score.Rank
	resources resourceNames
	// requestIDs number one-request pods' requests for the nodes' last
	// plans (planFor).
	requestIDs requestIDs
	// synced: the cache's informer handlers have read the initial lists
	// (nil: no informers, nothing to wait for). PreFilter waits for it.
	synced *syncGate
	// extenderChecked are the published resource names already checked
	// against the binding extenders (warnBindingExtenders; name -> true).
	extenderChecked sync.Map
	// devicesReported: the pods' gpupack.io/devices values already
	// reported as not counted (onPod).
	devicesReported devicesReported
}

var (
	_ fwk.PreFilterPlugin   = &GPUPack{}
	_ fwk.FilterPlugin      = &GPUPack{}
	_ fwk.PreScorePlugin    = &GPUPack{}
	_ fwk.ScorePlugin       = &GPUPack{}
	_ fwk.ScoreExtensions   = &GPUPack{}
	_ fwk.ReservePlugin     = &GPUPack{}
	_ fwk.BindPlugin        = &GPUPack{}
	_ fwk.EnqueueExtensions = &GPUPack{}
)

// Name returns the plugin's name.
func (pl *GPUPack) Name() string { return Name }

// New builds the plugin from its args (internal or v1 GPUPackArgs, or nil
// for the defaults). Invalid args fail with every error.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	return NewWithClock(ctx, obj, h, time.Now)
}

// NewWithClock is New with a clock (for gpupack.io/assumed-at in tests).
func NewWithClock(ctx context.Context, obj runtime.Object, h fwk.Handle, now func() time.Time) (*GPUPack, error) {
	pl, err := build(obj, h, now)
	if err != nil {
		return nil, err
	}
	registerMetrics()
	current.Store(pl)
	if h != nil && h.SharedInformerFactory() != nil {
		c, g, fresh := sharedCache(ctx, h.SharedInformerFactory())
		pl.cache, pl.synced = c, g
		// Every profile's names: foreign pods' requests on nodes without
		// a resource table are read with them (the build's own cache
		// learnt them already).
		c.AddArgsNames(pl.resources.cacheNames())
		if fresh { // the first instance on this factory feeds the cache
			if err := pl.watch(ctx, h, g); err != nil {
				dropSharedCache(h.SharedInformerFactory(), c)
				return nil, err
			}
		}
	}
	klog.FromContext(ctx).V(2).Info("GPUPack plugin ready", "fragmentationWeight", pl.rank.FragWeight, "topologyWeight", pl.rank.TopoWeight,
		"replicaPolicy", pl.policy, "defaultTopology", pl.hint, "workloadTypes", len(pl.workload.Distribution().Types))
	return pl, nil
}

// build makes the plugin from its args, without metrics or informers
// (NewWithClock adds them; Explain needs neither).
func build(obj runtime.Object, h fwk.Handle, now func() time.Time) (*GPUPack, error) {
	args, err := toArgs(obj)
	if err != nil {
		return nil, err
	}
	if errs := validation.ValidateGPUPackArgs(nil, args); len(errs) > 0 {
		return nil, fmt.Errorf("invalid %s args: %w", Name, errs.ToAggregate())
	}
	wo, err := args.Workload.Options() // validated: no error
	if err != nil {
		return nil, fmt.Errorf("invalid %s args: workload.%w", Name, err)
	}
	wl, err := score.NewWorkload(wo)
	if err != nil {
		return nil, fmt.Errorf("invalid %s args: workload: %w", Name, err)
	}
	hint, _ := protocol.ParseTopologyHint(string(args.DefaultTopology))
	pl := &GPUPack{
		handle: h, workload: wl, cache: gpucache.New(), hint: hint, now: now,
		rank:      score.Rank{Resolution: score.DefaultResolution, FragWeight: args.FragmentationWeight, TopoWeight: args.TopologyWeight},
		resources: resourceNames{whole: args.WholeResource, shared: args.SharedResource, migPrefix: args.MIGResourcePrefix},
	}
	if args.ReplicaPolicy == config.ReplicaPolicySpread {
		pl.policy = score.Spread
	}
	pl.cache.AddArgsNames(pl.resources.cacheNames())
	return pl, nil
}

// toArgs is the plugin's args, defaulted (configv1.ToInternal).
func toArgs(obj runtime.Object) (*config.GPUPackArgs, error) {
	args, ok, err := configv1.ToInternal(obj)
	if !ok {
		return nil, fmt.Errorf("want args of type GPUPackArgs, got %T", obj)
	}
	return args, err
}

// watch feeds the cache from the node and pod informers; g learns the
// handlers' registrations, to tell when they have synced.
func (pl *GPUPack) watch(ctx context.Context, h fwk.Handle, g *syncGate) error {
	logger := klog.FromContext(ctx)
	f := h.SharedInformerFactory()
	nodes, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.onNode(logger, obj) },
		UpdateFunc: func(_, obj any) { pl.onNode(logger, obj) },
		DeleteFunc: func(obj any) {
			if n, ok := unwrap[*v1.Node](obj); ok {
				pl.cache.RemoveNode(n.Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("node informer: %w", err)
	}
	pods, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.onPod(logger, obj) },
		UpdateFunc: func(_, obj any) { pl.onPod(logger, obj) },
		DeleteFunc: func(obj any) {
			if p, ok := unwrap[*v1.Pod](obj); ok {
				pl.cache.Forget(p.UID)
				pl.devicesReported.forget(p.UID)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("pod informer: %w", err)
	}
	g.set(nodes, pods)
	return nil
}

func (pl *GPUPack) onNode(logger klog.Logger, obj any) {
	n, ok := unwrap[*v1.Node](obj)
	if !ok {
		return
	}
	topoErr, inUseErr := pl.cache.UpdateNode(n)
	if _, has := n.Annotations[protocol.TopologyAnnotation]; has && topoErr != nil {
		logger.Error(topoErr, "Node's GPU topology annotation is unreadable; the node gets no GPU pods", "node", klog.KObj(n))
		pl.warn(n, "GPUTopologyUnreadable", topoErr)
	}
	if inUseErr != nil {
		logger.Error(inUseErr, "Node's GPU in-use report is unreadable; the node gets no GPU pods until it is fixed", "node", klog.KObj(n))
		pl.warn(n, "GPUInUseUnreadable", inUseErr)
	}
	pl.warnBindingExtenders(logger, n)
}

// warn records a Warning event on obj (a node, a pod), its note cut to what
// the apiserver stores (corevalidation.NoteLengthLimit, 1 KiB: a longer one
// is refused and no event recorded), as kube-scheduler cuts
// FailedScheduling's.
func (pl *GPUPack) warn(obj runtime.Object, reason string, err error) {
	if pl.handle == nil {
		return
	}
	if r := pl.handle.EventRecorder(); r != nil {
		r.Eventf(obj, nil, v1.EventTypeWarning, reason, "Scheduling", "%s", cutNote(fmt.Sprintf("%s: %v", Name, err)))
	}
}

// cutNote is note cut to corevalidation.NoteLengthLimit bytes on a rune
// boundary, ending in " ..." when cut.
func cutNote(note string) string {
	if len(note) <= corevalidation.NoteLengthLimit {
		return note
	}
	const suffix = " ..."
	return deviceid.Prefix(note, corevalidation.NoteLengthLimit-len(suffix)) + suffix
}

func (pl *GPUPack) onPod(logger klog.Logger, obj any) {
	p, ok := unwrap[*v1.Pod](obj)
	if !ok {
		return
	}
	err := pl.cache.AddPod(p)
	if err == nil {
		pl.devicesReported.forget(p.UID)
		return
	}
	if !pl.devicesReported.first(p.UID, p.Annotations[protocol.DevicesAnnotation]) {
		logger.V(4).Info("Device annotation still not counted", "pod", klog.KObj(p), "err", err)
		return
	}
	logger.Error(err, "Device annotation not counted: the pod's GPU requests are counted as held, on devices unknown until the node's in-use report names them", "pod", klog.KObj(p))
	pl.warn(p, ReasonDevicesAnnotationIgnored, err)
}

func unwrap[T any](obj any) (T, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	t, ok := obj.(T)
	return t, ok
}
