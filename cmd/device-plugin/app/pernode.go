package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Per-node configs, as NVIDIA's config manager does them: a ConfigMap of
// named configs mounted as a directory (one file per name), and the node
// label nvidia.com/device-plugin.config naming the one for this node. The
// plugin re-reads the choice when the label or the ConfigMap changes and
// restarts its resources with the new config.
const (
	// DefaultConfigLabel is NVIDIA's node label naming a node's config.
	DefaultConfigLabel = "nvidia.com/device-plugin.config"
	// Fallback strategies when the label names no config (NVIDIA's names).
	fallbackNamed  = "named"  // the --default-config name
	fallbackSingle = "single" // the only config in the directory
	fallbackEmpty  = "empty"  // an empty config (the defaults)
)

// perNode says how a node's config is chosen.
type perNode struct {
	dir        string   // the mounted ConfigMap: one file per named config
	label      string   // the node label naming the config
	defaultCfg string   // the name used when the label is absent
	fallbacks  []string // tried in order when the label is absent
}

// choice is a chosen config: its name and content ("" name: empty config).
type choice struct {
	name string
	data []byte
}

// same reports whether c (nil: none) is the config next: the same name
// and the same bytes.
func (c *choice) same(next choice) bool {
	return c != nil && c.name == next.name && bytes.Equal(c.data, next.data)
}

// configNames lists the named configs in dir: regular files (or links to
// them), without the ..data entries a ConfigMap volume holds.
func configNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the configs in %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && st.Mode().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// choose picks the config for a node whose label value is label ("" when
// the node has none): the named config, else the fallbacks in order. A
// label naming a config that does not exist is an error (NVIDIA's config
// manager fails too), as is no fallback applying.
func (pn *perNode) choose(label string) (choice, error) {
	names, err := configNames(pn.dir)
	if err != nil {
		return choice{}, err
	}
	read := func(name string) (choice, error) {
		data, err := os.ReadFile(filepath.Join(pn.dir, name))
		if err != nil {
			return choice{}, fmt.Errorf("reading config %q: %w", name, err)
		}
		return choice{name: name, data: data}, nil
	}
	if label != "" {
		if !slices.Contains(names, label) {
			return choice{}, fmt.Errorf("node label %s=%s names no config in %s (configs: %s)", pn.label, label, pn.dir, strings.Join(names, ", "))
		}
		return read(label)
	}
	for _, f := range pn.fallbacks {
		switch f {
		case fallbackNamed:
			if pn.defaultCfg != "" && slices.Contains(names, pn.defaultCfg) {
				return read(pn.defaultCfg)
			}
		case fallbackSingle:
			if len(names) == 1 {
				return read(names[0])
			}
		case fallbackEmpty:
			return choice{}, nil
		}
	}
	return choice{}, &noFallbackError{pn: pn, names: names}
}

// noFallbackError: no label names a config and no fallback applies.
type noFallbackError struct {
	pn    *perNode
	names []string // the configs in the directory
}

func (e *noFallbackError) Error() string {
	return fmt.Sprintf("node has no %s label and no fallback applies (%s)", e.pn.label, e.fallbacks())
}

func (e *noFallbackError) fallbacks() string {
	return fmt.Sprintf("strategies %s; default config %q; configs: %s",
		strings.Join(e.pn.fallbacks, ","), e.pn.defaultCfg, strings.Join(e.names, ", "))
}

// chooseOffline picks the config where no node is read (--print-topology,
// --print-labels, no --node-name): the one name (--config-name) names, as
// for a node labelled with it, else the fallbacks, as for a node without
// the label.
func (pn *perNode) chooseOffline(name string) (choice, error) {
	if name != "" {
		names, err := configNames(pn.dir)
		if err != nil {
			return choice{}, err
		}
		if !slices.Contains(names, name) {
			return choice{}, fmt.Errorf("--config-name=%s names no config in %s (configs: %s)", name, pn.dir, strings.Join(names, ", "))
		}
		return pn.choose(name)
	}
	c, err := pn.choose("")
	if nf := (*noFallbackError)(nil); errors.As(err, &nf) {
		return choice{}, fmt.Errorf("no node is read (--print-topology and --print-labels read none; without --node-name neither does the plugin), "+
			"so no %s label chooses a config, and no fallback applies (%s): give --config-name=<name> to preview the config of a node labelled %s=<name>, "+
			"or --default-config=<name> to preview a node without the label",
			pn.label, nf.fallbacks(), pn.label)
	}
	return c, err
}

// validFallbacks checks --fallback-strategies.
func validFallbacks(in []string) error {
	for _, f := range in {
		if f != fallbackNamed && f != fallbackSingle && f != fallbackEmpty {
			return fmt.Errorf("--fallback-strategies: %q is not one of named, single, empty", f)
		}
	}
	return nil
}

// labelSource reports this node's config label value and its changes.
type labelSource interface {
	Label() string
	Changed() <-chan struct{}
}

// nodeLabels watches one node's labels through an informer restricted to it.
type nodeLabels struct {
	key     string
	store   cache.Store
	changed chan struct{}
	// observer is fed the node of each add and update once set
	// (observeNodes); nil before.
	observer atomic.Pointer[nodeObserverBox]
}

// nodeObserver is what the node informer feeds besides the config label:
// the publisher, which repairs a topology annotation that differs from
// the one it applied (nodepublish.Publisher.Observe).
type nodeObserver interface {
	Observe(ctx context.Context, node *corev1.Node)
}

// nodeObserverBox holds a nodeObserver for an atomic.Pointer.
type nodeObserverBox struct{ nodeObserver }

// observeNodes makes the node informer of labels, when there is one (per-
// node configs with a node read: watchNodeLabel), hand obs each Node it
// adds or updates from now on, so that a changed annotation is seen at once
// rather than at the publisher's next read; it reports whether there is
// one. Without per-node configs there is no node watch (RBAC grants the
// plugin none then): the publisher reads the node by itself.
func observeNodes(labels labelSource, obs nodeObserver) bool {
	nl, ok := labels.(*nodeLabels)
	if !ok || nl == nil || obs == nil {
		return false
	}
	nl.observer.Store(&nodeObserverBox{obs})
	return true
}

// observe hands n to the observer, if one is set.
func (nl *nodeLabels) observe(ctx context.Context, obj any) {
	box := nl.observer.Load()
	if box == nil {
		return
	}
	if n, ok := obj.(*corev1.Node); ok {
		box.Observe(ctx, n)
	}
}

func watchNodeLabel(ctx context.Context, client kubernetes.Interface, node, label string) (*nodeLabels, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
	}))
	inf := f.Core().V1().Nodes().Informer()
	nl := &nodeLabels{key: label, store: inf.GetStore(), changed: make(chan struct{}, 1)}
	notify := func(any) {
		select {
		case nl.changed <- struct{}{}:
		default:
		}
	}
	seen := func(n any) {
		nl.observe(ctx, n)
		notify(n)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: seen, UpdateFunc: func(_, n any) { seen(n) }, DeleteFunc: notify}); err != nil {
		return nil, fmt.Errorf("node informer: %w", err)
	}
	f.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		return nil, errors.New("node informer did not sync in 30s: cannot read the node's config label")
	}
	return nl, nil
}

func (nl *nodeLabels) Label() string {
	for _, obj := range nl.store.List() {
		if n, ok := obj.(*corev1.Node); ok {
			return n.Labels[nl.key]
		}
	}
	return ""
}

func (nl *nodeLabels) Changed() <-chan struct{} { return nl.changed }

// configSettle is how long the per-node configs must be quiet after a
// change (a file event, a label change) before the node's config is read
// again: a file rewritten in place is seen truncated first, and an empty
// config is the defaults, which must not be run for a moment.
const configSettle = 500 * time.Millisecond

// watchConfigs sends on reload whenever the chosen config's content
// changes (label change, ConfigMap update), once the changes have settled
// (configSettle on clk), until ctx ends. Errors (a label naming no config)
// are logged and the running config kept.
func watchConfigs(ctx context.Context, pn *perNode, labels labelSource, current choice, reload chan<- choice, clk clock.Clock) error {
	logger := klog.FromContext(ctx)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", pn.dir, err)
	}
	if err := w.Add(pn.dir); err != nil {
		_ = w.Close()
		return fmt.Errorf("watching %s: %w", pn.dir, err)
	}
	var changed <-chan struct{}
	if labels != nil {
		changed = labels.Changed()
	}
	go func() {
		defer func() { _ = w.Close() }()
		var timer clock.Timer
		var settled <-chan time.Time
		arm := func() {
			if timer != nil {
				timer.Stop()
			}
			timer = clk.NewTimer(configSettle)
			settled = timer.C()
		}
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				arm()
				continue
			case <-w.Events:
				arm()
				continue
			case err := <-w.Errors:
				logger.Error(err, "Watching the per-node configs")
				continue
			case <-settled:
				settled = nil
			}
			label := ""
			if labels != nil {
				label = labels.Label()
			}
			next, err := pn.choose(label)
			if err != nil {
				logger.Error(err, "Keeping the running config")
				continue
			}
			if current.same(next) {
				continue
			}
			logger.Info("Per-node config changed", "from", current.name, "to", next.name)
			current = next
			select {
			case reload <- next:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}
