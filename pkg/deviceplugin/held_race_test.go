package deviceplugin_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// flippingPodResources answers each read differently, in turn: the full
// answer, one that lags (the kubelet's own pods not listed yet), a failed
// read, the full answer again with every device listed twice (an app
// container reusing its init container's) in another order, no answer
// until the read times out. Every answer
// that succeeds lists the same holders of the node's hardware under
// earlier names (foreign) and malformed entries (nil containers and
// devices, empty and overlong IDs, empty names, other vendors' devices).
// Each read may take up to a millisecond.
type flippingPodResources struct {
	foreign []sharing.Holding
	reads   atomic.Uint64

	mu   sync.Mutex
	rng  *rand.Rand
	pods map[string]given // the test kubelet's pods
}

// given is what the test kubelet gave one pod: IDs of a resource.
type given struct {
	resource string
	ids      []string
}

func (f *flippingPodResources) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	n := f.reads.Add(1)
	f.mu.Lock()
	delay := time.Duration(f.rng.IntN(1000)) * time.Microsecond
	resp := &podresourcesv1.ListPodResourcesResponse{}
	state := n % 5
	if state != 1 {
		for name, g := range f.pods {
			resp.PodResources = append(resp.PodResources, &podresourcesv1.PodResources{Namespace: "kubelet", Name: name,
				Containers: []*podresourcesv1.ContainerResources{{Name: "main", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: g.resource, DeviceIds: g.ids}}}}})
		}
	}
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(delay):
	}
	switch state {
	case 2:
		return nil, errors.New("connection refused")
	case 4:
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, h := range f.foreign {
		resp.PodResources = append(resp.PodResources, &podresourcesv1.PodResources{Namespace: h.Namespace, Name: h.Pod,
			Containers: []*podresourcesv1.ContainerResources{{Name: h.Container, Devices: []*podresourcesv1.ContainerDevices{{ResourceName: h.Resource, DeviceIds: []string{h.ID}}}}}})
	}
	resp.PodResources = append(resp.PodResources,
		nil,
		&podresourcesv1.PodResources{Name: "no-containers"},
		&podresourcesv1.PodResources{Namespace: "odd", Name: "odd", Containers: []*podresourcesv1.ContainerResources{
			nil,
			{Name: "nil-devices", Devices: []*podresourcesv1.ContainerDevices{nil, {ResourceName: "nvidia.com/gpu"}}},
			// A GPU gone names nothing (a MIG device gone whose GPU is not
			// known would withhold every A100: TestMIGLayoutChangeKeepsTheHeldGPUWithheld).
			{Name: "empty-ids", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"", " ", "GPU-nowhere::x", "GPU-gone"}}}},
			{Name: "long", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{strings.Repeat("GPU-", 300)}}}},
			{Name: "", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "", DeviceIds: []string{"\x00\xff", "not-a-gpu"}}}},
			{Name: "nic", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "example.com/nic", DeviceIds: []string{"0000:3b:00.0"}}}},
		}},
		&podresourcesv1.PodResources{},
	)
	if state == 3 {
		for _, pr := range resp.PodResources {
			for _, c := range pr.GetContainers() {
				if c != nil {
					c.Devices = append(c.Devices, c.Devices...)
				}
			}
		}
		slices.Reverse(resp.PodResources)
	}
	return deviceplugin.AllocatedOf(resp), nil
}

// Allocate calls from many goroutines race with PodResources reads whose
// answers flip (full, lagging, failed, doubled, hung) and carry malformed
// entries, with the kubelet's pods coming and going and ListAndWatch's
// device lists and the Manager's knowledge read meanwhile; run with -race.
// The test kubelet asks mostly for devices advertised healthy, sometimes
// for any device it has not given (a choice made on a stale list). No
// call panics, and no hardware is ever given twice: a GPU held whole under
// an earlier name, or with a malformed replica ID, is never given; a GPU
// with held shares is given at most its replicas less those shares; no ID
// is given to two live pods.
func TestAllocateRacesFlippingPodResources(t *testing.T) {
	// GPUs 0 and 1 in 4 replicas each under nvidia.com/gpu.shared, GPUs
	// 2..7 whole under nvidia.com/gpu.
	machine, lib, cfg := fakeNode(t, fake.DGXA100, "version: v1\nsharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0, 1]}]}}")
	old := func(pod, res, id string) sharing.Holding {
		return sharing.Holding{Namespace: "old", Pod: pod, Container: "main", Resource: res, ID: id}
	}
	uuid := machine.UUID
	foreign := []sharing.Holding{
		// 2 shares of GPU 0 under an earlier 8-replica config without
		// rename: 4 - 2 = 2 of its replicas may be given.
		old("s0-6", "nvidia.com/gpu", deviceid.ReplicaID(uuid(0), 6)),
		old("s0-7", "nvidia.com/gpu", deviceid.ReplicaID(uuid(0), 7)),
		// 1 share of GPU 1: 4 - 1 = 3.
		old("s1-0", "nvidia.com/gpu", deviceid.ReplicaID(uuid(1), 0)),
		// GPU 2 held whole under an earlier name: none.
		old("w2", "nvidia.com/gpu-old", uuid(2)),
		// GPU 3 held with a malformed replica ID: it occupies GPU 3,
		// which is not given.
		old("m3", "example.com/gpu", uuid(3)+"::abc"),
	}
	capacity := map[string]int{uuid(0): 2, uuid(1): 3, uuid(2): 0, uuid(3): 0, uuid(4): 1, uuid(5): 1, uuid(6): 1, uuid(7): 1}
	src := &flippingPodResources{foreign: foreign, rng: rand.New(rand.NewPCG(1, 1)), pods: map[string]given{}}
	// As after a reload: the previous Manager knew the holders.
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(), PodResources: src, Held: foreign})
	require.NoError(t, err)
	// Reads time out after 30 ms; once one failed, Allocate waits 2 ms.
	deviceplugin.SetHeldWaits(mgr, 30*time.Millisecond, 2*time.Millisecond)
	plugins := map[string]*deviceplugin.Plugin{}
	for _, p := range mgr.Plugins() {
		plugins[p.Name()] = p
	}
	names := []string{"nvidia.com/gpu", "nvidia.com/gpu.shared"}
	require.Equal(t, names, mgr.ResourceNames())
	ctx := klog.NewContext(context.Background(), logr.Discard())

	// The test kubelet: it never gives an ID twice (reserved while its
	// Allocate is under way) and checks after every successful Allocate
	// that no GPU is used beyond its capacity.
	var (
		mu       sync.Mutex
		reserved = map[string]bool{} // resource/ID
		used     = map[string]int{}  // GPU UUID -> live devices given on it
		nextPod  int
		// Allocates that succeeded, and that were refused a withheld device.
		allocated, refused atomic.Int64
	)
	gpuOfID := func(id string) string { u, _ := deviceid.UUIDOf(id); return u }
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// ListAndWatch and the reload loop read meanwhile.
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range plugins {
				_ = p.Devices()
			}
			_ = mgr.Held()
			_ = mgr.Withheld()
		}
	})
	var workers sync.WaitGroup
	for w := range 8 {
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []string // this worker's live pods
			for range 150 {
				if len(mine) > 0 && rng.IntN(4) == 0 {
					// A pod ends.
					i := rng.IntN(len(mine))
					pod := mine[i]
					mine = slices.Delete(mine, i, i+1)
					src.mu.Lock()
					g := src.pods[pod]
					delete(src.pods, pod)
					src.mu.Unlock()
					mu.Lock()
					for _, id := range g.ids {
						delete(reserved, g.resource+"/"+id)
						used[gpuOfID(id)]--
					}
					mu.Unlock()
					continue
				}
				res := names[rng.IntN(len(names))]
				p := plugins[res]
				var candidates []string
				if rng.IntN(10) < 7 {
					for _, d := range p.Devices() {
						if d.Health == pluginapi.Healthy {
							candidates = append(candidates, d.ID)
						}
					}
				} else {
					for _, d := range p.Devices() {
						candidates = append(candidates, d.ID)
					}
				}
				rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
				size := 1 + rng.IntN(2)
				mu.Lock()
				var ids []string
				for _, id := range candidates {
					if len(ids) < size && !reserved[res+"/"+id] {
						ids = append(ids, id)
						reserved[res+"/"+id] = true
					}
				}
				nextPod++
				pod := fmt.Sprintf("p%d", nextPod)
				mu.Unlock()
				if len(ids) == 0 {
					continue
				}
				_, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
				if status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), "withheld") {
					refused.Add(1)
				}
				mu.Lock()
				if err != nil {
					for _, id := range ids {
						delete(reserved, res+"/"+id)
					}
					mu.Unlock()
					continue
				}
				for _, id := range ids {
					g := gpuOfID(id)
					used[g]++
					if used[g] > capacity[g] {
						mu.Unlock()
						t.Errorf("GPU %s given %d times (%s to %s), at most %d", g, used[g], id, pod, capacity[g])
						return
					}
				}
				mu.Unlock()
				allocated.Add(1)
				mine = append(mine, pod)
				src.mu.Lock()
				src.pods[pod] = given{resource: res, ids: ids}
				src.mu.Unlock()
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	require.Greater(t, src.reads.Load(), uint64(100), "PodResources read at each Allocate")
	require.Positive(t, allocated.Load())
	require.Positive(t, refused.Load(), "no Allocate asked for a withheld device")
	t.Logf("%d reads, %d Allocates given, %d refused a withheld device", src.reads.Load(), allocated.Load(), refused.Load())
	// What is withheld at the end still names only the holders under
	// earlier names.
	for res, byID := range mgr.Withheld() {
		for id, h := range byID {
			require.Contains(t, foreign, h, "%s %s withheld for %s", res, id, h)
		}
	}
}

// hungPodResources answers until hang is set, then holds each read until
// its context ends, release is closed, or limit passes (the real client
// gives up after 10 s).
type hungPodResources struct {
	answer  map[types.NamespacedName]map[string]map[string][]string
	hang    atomic.Bool
	limit   atomic.Int64 // time.Duration
	release chan struct{}
}

func (h *hungPodResources) Allocated(ctx context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	if h.hang.Load() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.release:
		case <-time.After(time.Duration(h.limit.Load())):
			return nil, context.DeadlineExceeded
		}
	}
	return h.answer, nil
}

// While the kubelet's PodResources API hangs, one Allocate waits for the
// read to time out; the next ones answer within the short wait, still
// refusing the device a running container holds under an earlier name
// (what is known decides) and giving the others. Before, each Allocate
// waited for its own read to fail, here 3 s (10 s on a node).
func TestAllocateWhilePodResourcesHangs(t *testing.T) {
	machine, lib, cfg := fakeNode(t, fake.DGXA100, "version: v1")
	// GPU 0 held under an earlier name.
	src := &hungPodResources{answer: map[types.NamespacedName]map[string]map[string][]string{
		{Namespace: "default", Name: "old"}: {"main": {"nvidia.com/gpu.shared": {deviceid.ReplicaID(machine.UUID(0), 1)}}},
	}, release: make(chan struct{})}
	src.limit.Store(int64(3 * time.Second))
	t.Cleanup(func() { close(src.release) })
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(), PodResources: src})
	require.NoError(t, err)
	// Reads time out after 2 s; refreshes wait 20 ms once one did.
	deviceplugin.SetHeldWaits(mgr, 2*time.Second, 20*time.Millisecond)
	p := mgr.Plugins()[0]
	ctx := klog.NewContext(context.Background(), logr.Discard())
	allocate := func(gpu int) error {
		_, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{machine.UUID(gpu)}}}})
		return err
	}
	require.NoError(t, allocate(1))

	src.hang.Store(true)
	start := time.Now()
	require.NoError(t, allocate(2))
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "the first read times out")
	// From now on a read answers only when the test ends (an hour at
	// most): an Allocate that waited for it would never return. Each one
	// must return (within the 20 ms wait; the watchdog's minute is only
	// there to fail instead of hanging).
	deviceplugin.SetHeldWaits(mgr, time.Hour, 20*time.Millisecond)
	src.limit.Store(int64(time.Hour))
	for gpu := 3; gpu < 8; gpu++ {
		require.NoError(t, returns(t, func() error { return allocate(gpu) }, "GPU %d", gpu))
		err := returns(t, func() error { return allocate(0) }, "GPU 0, held")
		require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
		require.Contains(t, err.Error(), "default/old")
	}
}

// returns runs f and returns its error, failing the test if f has not
// returned within a minute: for calls that must not wait for something
// that never comes (a timing bound would be a benchmark, not a test).
func returns(t *testing.T, f func() error, msgAndArgs ...any) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		require.FailNow(t, "did not return", msgAndArgs...)
		return nil
	}
}

// While the kubelet's PodResources API hangs, the handoff's reads are
// bounded as Allocate's (they are the Manager's reads): once a read has
// failed, each GetPreferredAllocation and Allocate returns, and the
// handoff decides with this process's own record: each pod gets the
// scheduler's set in turn. Before, the handoff read PodResources itself
// and each call waited for its own read, 10 s on a node (the client's
// limit), here until the test ends.
func TestHandoffWhilePodResourcesHangs(t *testing.T) {
	machine, lib, cfg := fakeNode(t, fake.DGXA100, "version: v1")
	// Every read hangs until the test ends (an hour at most).
	src := &hungPodResources{answer: map[types.NamespacedName]map[string]map[string][]string{}, release: make(chan struct{})}
	src.hang.Store(true)
	src.limit.Store(int64(time.Hour))
	t.Cleanup(func() { close(src.release) })
	// a, then b, each scheduled one GPU: 3, then 5.
	pods := &fixture.PodLister{}
	now := time.Now()
	podA, _ := scheduled(t, "a", now, "nvidia.com/gpu", machine.UUID(3))
	podB, _ := scheduled(t, "b", now.Add(time.Second), "nvidia.com/gpu", machine.UUID(5))
	pods.Add(podA)
	pods.Add(podB)
	// As cmd/device-plugin/app wires it: the Handoff's own reads and the
	// Manager's are of the same API.
	h := deviceplugin.NewHandoff(pods, deviceplugin.WithAllocations(src))
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(), PodResources: src, Handoff: h})
	require.NoError(t, err)
	// The first read fails after 50 ms; then reads never end, and a call
	// waits 20 ms for the one under way.
	deviceplugin.SetHeldWaits(mgr, 50*time.Millisecond, 20*time.Millisecond)
	p := mgr.Plugins()[0]
	ctx := klog.NewContext(context.Background(), logr.Discard())
	var all []string
	for gpu := range 8 {
		all = append(all, machine.UUID(gpu))
	}
	prefer := func() ([]string, error) {
		resp, err := p.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
			{AvailableDeviceIDs: all, AllocationSize: 1}}})
		if err != nil {
			return nil, err
		}
		return resp.GetContainerResponses()[0].GetDeviceIDs(), nil
	}
	allocate := func(ids []string) error {
		_, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
		return err
	}
	for i, want := range [][]string{{machine.UUID(3)}, {machine.UUID(5)}} {
		var ids []string
		require.NoError(t, returns(t, func() (err error) { ids, err = prefer(); return err }, "GetPreferredAllocation %d", i))
		require.Equal(t, want, ids, "pod %d gets its scheduler's set", i)
		if i == 0 {
			// The first read failed: from now on none ends.
			deviceplugin.SetHeldWaits(mgr, time.Hour, 20*time.Millisecond)
		}
		require.NoError(t, returns(t, func() error { return allocate(ids) }, "Allocate %d", i))
	}
}
