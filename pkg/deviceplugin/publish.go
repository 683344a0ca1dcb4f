package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/utils/clock"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Node labels, GFD-compatible where GFD has one.
const (
	LabelProduct    = "nvidia.com/gpu.product"
	LabelCount      = "nvidia.com/gpu.count"
	LabelMemory     = "nvidia.com/gpu.memory"
	LabelMIGCapable = "nvidia.com/mig.capable"
	LabelClique     = "nvidia.com/gpu.clique"
	LabelNVLink     = "gpupack.io/nvlink"
)

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	Client   kubernetes.Interface
	NodeName string
	// PodResourcesSocket is the kubelet's PodResources API socket
	// (/var/lib/kubelet/pod-resources/kubelet.sock on a node).
	PodResourcesSocket string
	// Pods resolves pod UIDs for the in-use report; may be nil.
	Pods PodLister
	// What to publish.
	Topology, Labels, InUse bool
	// InUseInterval refreshes the in-use report periodically.
	InUseInterval time.Duration
	Clock         clock.WithTicker
}

// Publisher writes the gpupack.io/topology and gpupack.io/in-use annotations
// and the GPU labels on this plugin's Node, and only there.
type Publisher struct {
	opts PublisherOptions
	kick chan struct{}
}

// NewPublisher returns a Publisher; Run starts it.
func NewPublisher(o PublisherOptions) *Publisher {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &Publisher{opts: o, kick: make(chan struct{}, 1)}
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

// Run publishes the node at start and on each health change, and the in-use
// report on Kick and every InUseInterval, until ctx ends.
func (p *Publisher) Run(ctx context.Context, m *Manager) {
	logger := klog.FromContext(ctx).WithValues("node", p.opts.NodeName)
	var tick <-chan time.Time
	if p.opts.InUse && p.opts.InUseInterval > 0 {
		t := p.opts.Clock.NewTicker(p.opts.InUseInterval)
		defer t.Stop()
		tick = t.C()
	}
	resources := make([]string, 0, len(m.Plugins()))
	for _, pl := range m.Plugins() {
		resources = append(resources, pl.Name())
	}
	inUse := func() {
		if !p.opts.InUse {
			return
		}
		if err := p.PublishInUse(ctx, resources); err != nil {
			logger.Error(err, "Publishing the in-use report failed")
		}
	}
	inUse()
	for {
		changed := m.Health().Changed()
		if err := p.PublishNode(ctx, m.Node(), m.MIGCapable()); err != nil {
			logger.Error(err, "Publishing the node's topology failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-p.kick:
			inUse()
		case <-tick:
			inUse()
		}
	}
}

// PublishNode patches the topology annotation and the labels onto the node.
func (p *Publisher) PublishNode(ctx context.Context, n *topology.Node, migCapable bool) error {
	meta := map[string]any{}
	if p.opts.Topology {
		s, err := topology.Encode(n)
		if err != nil {
			return err
		}
		meta["annotations"] = map[string]string{topology.AnnotationKey: s}
	}
	if p.opts.Labels {
		meta["labels"] = Labels(n, migCapable)
	}
	if len(meta) == 0 {
		return nil
	}
	return p.patch(ctx, meta)
}

// PublishInUse reads the kubelet's PodResources API and patches the in-use
// report of the given resources onto the node.
func (p *Publisher) PublishInUse(ctx context.Context, resources []string) error {
	pods, err := p.InUse(ctx, resources)
	if err != nil {
		return err
	}
	s, err := protocol.EncodeInUse(pods)
	if err != nil {
		return err
	}
	return p.patch(ctx, map[string]any{"annotations": map[string]string{protocol.InUseAnnotation: s}})
}

// InUse asks the kubelet which pods hold devices of the given resources.
func (p *Publisher) InUse(ctx context.Context, resources []string) ([]protocol.PodDevices, error) {
	conn, err := grpc.NewClient("unix://"+p.opts.PodResourcesSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connecting to PodResources at %s: %w", p.opts.PodResourcesSocket, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	resp, err := podresourcesv1.NewPodResourcesListerClient(conn).List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing pod resources at %s: %w", p.opts.PodResourcesSocket, err)
	}
	return p.report(resp, resources), nil
}

func (p *Publisher) report(resp *podresourcesv1.ListPodResourcesResponse, resources []string) []protocol.PodDevices {
	uids := map[types.NamespacedName]string{}
	if p.opts.Pods != nil {
		if pods, err := p.opts.Pods.List(labels.Everything()); err == nil {
			for _, pod := range pods {
				uids[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}] = string(pod.UID)
			}
		}
	}
	var out []protocol.PodDevices
	for _, pr := range resp.GetPodResources() {
		var devs []string
		for _, c := range pr.GetContainers() {
			for _, d := range c.GetDevices() {
				if slices.Contains(resources, d.GetResourceName()) {
					devs = append(devs, d.GetDeviceIds()...)
				}
			}
		}
		if len(devs) == 0 {
			continue
		}
		key := types.NamespacedName{Namespace: pr.GetNamespace(), Name: pr.GetName()}
		out = append(out, protocol.PodDevices{PodRef: protocol.PodRef{Namespace: key.Namespace, Name: key.Name, UID: uids[key]}, Devices: devs})
	}
	return out
}

func (p *Publisher) patch(ctx context.Context, meta map[string]any) error {
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return fmt.Errorf("encoding node patch: %w", err)
	}
	_, err = p.opts.Client.CoreV1().Nodes().Patch(ctx, p.opts.NodeName, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "gpupack-device-plugin"})
	if err != nil {
		return fmt.Errorf("patching node %s: %w", p.opts.NodeName, err)
	}
	return nil
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Labels are the node labels for n: GFD-compatible product, count, memory
// (MiB), MIG capability and clique, plus gpupack.io/nvlink.
func Labels(n *topology.Node, migCapable bool) map[string]string {
	out := map[string]string{LabelCount: strconv.Itoa(len(n.GPUs)), LabelNVLink: NVLinkKind(n)}
	if len(n.GPUs) > 0 {
		g := n.GPUs[0]
		product := strings.Trim(labelUnsafe.ReplaceAllString(g.Model, "-"), "-_.")
		if len(product) > 63 {
			product = strings.Trim(product[:63], "-_.")
		}
		out[LabelProduct] = product
		out[LabelMemory] = strconv.FormatUint(g.MemoryMiB, 10)
	}
	out[LabelMIGCapable] = strconv.FormatBool(migCapable || len(n.MIG) > 0)
	if n.Clique != "" {
		out[LabelClique] = n.Clique
	}
	return out
}

// NVLinkKind classifies the node: switch (any NVSwitch link), mesh (a GPU
// has NVLink to two or more others), pairs (NVLink bridges between pairs),
// none.
func NVLinkKind(n *topology.Node) string {
	kind := "none"
	for i := range n.Links {
		peers := 0
		for j, l := range n.Links[i] {
			if i == j {
				continue
			}
			switch l.Class {
			case topology.ClassNVSwitch:
				return "switch"
			case topology.ClassNVLink:
				peers++
			}
		}
		switch {
		case peers >= 2:
			kind = "mesh"
		case peers == 1 && kind == "none":
			kind = "pairs"
		}
	}
	return kind
}
