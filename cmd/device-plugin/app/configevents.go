package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
)

// Reasons of the config's Node events beside deviceplugin's
// (DevicePluginConfigRefused).
const (
	// ReasonConfigNotServed: the config runs, as NVIDIA's plugin would run
	// it, but a field of it is not served as written (a sharing section
	// ignored, so whole GPUs are advertised instead of replicas; resources
	// renamed by pattern; ...): configv1.Warning.NotServed.
	ReasonConfigNotServed = "DevicePluginConfigNotServed"
	actionLoadConfig      = "LoadConfig"
	// ReasonConfigLabelUnknown: the node's config label names none of the
	// chart's per-node configs (a typo): the node runs the default
	// DaemonSet's config.
	ReasonConfigLabelUnknown = "DevicePluginConfigUnknown"
	actionChooseConfig       = "ChooseConfig"
	// ReasonRebuildFailed: the plugin could not be rebuilt (a config
	// reload, a rediscovery): the running devices are served again until
	// the retry.
	ReasonRebuildFailed = "DevicePluginRebuildFailed"
	actionRebuild       = "Rebuild"
	// ReasonConfigTrialFailed: a new per-node config could not be tried
	// on the node (its trial build's discovery failed, no fault of the
	// config): it is not refused but tried again, the running config
	// served until then.
	ReasonConfigTrialFailed = "DevicePluginConfigTrialFailed"
	// actionReloadConfig is deviceplugin's action of ConfigRefused.
	actionReloadConfig = "ReloadConfig"
)

// rebuildEvents records the failed rebuilds and trial builds on the Node
// (nodeConfigEvents).
type rebuildEvents interface {
	RebuildFailed(err error, retryIn time.Duration)
	ConfigTrialFailed(name, running string, err error, retryIn time.Duration)
}

// maxEventNote is the longest note events.k8s.io/v1 takes (bytes).
const maxEventNote = 1024

// nodeConfigEvents records the config's events on the Node: deviceplugin's
// (ConfigRefused) and this command's, through the same recorder.
type nodeConfigEvents struct {
	*deviceplugin.NodeEvents
	recorder events.EventRecorder
	node     *corev1.ObjectReference
}

var (
	_ configEvents  = (*nodeConfigEvents)(nil)
	_ rebuildEvents = (*nodeConfigEvents)(nil)
)

// newNodeConfigEvents records on the Node named node, referred to as
// deviceplugin.NewNodeEvents refers to it (its UID is its name).
func newNodeConfigEvents(ne *deviceplugin.NodeEvents, recorder events.EventRecorder, node string) *nodeConfigEvents {
	return &nodeConfigEvents{NodeEvents: ne, recorder: recorder, node: &corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node)}}
}

// ConfigNotServed records a Warning event: config runs, but w's field is
// not served as written.
func (e *nodeConfigEvents) ConfigNotServed(config string, w configv1.Warning) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonConfigNotServed, actionLoadConfig, "%s", notServedNote(config, w))
}

// notServedNote is the note of a ConfigNotServed event, cut to what the
// apiserver takes.
func notServedNote(config string, w configv1.Warning) string {
	return cutNote(fmt.Sprintf("device plugin config %s is %s: %s [%s; the plugin runs with it, as NVIDIA's plugin would; its log: %q]",
		config, notServedAsConfigured, w, w.Kind, configWarningMessage))
}

// ConfigLabelUnknown records a Warning event: the node's label names none
// of the per-node configs, so the node runs the default config.
func (e *nodeConfigEvents) ConfigLabelUnknown(label, value string, configs []string) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonConfigLabelUnknown, actionChooseConfig, "%s", labelUnknownNote(label, value, configs))
}

// RebuildFailed records a Warning event: the plugin could not be rebuilt
// (err) and serves the running devices until it retries, in retryIn.
func (e *nodeConfigEvents) RebuildFailed(err error, retryIn time.Duration) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonRebuildFailed, actionRebuild, "%s",
		cutNote(fmt.Sprintf("device plugin rebuild failed, still serving the running devices; retrying in %s: %v", retryIn, err)))
}

// ConfigTrialFailed records a Warning event: the per-node config name could
// not be tried on the node (err, no fault of the config); it is not
// refused, and is tried again in retryIn, running served meanwhile.
func (e *nodeConfigEvents) ConfigTrialFailed(name, running string, err error, retryIn time.Duration) {
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, ReasonConfigTrialFailed, actionReloadConfig, "%s",
		cutNote(fmt.Sprintf("device plugin config %q not refused: trying it on the node failed, still serving config %q; retrying in %s: %v", name, running, retryIn, err)))
}

func labelUnknownNote(label, value string, configs []string) string {
	return cutNote(fmt.Sprintf("node label %s=%s names none of the per-node device plugin configs (%s): this node runs the default config; "+
		"correct the label, or add the config to the chart's devicePlugin.config.perNode", label, value, strings.Join(configs, ", ")))
}

func cutNote(s string) string {
	if len(s) <= maxEventNote {
		return s
	}
	return strings.ToValidUTF8(s[:maxEventNote-3], "") + "..."
}

// configLabelCheckEvery is how often the default DaemonSet's plugin reads
// its node's config label (watchConfigLabel). Each read is one dry-run
// request; a label set to a per-node config's name moves the node to that
// config's DaemonSet (the DaemonSet controller replaces this pod).
var configLabelCheckEvery = 5 * time.Minute

// nodeReader reads a Node.
type nodeReader interface {
	Node(ctx context.Context, name string) (*corev1.Node, error)
}

// dryRunNodeReader reads a Node through an empty merge patch in dry-run
// mode, the patch verb the plugin has for its own node (rbac.yaml grants
// no get of Nodes, and list/watch of every Node only with per-node configs
// of --config-file-srcdir): nothing is written, and node-patch-policy.yaml
// admits it (no change, the plugin's own node).
type dryRunNodeReader struct {
	client kubernetes.Interface
}

func (r dryRunNodeReader) Node(ctx context.Context, name string) (*corev1.Node, error) {
	return r.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte("{}"), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
}

// watchConfigLabel, in the default DaemonSet of the chart's per-node
// configs, reads node's label now and every `every`, until ctx ends: a
// value that names none of configs (a typo: a100-mgi) is logged as an
// error and recorded as a Warning event, once until the value changes.
// Such a node runs the default config (the DaemonSets choose their nodes
// by the label: the default one takes every node whose label names none
// of the others), which nothing else would tell.
func watchConfigLabel(ctx context.Context, r nodeReader, node, label string, configs []string, ev configEvents, every time.Duration) {
	logger := klog.FromContext(ctx)
	warned := ""
	check := func() {
		rctx, cancel := context.WithTimeout(ctx, publishedReadTimeout)
		defer cancel()
		n, err := r.Node(rctx, node)
		if err != nil {
			if ctx.Err() == nil {
				logger.Error(err, "Reading the node's config label failed: a label naming no per-node config goes unnoticed meanwhile", "node", node, "label", label)
			}
			return
		}
		v := n.Labels[label]
		if v == "" || slices.Contains(configs, v) {
			warned = ""
			return
		}
		if v == warned {
			return
		}
		warned = v
		logger.Error(nil, "Node label names none of the per-node configs: this node runs the default config",
			"node", node, "label", label, "value", v, "configs", configs)
		if ev != nil {
			ev.ConfigLabelUnknown(label, v, configs)
		}
	}
	wait.UntilWithContext(ctx, func(context.Context) { check() }, every)
}
