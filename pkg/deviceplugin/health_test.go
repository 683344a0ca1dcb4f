package deviceplugin_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// sharedGPU0 time-shares GPU 0 in 4 replicas (nvidia.com/gpu.shared) and
// leaves GPUs 1-7 whole (nvidia.com/gpu).
const sharedGPU0 = `version: v1
sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [0]}]}}
health: {recovery: {checks: 3, interval: 10s}}`

// watch opens our plugin's ListAndWatch stream directly, as a second client
// beside the kubelet, to see each update as one message.
func watch(t *testing.T, p *plugin, resource string) pluginapi.DevicePlugin_ListAndWatchClient {
	t.Helper()
	var socket string
	for _, pl := range p.mgr.Plugins() {
		if pl.Name() == resource {
			socket = pl.Socket()
		}
	}
	require.NotEmpty(t, socket, resource)
	conn, err := grpc.NewClient("passthrough:///"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(ctx, &pluginapi.Empty{})
	require.NoError(t, err)
	return s
}

func client(t *testing.T, p *plugin, resource string) pluginapi.DevicePluginClient {
	t.Helper()
	for _, pl := range p.mgr.Plugins() {
		if pl.Name() == resource {
			conn, err := grpc.NewClient("unix://"+pl.Socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Close() })
			return pluginapi.NewDevicePluginClient(conn)
		}
	}
	t.Fatalf("no plugin for %s", resource)
	return nil
}

// unhealthy returns the sorted IDs of unhealthy devices in one update.
func unhealthy(r *pluginapi.ListAndWatchResponse) []string {
	var out []string
	for _, d := range r.Devices {
		if d.Health != pluginapi.Healthy {
			out = append(out, d.ID)
		}
	}
	slices.Sort(out)
	return out
}

// sharedA100 is a DGX A100 whose GPU 0 is time-shared 4 ways (sharedGPU0:
// 4 replicas of nvidia.com/gpu.shared beside 7 whole nvidia.com/gpu),
// registered with the kubelet, and a ListAndWatch stream of resource with
// its first update read (all devices healthy).
func sharedA100(t *testing.T, resource string) (*kubelet, *plugin, pluginapi.DevicePlugin_ListAndWatchClient, *pluginapi.ListAndWatchResponse) {
	t.Helper()
	k, p := setup(t, pluginOpts{machine: "dgx-a100", config: sharedGPU0})
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7})
	s := watch(t, p, resource)
	first, err := s.Recv()
	require.NoError(t, err)
	require.Empty(t, unhealthy(first))
	return k, p, s, first
}

func TestXID48TakesAllReplicasOutInOneUpdateAndRecovers(t *testing.T) {
	k, p, s, first := sharedA100(t, "nvidia.com/gpu.shared")
	require.Len(t, first.Devices, 4)

	// XID 13 is an application error: nothing changes. XID 48 (double-bit
	// ECC) on GPU 0 comes after it, so the next update proves 13 was skipped
	// and 48 took all 4 replicas out at once.
	p.machine.InjectXID(0, 13)
	p.machine.InjectXID(0, 48)
	next, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, replicaIDs(uuidOf(p, 0), 4), unhealthy(next), "all 4 replicas unhealthy in one update")
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 0, "nvidia.com/gpu": 7})
	_, total := k.counts()
	require.Equal(t, int64(4), total["nvidia.com/gpu.shared"], "capacity keeps the unhealthy replicas")

	// Recovery: 3 consecutive passing checks, one per 10s tick of the fake clock.
	require.Eventually(t, func() bool {
		p.clock.Step(10 * time.Second)
		return p.mgr.Health().Healthy(0)
	}, 10*time.Second, 20*time.Millisecond)
	back, err := s.Recv()
	require.NoError(t, err)
	require.Empty(t, unhealthy(back), "all 4 replicas healthy again in one update")
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7})
}

func TestXID13ChangesNothing(t *testing.T) {
	_, p, s, _ := sharedA100(t, "nvidia.com/gpu")
	for _, xid := range []uint64{13, 31, 43, 45, 68, 109} {
		p.machine.InjectXID(1, xid)
	}
	p.machine.InjectECC(1, false) // single-bit: counted only
	p.machine.InjectXID(2, 48)    // marker: the first change after the skipped ones
	next, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, []string{uuidOf(p, 2)}, unhealthy(next), "only GPU 2 (XID 48) is out; GPU 1's application XIDs changed nothing")
	require.True(t, p.mgr.Health().Healthy(1))
	require.True(t, p.mgr.Health().Healthy(0))
}

func TestLostGPULeavesOthersAllocatable(t *testing.T) {
	k, p := setup(t, pluginOpts{machine: "dgx-a100", config: sharedGPU0})
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7})
	p.machine.LoseGPU(3)
	// Only GPU 3 goes: 7 - 1 = 6 whole GPUs, the 4 replicas of GPU 0 stay.
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 6})
	ids, env, err := k.allocate("six", "nvidia.com/gpu", 6, nil)
	require.NoError(t, err)
	require.Len(t, ids, 6)
	require.NotContains(t, ids, uuidOf(p, 3))
	require.NotContains(t, env[deviceplugin.EnvVisibleDevices], uuidOf(p, 3))
	_, _, err = k.allocate("replica", "nvidia.com/gpu.shared", 1, nil)
	require.NoError(t, err)
	// Asked directly for the lost GPU, the plugin refuses it.
	_, err = client(t, p, "nvidia.com/gpu").Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{uuidOf(p, 3)}}}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), err)

	// While lost, checks fail and it stays out; once back it recovers.
	for range 5 {
		p.mgr.Health().Probe(context.Background())
	}
	require.False(t, p.mgr.Health().Healthy(3))
	p.machine.RestoreGPU(3)
	for range 3 {
		p.mgr.Health().Probe(context.Background())
	}
	require.True(t, p.mgr.Health().Healthy(3))
	k.waitCounts(map[string]int64{"nvidia.com/gpu.shared": 4, "nvidia.com/gpu": 7}) // healthy counts, allocated or not
}

func TestMIGHealth(t *testing.T) {
	k, p := setup(t, pluginOpts{
		machine: "dgx-a100",
		config:  "version: v1\nflags: {migStrategy: mixed}",
		fake:    []fake.Option{fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb", "1g.5gb"}, 1: {"1g.5gb", "1g.5gb"}})},
	})
	// 3 + 2 = 5 MIG devices; GPUs 2-7 whole = 6.
	k.waitCounts(map[string]int64{"nvidia.com/mig-1g.5gb": 5, "nvidia.com/gpu": 6})
	s := watch(t, p, "nvidia.com/mig-1g.5gb")
	_, err := s.Recv()
	require.NoError(t, err)
	var gpu0, gpu1 []string
	var first struct{ gi, ci int }
	for _, m := range p.mgr.Inventory().MIG {
		switch m.ParentIndex {
		case 0:
			if len(gpu0) == 0 {
				first.gi, first.ci = m.GIID, m.CIID
			}
			gpu0 = append(gpu0, m.UUID)
		case 1:
			gpu1 = append(gpu1, m.UUID)
		}
	}
	slices.Sort(gpu0)

	// An XID naming one MIG instance takes out that MIG device only.
	p.machine.InjectMIGXID(0, first.gi, first.ci, 94)
	next, err := s.Recv()
	require.NoError(t, err)
	require.Len(t, unhealthy(next), 1)
	require.Contains(t, gpu0, unhealthy(next)[0])
	k.waitCounts(map[string]int64{"nvidia.com/mig-1g.5gb": 4, "nvidia.com/gpu": 6})

	// An XID on the whole GPU takes out all of its MIG devices in one update.
	p.machine.InjectXID(0, 48)
	next, err = s.Recv()
	require.NoError(t, err)
	require.Equal(t, gpu0, unhealthy(next))
	k.waitCounts(map[string]int64{"nvidia.com/mig-1g.5gb": 2, "nvidia.com/gpu": 6})

	// 3 passing checks bring the GPU and its MIG device back.
	for range 3 {
		p.mgr.Health().Probe(context.Background())
	}
	k.waitCounts(map[string]int64{"nvidia.com/mig-1g.5gb": 5, "nvidia.com/gpu": 6})
	require.Len(t, gpu1, 2)
}

// TestHealthConfigDecidesWhichEventsCount: NVIDIA's health fields
// (criticalXIDs, ignoredXIDs, eventTypes) through the fake NVML event
// stream on a DGX A100. Each case injects events that must change nothing
// on GPU 1, then XID 48 on GPU 2 as a marker: the next ListAndWatch update
// shows GPU 2 alone out, so the events before it were not acted on; then
// one event that must take GPU 3 out.
func TestHealthConfigDecidesWhichEventsCount(t *testing.T) {
	type event struct {
		xid uint64 // 0: a double-bit ECC error
	}
	for _, tc := range []struct {
		name    string
		health  string
		ignored []event // on GPU 1
		counted event   // on GPU 3
		marker  event   // on GPU 2; default XID 48
	}{
		{"criticalXIDs list", "{criticalXIDs: [48, 63]}", []event{{94}, {13}, {31}}, event{63}, event{48}},
		{"criticalXIDs naming an application XID", "{criticalXIDs: [31, 48]}", []event{{94}, {13}}, event{31}, event{48}},
		{"ignoredXIDs replaces the defaults", "{ignoredXIDs: [94], criticalXIDs: all}", []event{{94}}, event{13}, event{48}},
		{"eventTypes without ECC", "{eventTypes: [EventTypeXidCriticalError]}", []event{{0}, {13}}, event{94}, event{48}},
		// XID 79 is a lost GPU (pkg/nvml reads it so), acted on whatever the
		// types: only the other XIDs are not watched.
		{"eventTypes without XIDs", "{eventTypes: [EventTypeDoubleBitEccError]}", []event{{94}, {48}}, event{79}, event{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: "version: v1\nhealth: " + tc.health})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			s := watch(t, p, "nvidia.com/gpu")
			_, err := s.Recv()
			require.NoError(t, err)
			inject := func(gpu int, e event) {
				if e.xid == 0 {
					p.machine.InjectECC(gpu, true)
					return
				}
				p.machine.InjectXID(gpu, e.xid)
			}
			for _, e := range tc.ignored {
				inject(1, e)
			}
			inject(2, tc.marker)
			next, err := s.Recv()
			require.NoError(t, err)
			require.Equal(t, []string{uuidOf(p, 2)}, unhealthy(next), "only the marker's GPU 2 is out")
			require.True(t, p.mgr.Health().Healthy(1))

			inject(3, tc.counted)
			next, err = s.Recv()
			require.NoError(t, err)
			require.ElementsMatch(t, []string{uuidOf(p, 2), uuidOf(p, 3)}, unhealthy(next))
		})
	}
}

// TestRestartOnDeviceUnhealthy: with flags.restartOnDeviceUnhealthy, a
// device going unhealthy ends Run with ErrRestartOnUnhealthy (an
// ErrRediscover: the command discovers the node again, as NVIDIA's plugin
// is restarted by its failing liveness probe); a skipped XID does not.
// Without the flag the plugin keeps running and serves the other GPUs.
func TestRestartOnDeviceUnhealthy(t *testing.T) {
	for _, restart := range []bool{true, false} {
		t.Run(fmt.Sprintf("restartOnDeviceUnhealthy=%v", restart), func(t *testing.T) {
			k, p := setup(t, pluginOpts{machine: fake.DGXA100,
				config: fmt.Sprintf("version: v1\nflags: {restartOnDeviceUnhealthy: %v}", restart)})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			s := watch(t, p, "nvidia.com/gpu")
			_, err := s.Recv()
			require.NoError(t, err)
			p.machine.InjectXID(1, 13) // an application XID: skipped
			p.machine.InjectXID(2, 48)
			if !restart {
				next, err := s.Recv()
				require.NoError(t, err)
				require.Equal(t, []string{uuidOf(p, 2)}, unhealthy(next))
				k.waitCounts(map[string]int64{"nvidia.com/gpu": 7})
				select {
				case err := <-p.done:
					t.Fatalf("Run ended: %v", err)
				default:
				}
				return
			}
			select {
			case err := <-p.done:
				require.ErrorIs(t, err, deviceplugin.ErrRestartOnUnhealthy)
				require.ErrorIs(t, err, deviceplugin.ErrRediscover)
				p.done <- nil // for the cleanup
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not end on the unhealthy GPU")
			}
			require.True(t, p.mgr.Health().Healthy(1), "the skipped XID took nothing out")
			require.False(t, p.mgr.Health().Healthy(2))
		})
	}
}
