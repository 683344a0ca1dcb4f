package deviceplugin_test

// The kubelet side of these tests is the REAL kubelet device manager
// (k8s.io/kubernetes/pkg/kubelet/cm/devicemanager) run in-process: our plugin
// registers over its real Registration socket, and it drives ListAndWatch,
// GetPreferredAllocation and Allocate. Its exported constructor is fixed to
// /var/lib/kubelet/device-plugins, so the unexported one that takes a socket
// path is reached with //go:linkname (DESIGN.md section 9).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	_ "unsafe" // for go:linkname

	cadvisorapi "github.com/google/cadvisor/lib/model"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/sharing"
)

//go:linkname newManagerImpl k8s.io/kubernetes/pkg/kubelet/cm/devicemanager.newManagerImpl
func newManagerImpl(logger klog.Logger, socketPath string, topology []cadvisorapi.Node, topologyAffinityStore topologymanager.Store) (*devicemanager.ManagerImpl, error)

type sourcesReady struct{}

func (sourcesReady) AddSource(string) {}
func (sourcesReady) AllReady() bool   { return true }

// kubelet is the real device manager on a socket directory of its own.
type kubelet struct {
	t   *testing.T
	dir string
	m   *devicemanager.ManagerImpl

	mu   sync.Mutex
	pods []*v1.Pod
}

func startKubelet(t *testing.T, dir string) *kubelet {
	t.Helper()
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(1)))
	m, err := newManagerImpl(logger, filepath.Join(dir, deviceplugin.KubeletSocketName), nil, topologymanager.NewFakeManager(logger))
	require.NoError(t, err)
	k := &kubelet{t: t, dir: dir, m: m}
	require.NoError(t, m.Start(logger, k.activePods, sourcesReady{}, containermap.NewContainerMap(), sets.New[string]()))
	t.Cleanup(func() { _ = m.Stop(logger) })
	return k
}

func (k *kubelet) activePods() []*v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*v1.Pod(nil), k.pods...)
}

// counts returns healthy (allocatable) and total (capacity) per resource.
func (k *kubelet) counts() (healthy, total map[string]int64) {
	capacity, allocatable, _ := k.m.GetCapacity(klog.Background())
	healthy, total = map[string]int64{}, map[string]int64{}
	for name, q := range capacity {
		total[string(name)] = q.Value()
	}
	for name, q := range allocatable {
		healthy[string(name)] = q.Value()
	}
	return healthy, total
}

// waitCounts waits until the manager reports exactly these healthy counts.
func (k *kubelet) waitCounts(want map[string]int64) {
	k.t.Helper()
	require.EventuallyWithT(k.t, func(c *assertCollect) {
		healthy, _ := k.counts()
		requireEqualCollect(c, want, healthy)
	}, 10*time.Second, 5*time.Millisecond)
}

// allocate admits a one-container pod asking count of resource, and returns
// the device IDs the manager gave it and the container's env.
func (k *kubelet) allocate(name string, resourceName string, count int64, annotations map[string]string) ([]string, map[string]string, error) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Annotations: annotations},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "main",
			Resources: v1.ResourceRequirements{
				Limits: v1.ResourceList{v1.ResourceName(resourceName): *resource.NewQuantity(count, resource.DecimalSI)},
			},
		}}},
	}
	k.mu.Lock()
	k.pods = append(k.pods, pod)
	k.mu.Unlock()
	ctx := klog.NewContext(context.Background(), klog.Background())
	if err := k.m.Allocate(ctx, pod, &pod.Spec.Containers[0], lifecycle.AddOperation); err != nil {
		return nil, nil, err
	}
	opts, err := k.m.GetDeviceRunContainerOptions(ctx, pod, &pod.Spec.Containers[0])
	if err != nil {
		return nil, nil, err
	}
	env := map[string]string{}
	for _, e := range opts.Envs {
		env[e.Name] = e.Value
	}
	var ids []string
	for id := range k.m.GetDevices(string(pod.UID), "main")[resourceName] {
		ids = append(ids, id)
	}
	return ids, env, nil
}

// plugin is our device plugin on a fake machine, run against a kubelet.
type plugin struct {
	machine *fake.Machine
	mgr     *deviceplugin.Manager
	clock   *testingclock.FakeClock
	cancel  context.CancelFunc
	done    chan error
}

type pluginOpts struct {
	machine   string
	fake      []fake.Option
	config    string // YAML; "" = defaults
	handoff   *deviceplugin.Handoff
	publisher *deviceplugin.Publisher
	metrics   *deviceplugin.Metrics
	// kubelet, when set, is stopped before the plugin at cleanup, so that it
	// does not react to the plugin going away (and write its checkpoint into
	// a directory being removed).
	kubelet *kubelet
}

func startPlugin(t *testing.T, dir string, o pluginOpts) *plugin {
	t.Helper()
	m, err := fake.New(o.machine, o.fake...)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	cfg := sharing.Default()
	if o.config != "" {
		cfg, err = sharing.Parse([]byte(o.config))
		require.NoError(t, err)
	}
	clk := testingclock.NewFakeClock(time.Now())
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir, Clock: clk, Handoff: o.handoff, Publisher: o.publisher, Metrics: o.metrics})
	require.NoError(t, err)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	p := &plugin{machine: m, mgr: mgr, clock: clk, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- mgr.Run(ctx) }()
	t.Cleanup(func() {
		if o.kubelet != nil {
			_ = o.kubelet.m.Stop(klog.Background())
		}
		cancel()
		select {
		case err := <-p.done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("plugin did not stop")
		}
		_ = lib.Shutdown()
	})
	return p
}

// setup starts a kubelet and our plugin in a fresh socket directory.
func setup(t *testing.T, o pluginOpts) (*kubelet, *plugin) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	o.kubelet = k
	return k, startPlugin(t, dir, o)
}

// socketDir is a short directory of the test's own (unix socket paths are
// limited to 108 bytes, too short for t.TempDir() under long test names).
// The kubelet may still write its checkpoint there while stopping, so the
// removal is repeated until the directory stays gone.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpupack-dp-")
	require.NoError(t, err)
	t.Cleanup(func() {
		// The checkpoint manager re-creates the directory when an in-flight
		// write lands after the removal: remove until it stays gone.
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
	})
	return dir
}

func uuidOf(p *plugin, gpu int) string { return p.mgr.Inventory().GPUs[gpu].UUID }

func replicaIDs(uuid string, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("%s::%d", uuid, i)
	}
	return out
}
