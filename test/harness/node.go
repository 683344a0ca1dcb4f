// Package harness runs fake GPU nodes against a real control plane
// (test/cluster): for each node a Node object kept Ready by kwok, the real
// kubelet device manager in-process (kubelet.go), our device-plugin binary
// with --fake=<machine> registered with it, the node's capacity and
// allocatable set from what the manager reports, and every pod bound to the
// node admitted as the kubelet would (Allocate per container), so the whole
// handoff runs: scheduler choice -> pod annotation -> GetPreferredAllocation
// -> Allocate -> in-use report -> scheduler cache.
package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/gpupack/gpupack/test/cluster"
)

// NodeConfig describes one fake GPU node.
type NodeConfig struct {
	Name string
	// Machine is a pkg/nvml/fake catalog name; FakeMIG the --fake-mig value.
	Machine, FakeMIG string
	// PluginConfig is the device plugin's config file content (YAML), ""
	// for DefaultPluginConfig; PluginArgs are more flags.
	PluginConfig string
	PluginArgs   []string
	Labels       map[string]string
	// CPU and Memory are the node's capacity (default 96 and 1Ti).
	CPU, Memory string
}

// DefaultPluginConfig is the plugin's defaults with the in-use report also
// refreshed every second (a finished pod's GPUs show free within a second).
const DefaultPluginConfig = "version: v1\npublish: {inUseInterval: 1s}\n"

const (
	// FakeNodeAnnotation makes kwok keep the node Ready.
	FakeNodeAnnotation = "kwok.x-k8s.io/node"
	controlSocket      = "control.sock"
	statusInterval     = 200 * time.Millisecond
)

// Node is one running fake GPU node.
type Node struct {
	cfg     NodeConfig
	env     Env
	dir     string
	Kubelet *Kubelet

	mu         sync.Mutex
	plugin     *cluster.Process
	generation int

	admitMu  sync.Mutex // held for each admission, and across a kubelet restart
	admitq   chan *corev1.Pod
	queued   map[types.UID]bool       // sent to admitq; under mu
	outcomes map[types.UID]*Admission // under mu
	changed  chan struct{}            // closed and replaced when outcomes change; under mu
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

// Env is what every node of a cluster shares.
type Env struct {
	Client     kubernetes.Interface
	Kubeconfig string
	PluginBin  string
	// LogDir receives the plugin logs.
	LogDir string
}

// StartNode creates the Node object, starts its kubelet and device plugin,
// and waits until the node advertises its GPUs.
func StartNode(ctx context.Context, env Env, cfg NodeConfig) (_ *Node, err error) {
	dir, err := os.MkdirTemp("", "gpn-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	n := &Node{cfg: cfg, env: env, dir: dir, admitq: make(chan *corev1.Pod, 4096),
		queued: map[types.UID]bool{}, outcomes: map[types.UID]*Admission{}, changed: make(chan struct{})}
	defer func() {
		if err != nil {
			n.Stop(ctx)
		}
	}()
	if err := n.createNodeObject(ctx); err != nil {
		return nil, err
	}
	kctx := klog.NewContext(ctx, klog.FromContext(ctx).WithValues("node", cfg.Name))
	if n.Kubelet, err = StartKubelet(kctx, dir); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if err := n.StartPlugin(ctx); err != nil {
		return nil, err
	}
	if err := n.waitAdvertised(ctx); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(kctx)
	n.cancel = cancel
	n.done.Add(2)
	go func() { defer n.done.Done(); n.syncStatusLoop(loopCtx) }()
	go func() { defer n.done.Done(); n.admitLoop(loopCtx) }()
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

func (n *Node) createNodeObject(ctx context.Context) error {
	labels := map[string]string{"type": "kwok", corev1.LabelHostname: n.cfg.Name}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        n.cfg.Name,
		Annotations: map[string]string{FakeNodeAnnotation: "fake"},
		Labels:      labels,
	}}
	if _, err := n.env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating node %s: %w", n.cfg.Name, err)
	}
	return nil
}

// StartPlugin starts the device-plugin binary for this node.
func (n *Node) StartPlugin(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.plugin != nil {
		return fmt.Errorf("node %s: the device plugin is running", n.cfg.Name)
	}
	args := []string{
		"--fake=" + n.cfg.Machine,
		"--fake-control=" + filepath.Join(n.dir, controlSocket),
		"--device-plugin-dir=" + n.dir,
		"--pod-resources-socket=" + filepath.Join(n.dir, PodResourcesSocket),
		"--node-name=" + n.cfg.Name,
		"--kubeconfig=" + n.env.Kubeconfig,
		"--metrics-bind-address=",
		"--v=2",
	}
	if n.cfg.FakeMIG != "" {
		args = append(args, "--fake-mig="+n.cfg.FakeMIG, "--mig-strategy=mixed")
	}
	conf := n.cfg.PluginConfig
	if conf == "" {
		conf = DefaultPluginConfig
	}
	path := filepath.Join(n.dir, "plugin-config.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("node %s: writing the plugin config: %w", n.cfg.Name, err)
	}
	args = append(args, "--config="+path)
	args = append(args, n.cfg.PluginArgs...)
	n.generation++
	p, err := cluster.StartProcess(ctx, n.env.LogDir, fmt.Sprintf("device-plugin-%s-%d", n.cfg.Name, n.generation), n.env.PluginBin, args...)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.Name, err)
	}
	n.plugin = p
	return nil
}

// StopPlugin stops the device plugin (SIGTERM, as a DaemonSet rollout does).
func (n *Node) StopPlugin() error {
	n.mu.Lock()
	p := n.plugin
	n.plugin = nil
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop(10 * time.Second)
}

// PluginLog is the tail of the running (or last) device plugin's log.
func (n *Node) PluginLog(bytes int64) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.plugin == nil {
		return ""
	}
	return n.plugin.Tail(bytes)
}

// waitAdvertised waits until the device manager has devices from the plugin.
func (n *Node) waitAdvertised(ctx context.Context) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		capacity, _, _ := n.Kubelet.Capacity()
		return len(capacity) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("node %s: the device plugin never registered: %w\n%s", n.cfg.Name, err, n.PluginLog(4096))
	}
	return n.syncStatus(ctx)
}

// syncStatusLoop keeps the node's capacity/allocatable equal to what the
// device manager reports, as the kubelet's node status loop does.
func (n *Node) syncStatusLoop(ctx context.Context) {
	logger := klog.FromContext(ctx)
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.syncStatus(ctx); err != nil && ctx.Err() == nil {
				logger.Error(err, "Updating the node status")
			}
		}
	}
}

func (n *Node) syncStatus(ctx context.Context) error {
	capacity, allocatable, removed := n.Kubelet.Capacity()
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		node, err := n.env.Client.CoreV1().Nodes().Get(ctx, n.cfg.Name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading node %s: %w", n.cfg.Name, err)
		}
		if !n.applyResources(node, capacity, allocatable, removed) {
			return true, nil
		}
		_, err = n.env.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil // kwok's heartbeat won the race: read again
		}
		if err != nil {
			return false, fmt.Errorf("updating node %s status: %w", n.cfg.Name, err)
		}
		return true, nil
	})
}

// applyResources sets the node's base resources and the device manager's,
// and reports whether anything changed.
func (n *Node) applyResources(node *corev1.Node, capacity, allocatable corev1.ResourceList, removed []string) bool {
	cpu, mem := n.cfg.CPU, n.cfg.Memory
	if cpu == "" {
		cpu = "96"
	}
	if mem == "" {
		mem = "1Ti"
	}
	base := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	changed := false
	set := func(list *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		if old, ok := (*list)[name]; !ok || !old.Equal(q) {
			(*list)[name] = q
			changed = true
		}
	}
	for name, q := range base {
		set(&node.Status.Capacity, name, q)
		set(&node.Status.Allocatable, name, q)
	}
	for name, q := range capacity {
		set(&node.Status.Capacity, name, q)
	}
	for name, q := range allocatable {
		set(&node.Status.Allocatable, name, q)
	}
	for _, name := range removed {
		// As the kubelet: a resource the manager no longer has drops to 0.
		set(&node.Status.Capacity, corev1.ResourceName(name), resource.MustParse("0"))
		set(&node.Status.Allocatable, corev1.ResourceName(name), resource.MustParse("0"))
	}
	return changed
}

// Inject posts a fault to the device plugin's fake machine: kind is xid,
// ecc, lose or restore; params are its query (gpu, xid, double).
func (n *Node) Inject(ctx context.Context, kind string, params url.Values) error {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(n.dir, controlSocket))
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin/"+kind+"?"+params.Encode(), nil)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.Name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: injecting %s: %w", n.cfg.Name, kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("node %s: injecting %s: %s: %s", n.cfg.Name, kind, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// InjectXID delivers an XID critical error on GPU gpu of the node.
func (n *Node) InjectXID(ctx context.Context, gpu int, xid uint64) error {
	return n.Inject(ctx, "xid", url.Values{"gpu": {strconv.Itoa(gpu)}, "xid": {strconv.FormatUint(xid, 10)}})
}

// Stop stops the node's loops, plugin and kubelet and removes its directory.
// The Node object stays.
func (n *Node) Stop(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if n.cancel != nil {
		n.cancel()
		n.done.Wait()
	}
	// The kubelet goes first, so it does not react to the plugin leaving.
	if n.Kubelet != nil {
		n.Kubelet.Stop()
	}
	if err := n.StopPlugin(); err != nil {
		logger.Error(err, "Stopping the device plugin", "node", n.cfg.Name)
	}
	RemoveSocketDir(n.dir)
}

// RemoveSocketDir removes a node's socket directory; the device manager may
// still write its checkpoint there while stopping, so it retries until the
// directory stays gone.
func RemoveSocketDir(dir string) {
	stable := 0
	for range 100 {
		_ = os.RemoveAll(dir)
		time.Sleep(20 * time.Millisecond)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			if stable++; stable >= 5 {
				return
			}
		} else {
			stable = 0
		}
	}
}
