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
	"testing"
	"time"
	_ "unsafe" // for go:linkname

	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nodepublish"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/test/harness"
)

// kubelet is the real device manager on a socket directory of its own, with
// the kubelet's PodResources server (test/harness).
type kubelet struct {
	t *testing.T
	*harness.Kubelet
}

func startKubelet(t *testing.T, dir string) *kubelet {
	t.Helper()
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(1)))
	k, err := harness.StartKubelet(klog.NewContext(context.Background(), logger), dir)
	require.NoError(t, err)
	t.Cleanup(k.Stop)
	return &kubelet{t: t, Kubelet: k}
}

// counts returns healthy (allocatable) and total (capacity) per resource.
func (k *kubelet) counts() (healthy, total map[string]int64) {
	capacity, allocatable, _ := k.Capacity()
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
	pod := fixture.MakePod().Named(name).AnnotationMap(annotations).GPUs(resourceName, count).Obj()
	ctx := klog.NewContext(context.Background(), klog.Background())
	if err := k.Admit(ctx, pod); err != nil {
		return nil, nil, err
	}
	env, err := k.Env(ctx, pod, &pod.Spec.Containers[0])
	if err != nil {
		return nil, nil, err
	}
	return k.Devices(pod)[resourceName], env, nil
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
	cdiDir    string // where the CDI spec is written; "" = none
	handoff   *deviceplugin.Handoff
	publisher *nodepublish.Publisher
	metrics   *deviceplugin.Metrics
	events    deviceplugin.HealthEvents
	mps       *deviceplugin.MPSOptions
	// prepare, when set, breaks the machine before the plugin discovers it.
	prepare func(*fake.Machine)
	// kubelet, when set, is stopped before the plugin at cleanup, so that it
	// does not react to the plugin going away (and write its checkpoint into
	// a directory being removed).
	kubelet *kubelet
	// beforeRun, when set, is called with the Manager before its Run.
	beforeRun func(*deviceplugin.Manager)
}

func startPlugin(t *testing.T, dir string, o pluginOpts) *plugin {
	t.Helper()
	m, err := fake.New(o.machine, o.fake...)
	require.NoError(t, err)
	if o.prepare != nil {
		o.prepare(m)
	}
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	cfg := configv1.Default()
	if o.config != "" {
		cfg, err = configv1.Parse([]byte(o.config))
		require.NoError(t, err)
	}
	clk := testingclock.NewFakeClock(time.Now())
	hostRoot := t.TempDir() // the machine's DMI name and PCI classes, for GFD's labels
	require.NoError(t, m.WriteHostFiles(hostRoot))
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: dir, Clock: clk, Handoff: o.handoff, Publisher: o.publisher, Metrics: o.metrics, Events: o.events, CDISpecDir: o.cdiDir, MPS: o.mps, HostRoot: hostRoot})
	require.NoError(t, err)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	p := &plugin{machine: m, mgr: mgr, clock: clk, cancel: cancel, done: make(chan error, 1)}
	if o.beforeRun != nil {
		o.beforeRun(mgr)
	}
	go func() { p.done <- mgr.Run(ctx) }()
	t.Cleanup(func() {
		if o.kubelet != nil {
			o.kubelet.Stop()
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
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpupack-dp-")
	require.NoError(t, err)
	t.Cleanup(func() { harness.RemoveSocketDir(dir) })
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
