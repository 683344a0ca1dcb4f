package deviceplugin_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	testingclock "k8s.io/utils/clock/testing"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/test/harness"
)

// reloadNode runs Managers one after the other on one node and one
// kubelet, as cmd/device-plugin/app's loop does after a per-node config
// change, each reading the kubelet's PodResources API.
type reloadNode struct {
	t       *testing.T
	k       *kubelet
	dir     string
	lib     nvml.Lib
	machine *fake.Machine
	clock   *testingclock.FakeClock
	podres  deviceplugin.Allocations
}

func newReloadNode(t *testing.T, opts ...fake.Option) *reloadNode {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	m, err := fake.New(fake.DGXA100, opts...)
	require.NoError(t, err)
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	pr := deviceplugin.NewPodResources(filepath.Join(dir, harness.PodResourcesSocket))
	t.Cleanup(func() { _ = pr.Close() })
	return &reloadNode{t: t, k: k, dir: dir, lib: lib, machine: m, clock: testingclock.NewFakeClock(time.Now()), podres: pr}
}

// run starts a Manager with config; stop ends it.
func (n *reloadNode) run(config string, edit func(*deviceplugin.Options)) (*deviceplugin.Manager, func()) {
	t := n.t
	cfg, err := configv1.Parse([]byte(config))
	require.NoError(t, err)
	opts := deviceplugin.Options{Lib: n.lib, Config: cfg, PluginDir: n.dir, Clock: n.clock, PodResources: n.podres}
	if edit != nil {
		edit(&opts)
	}
	mgr, err := deviceplugin.New(opts)
	require.NoError(t, err)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx) }()
	// The kubelet's counts are read once it streams every new plugin's
	// devices: those a test waits for may be the old Manager's too
	// (replicas off and renamed: 7 whole GPUs before and after), and a
	// wait met by the old ones looked at a Manager not yet serving.
	require.Eventually(t, func() bool {
		for _, p := range mgr.Plugins() {
			if !p.Connected() {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "the kubelet streams every plugin's devices")
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not end")
		}
	}
	t.Cleanup(stop)
	return mgr, stop
}

// gpuOf is the index of the GPU a device ID lives on (a GPU or MIG UUID,
// or a replica of one).
func gpuOf(t *testing.T, inv *nvml.Inventory, id string) int {
	uuid, _, _ := strings.Cut(id, "::")
	for _, g := range inv.GPUs {
		if g.UUID == uuid {
			return g.Index
		}
	}
	for _, m := range inv.MIG {
		if m.UUID == uuid {
			return m.ParentIndex
		}
	}
	t.Fatalf("device %s is on none of the node's GPUs", id)
	return -1
}

const (
	migOnGPU0   = "version: v1\nflags: {migStrategy: mixed}"
	whole       = "version: v1"
	shared4Same = "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}"
	shared2Ren  = "version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2}]}}"
	shared4Ren0 = "version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0]}]}}"
)

// A config reload that changes what a physical GPU is advertised as
// (another resource name, replicas on or off, another replica count, another
// MIG strategy) must not let the kubelet give that GPU again while a running
// container holds it under its old name or ID: the kubelet counts
// allocations per resource name and device ID and sees the new devices free.
// The GPU's devices are advertised unhealthy until the holder is gone (then,
// at the next resync, healthy again), and Allocate refuses them naming the
// holder. Before, every case below counted the held GPU as allocatable.
//
// The kubelet keeps the old resource, its devices unhealthy, for a grace
// period after its plugin went away: it shows with 0.
func TestReloadDoesNotGiveAHeldGPUAgain(t *testing.T) {
	mig := fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb", "1g.5gb"}})
	tests := []struct {
		name           string
		fake           []fake.Option
		before         string
		resource       string // what the running pod holds
		count          int64  // how many of it; 0 means 1
		after          string
		afterResource  string
		want, released map[string]int64 // healthy counts after the reload; after the holder is gone
	}{
		{
			// GPU 0's 4 replicas under nvidia.com/gpu.shared, then whole
			// GPUs only: the replica's GPU is withheld, 8 - 1 = 7.
			name: "replicas off and renamed", before: shared4Ren0, resource: "nvidia.com/gpu.shared",
			after: whole, afterResource: "nvidia.com/gpu",
			want: map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 0}, released: map[string]int64{"nvidia.com/gpu": 8, "nvidia.com/gpu.shared": 0},
		},
		{
			// A whole GPU held, then 4 replicas of each under the same
			// name: its 4 replicas are withheld, 8*4 - 4 = 28.
			name: "replicas on under the same name", before: whole, resource: "nvidia.com/gpu",
			after: shared4Same, afterResource: "nvidia.com/gpu",
			want: map[string]int64{"nvidia.com/gpu": 28}, released: map[string]int64{"nvidia.com/gpu": 32},
		},
		{
			// One of 2 replicas held under nvidia.com/gpu.shared, then 4
			// replicas under nvidia.com/gpu: the holder takes one share of
			// its GPU, 8*4 - 1 = 31.
			name: "more replicas under another name", before: shared2Ren, resource: "nvidia.com/gpu.shared",
			after: shared4Same, afterResource: "nvidia.com/gpu",
			want: map[string]int64{"nvidia.com/gpu": 31, "nvidia.com/gpu.shared": 0}, released: map[string]int64{"nvidia.com/gpu": 32, "nvidia.com/gpu.shared": 0},
		},
		{
			// A MIG device of GPU 0 held, then migStrategy none: GPU 0 is
			// served whole and withheld, 8 - 1 = 7.
			name: "MIG device, then the GPU whole", fake: []fake.Option{mig}, before: migOnGPU0, resource: "nvidia.com/mig-1g.5gb",
			after: whole, afterResource: "nvidia.com/gpu",
			want: map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 0}, released: map[string]int64{"nvidia.com/gpu": 8, "nvidia.com/mig-1g.5gb": 0},
		},
		{
			// GPU 0 held whole (migStrategy none serves it so) with all
			// the others, then mixed: its 3 MIG devices are withheld; the
			// 7 other GPUs keep their name and ID (the kubelet knows them).
			name: "the GPU whole, then its MIG devices", fake: []fake.Option{mig}, before: whole, resource: "nvidia.com/gpu",
			count: 8, after: migOnGPU0, afterResource: "nvidia.com/mig-1g.5gb",
			want:     map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 0},
			released: map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newReloadNode(t, tc.fake...)
			_, stop := n.run(tc.before, nil)
			count := max(tc.count, 1)
			require.EventuallyWithT(t, func(c *assertCollect) {
				healthy, _ := n.k.counts()
				requireEqualCollect(c, true, healthy[tc.resource] >= count)
			}, 10*time.Second, 5*time.Millisecond)
			held, _, err := n.k.allocate("running", tc.resource, count, nil)
			require.NoError(t, err)
			stop()

			mgr, _ := n.run(tc.after, nil)
			var pl *deviceplugin.Plugin
			for _, p := range mgr.Plugins() {
				if p.Name() == tc.afterResource {
					pl = p
				}
			}
			require.NotNil(t, pl)
			n.k.waitCounts(tc.want)

			// The kubelet's choice raced the first update: Allocate refuses
			// a withheld device, naming the holder.
			withheldNow := func() []string {
				var ids []string
				for _, d := range pl.Devices() {
					if d.Health != pluginapi.Healthy {
						ids = append(ids, d.ID)
					}
				}
				return ids
			}
			require.Eventually(t, func() bool { return len(withheldNow()) > 0 }, 10*time.Second, time.Millisecond)
			withheld := withheldNow()
			heldGPUs := map[int]bool{}
			for _, id := range held {
				heldGPUs[gpuOf(t, mgr.Inventory(), id)] = true
			}
			for _, id := range withheld {
				require.True(t, heldGPUs[gpuOf(t, mgr.Inventory(), id)], "%s withheld, on no GPU the pod holds (%v)", id, held)
			}
			_, err = pl.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: withheld[:1]}}})
			require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
			require.Contains(t, err.Error(), "default/running")

			// The holder ends: at the next resync its GPU is served again.
			n.k.Forget(types.UID("uid-running"))
			require.EventuallyWithT(t, func(c *assertCollect) {
				n.clock.Step(deviceplugin.DefaultResyncPeriod)
				healthy, _ := n.k.counts()
				requireEqualCollect(c, tc.released, healthy)
			}, 10*time.Second, 20*time.Millisecond)
		})
	}
}

// failingAllocations is a PodResources API that does not answer.
type failingAllocations struct{}

func (failingAllocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	return nil, errors.New("connection refused")
}

// withheldEvents records what the Manager tells of withheld devices.
type withheldEvents struct {
	mu       sync.Mutex
	withheld map[string][]string // resource -> IDs, last told
	// outages are HoldingsUnknown's known, per call, and "answers" for
	// each HoldingsKnown, in order.
	outages []string
}

func (e *withheldEvents) Unhealthy(int, string, string, nvml.Event) {}
func (e *withheldEvents) Recovered(int, string, string)             {}
func (e *withheldEvents) Withheld(resource string, ids, _ []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.withheld[resource] = ids
}
func (e *withheldEvents) HoldingsUnknown(_ error, known deviceplugin.HeldKnowledge) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outages = append(e.outages, knowledgeNames[known])
}
func (e *withheldEvents) HoldingsKnown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outages = append(e.outages, "answers")
}

var knowledgeNames = map[deviceplugin.HeldKnowledge]string{
	deviceplugin.HeldUnknown: "unknown", deviceplugin.HeldCarried: "carried", deviceplugin.HeldLastAnswer: "last answer",
}

// When the kubelet's PodResources API does not answer at a reload, the
// next Manager withholds what the previous one knew (its last answer and
// what it allocated since, Options.Held); with nothing known it withholds
// nothing. Either way it records, once, that the API does not answer:
// carried knowledge is no answer (it is not updated, and may hold only
// what the previous Manager allocated). Before, a Manager with carried
// knowledge never recorded it, however long the API stayed down.
func TestReloadWithPodResourcesDown(t *testing.T) {
	tests := []struct {
		name        string
		carry, down bool
		want        map[string]int64 // healthy counts
		wantOutages []string
	}{
		// GPU 0 withheld: 8 - 1 = 7.
		{name: "carried, down", carry: true, down: true, want: map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 0}, wantOutages: []string{"carried"}},
		{name: "nothing carried, down", down: true, want: map[string]int64{"nvidia.com/gpu": 8, "nvidia.com/gpu.shared": 0}, wantOutages: []string{"unknown"}},
		{name: "carried, answering", carry: true, want: map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newReloadNode(t)
			prev, stop := n.run(shared4Ren0, nil)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 4})
			// Allocated after the Manager's last read: known as allocated by
			// it, not yet by pod.
			_, _, err := n.k.allocate("running", "nvidia.com/gpu.shared", 1, nil)
			require.NoError(t, err)
			stop()

			events := &withheldEvents{withheld: map[string][]string{}}
			mgr, _ := n.run(whole, func(o *deviceplugin.Options) {
				o.Events = events
				if tc.down {
					o.PodResources = failingAllocations{}
				}
				if tc.carry {
					o.Held = prev.Held()
				}
			})
			n.k.waitCounts(tc.want)
			// Later failed reads (each Allocate's) record nothing more.
			for _, p := range mgr.Plugins() {
				_, _ = p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{n.machine.UUID(5)}}}})
			}
			events.mu.Lock()
			defer events.mu.Unlock()
			if tc.want["nvidia.com/gpu"] == 7 {
				require.Equal(t, map[string][]string{"nvidia.com/gpu": {n.machine.UUID(0)}}, events.withheld)
			}
			require.Equal(t, tc.wantOutages, events.outages)
		})
	}
}

// staticAllocations is a PodResources API that always gives one answer.
type staticAllocations map[types.NamespacedName]map[string]map[string][]string

func (s staticAllocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	return s, nil
}

// A config reload that removes a resource takes its per-resource gauges
// (devices by health, devices withheld) with it; those of the resources
// still served follow the new Manager. Before, the removed resource's
// series stayed at their last value for as long as the process ran: 4
// devices withheld, forever.
func TestReloadDropsRemovedResourcesGauges(t *testing.T) {
	n := newReloadNode(t)
	reg := prometheus.NewRegistry()
	metrics := deviceplugin.NewMetrics(reg)
	// GPU 0 held whole under an earlier name: its 4 replicas under
	// nvidia.com/gpu.shared withheld.
	holder := staticAllocations{{Namespace: "default", Name: "old"}: {"main": {"example.com/gpu": {n.machine.UUID(0)}}}}
	_, stop := n.run(shared4Ren0, func(o *deviceplugin.Options) { o.Metrics, o.PodResources = metrics, holder })
	n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 0})
	series := func(name string) map[string]float64 {
		t.Helper()
		families, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetValue())
				}
				out[strings.Join(labels, ",")] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	// The kubelet's counts can be the ones wanted before the Manager has
	// set its gauges (and after the reload they are the old Manager's):
	// wait for the series themselves.
	eventually := func(name string, want map[string]float64) {
		t.Helper()
		require.EventuallyWithT(t, func(c *assertCollect) {
			requireEqualCollect(c, want, series(name))
		}, 10*time.Second, 5*time.Millisecond, name)
	}
	eventually("gpupack_device_plugin_devices_withheld", map[string]float64{"nvidia.com/gpu": 0, "nvidia.com/gpu.shared": 4})
	stop()

	// Whole GPUs only, GPU 0 still held: nvidia.com/gpu 8 - 1 = 7.
	n.run(whole, func(o *deviceplugin.Options) { o.Metrics, o.PodResources = metrics, holder })
	n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 0})
	eventually("gpupack_device_plugin_devices_withheld", map[string]float64{"nvidia.com/gpu": 1})
	eventually("gpupack_device_plugin_devices", map[string]float64{"healthy,nvidia.com/gpu": 7, "unhealthy,nvidia.com/gpu": 1})
}

// A device withheld for a holder under an earlier config's name comes back
// soon after the holder ends, not at the next resync: at once when the
// node's pod informer tells of a pod's end (Options.PodEnds: deleted, or
// finished), else at the next poll, every WithheldPollPeriod while a device
// is withheld. The resync is an hour away here and never comes. Before,
// only the resync (every 30 s) or an Allocate read PodResources again: the
// GPU stayed withheld up to 30 s after its holder was gone.
func TestWithheldDeviceComesBackSoonAfterItsHolderEnds(t *testing.T) {
	finished := fixture.MakePod().Named("running").Obj()
	finished.Status.Phase = corev1.PodSucceeded
	tests := []struct {
		name string
		// ended tells the Manager (or not) that the holder ended; it is
		// called until the GPU is served again.
		ended func(*deviceplugin.PodEnds, *testingclock.FakeClock)
	}{
		{"the pod was deleted", func(e *deviceplugin.PodEnds, _ *testingclock.FakeClock) { e.Deleted() }},
		{"the pod finished", func(e *deviceplugin.PodEnds, _ *testingclock.FakeClock) { e.Observe(finished) }},
		{"no word of it: the poll", func(_ *deviceplugin.PodEnds, clk *testingclock.FakeClock) {
			clk.Step(deviceplugin.DefaultWithheldPollPeriod)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newReloadNode(t)
			_, stop := n.run(shared4Ren0, nil)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 4})
			_, _, err := n.k.allocate("running", "nvidia.com/gpu.shared", 1, nil)
			require.NoError(t, err)
			stop()

			ends := deviceplugin.NewPodEnds()
			n.run(whole, func(o *deviceplugin.Options) { o.PodEnds, o.ResyncPeriod = ends, time.Hour })
			// GPU 0 held as a replica under nvidia.com/gpu.shared: 8 - 1 = 7.
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/gpu.shared": 0})

			n.k.Forget(types.UID("uid-running"))
			require.EventuallyWithT(t, func(c *assertCollect) {
				tc.ended(ends, n.clock)
				healthy, _ := n.k.counts()
				requireEqualCollect(c, map[string]int64{"nvidia.com/gpu": 8, "nvidia.com/gpu.shared": 0}, healthy)
			}, 10*time.Second, 50*time.Millisecond)
		})
	}
}

// switchedAllocations is a PodResources API that answers nothing held, or
// fails while down is set.
type switchedAllocations struct{ down atomic.Bool }

func (s *switchedAllocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	if s.down.Load() {
		return nil, errors.New("connection refused")
	}
	return map[types.NamespacedName]map[string]map[string][]string{}, nil
}

// An outage of the kubelet's PodResources API is told once (a Warning
// PodResourcesUnreadable saying what is withheld meanwhile), however many
// reads fail, and its end once (a Normal PodResourcesRecovered); a later
// outage is told again. A Manager that replaces one during an outage tells
// it once more (its config has had no answer) and tells its end, also of
// the outage the replaced one told. Before, a Manager that had had an
// answer only logged its failed reads, and no end was ever told.
func TestPodResourcesOutageToldOncePerOutage(t *testing.T) {
	machine, lib, cfg := fakeNode(t, fake.DGXA100, "version: v1")
	carried := []sharing.Holding{{Namespace: "default", Pod: "old", Container: "main", Resource: "nvidia.com/gpu.shared", ID: machine.UUID(0) + "::1"}}
	tests := []struct {
		name    string
		carried []sharing.Holding
		down    bool   // Options.PodResourcesDown
		reads   string // one Allocate's read each: o answers, x fails
		want    []string
	}{
		{name: "answered, then two outages", reads: "oxxxoxxo", want: []string{"last answer", "answers", "last answer", "answers"}},
		{name: "never answered", reads: "xxxo", want: []string{"unknown", "answers"}},
		{name: "carried knowledge", carried: carried, reads: "xxo", want: []string{"carried", "answers"}},
		{name: "answering all along", reads: "oooo"},
		{name: "the replaced Manager told an outage", down: true, reads: "oo", want: []string{"answers"}},
		{name: "the replaced Manager told an outage, still down", down: true, carried: carried, reads: "xxoo", want: []string{"carried", "answers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &switchedAllocations{}
			events := &withheldEvents{withheld: map[string][]string{}}
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(), PodResources: src,
				Events: events, Held: tc.carried, PodResourcesDown: tc.down})
			require.NoError(t, err)
			// Once a read failed, a call waits for the next one to end (a
			// minute at most): each Allocate's read decides.
			deviceplugin.SetHeldWaits(mgr, time.Minute, time.Minute)
			p := mgr.Plugins()[0]
			for i, r := range tc.reads {
				src.down.Store(r == 'x')
				// GPU 1: never withheld.
				_, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{machine.UUID(1)}}}})
				require.NoError(t, err, "read %d", i)
			}
			events.mu.Lock()
			defer events.mu.Unlock()
			require.Equal(t, tc.want, events.outages)
			require.Equal(t, tc.reads[len(tc.reads)-1] == 'x', mgr.PodResourcesDown())
		})
	}
}
