package deviceplugin_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

func TestAllocateThroughKubelet(t *testing.T) {
	k, p := setup(t, pluginOpts{
		machine: "dgx-a100",
		config: `version: v1
flags: {migStrategy: mixed}
sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 4, gpupackDevices: [1]}]}}`,
		fake: []fake.Option{fake.WithMIG(map[int][]string{0: {"3g.20gb", "1g.5gb", "1g.5gb"}})},
	})
	// GPU 0 MIG (1 x 3g, 2 x 1g), GPU 1 shared x4, GPUs 2-7 whole = 6.
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 6, "nvidia.com/gpu.shared": 4, "nvidia.com/mig-1g.5gb": 2, "nvidia.com/mig-3g.20gb": 1})

	migs := map[string]string{} // MIG UUID -> profile
	for _, m := range p.mgr.Inventory().MIG {
		migs[m.UUID] = m.Profile
	}

	t.Run("MIG devices get MIG UUIDs", func(t *testing.T) {
		ids, env, err := k.allocate("mig", "nvidia.com/mig-1g.5gb", 2, nil)
		require.NoError(t, err)
		require.Len(t, ids, 2)
		for _, id := range ids {
			require.Equal(t, "1g.5gb", migs[id])
		}
		slices.Sort(ids)
		got := strings.Split(env[deviceplugin.EnvVisibleDevices], ",")
		slices.Sort(got)
		require.Equal(t, ids, got)
	})
	t.Run("replicas get the parent UUID once", func(t *testing.T) {
		ids, env, err := k.allocate("shared", "nvidia.com/gpu.shared", 2, nil)
		require.NoError(t, err)
		require.Len(t, ids, 2)
		require.Equal(t, uuidOf(p, 1), env[deviceplugin.EnvVisibleDevices], "packed: 2 replicas of GPU 1")
	})
	t.Run("whole GPUs", func(t *testing.T) {
		ids, env, err := k.allocate("whole", "nvidia.com/gpu", 2, nil)
		require.NoError(t, err)
		require.Len(t, ids, 2)
		slices.Sort(ids)
		got := strings.Split(env[deviceplugin.EnvVisibleDevices], ",")
		slices.Sort(got)
		require.Equal(t, ids, got)
	})
}

func TestBadRequests(t *testing.T) {
	k, p := setup(t, pluginOpts{machine: "dgx-a100", config: fmt.Sprintf(`version: v1
flags: {nvidiaDriverRoot: %q, plugin: {passDeviceSpecs: true}}
sharing: {timeSlicing: {failRequestsGreaterThanOne: true, resources: [{name: nvidia.com/gpu, replicas: 4}]}}`, fakeDriverRoot(t))})
	// 8 GPUs x 4 replicas = 32, under nvidia.com/gpu (no rename).
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 32})
	c := client(t, p, "nvidia.com/gpu")
	ctx := context.Background()

	t.Run("more than one replica through the kubelet", func(t *testing.T) {
		_, _, err := k.allocate("two", "nvidia.com/gpu", 2, nil)
		require.ErrorContains(t, err, "failRequestsGreaterThanOne")
		ids, env, err := k.allocate("one", "nvidia.com/gpu", 1, nil)
		require.NoError(t, err, "the plugin keeps serving")
		require.Len(t, ids, 1)
		uuid, _ := deviceid.UUIDOf(ids[0])
		require.Equal(t, uuid, env[deviceplugin.EnvVisibleDevices])
	})
	tests := []struct {
		name string
		ids  []string
		code codes.Code
		msg  string
	}{
		{"unknown ID", []string{"GPU-nope::0"}, codes.InvalidArgument, `unknown device ID "GPU-nope::0"`},
		{"bare UUID of a shared GPU", []string{uuidOf(p, 0)}, codes.InvalidArgument, "unknown device ID"},
		{"empty", nil, codes.InvalidArgument, "without devices"},
		{"twice", []string{uuidOf(p, 0) + "::1", uuidOf(p, 0) + "::1"}, codes.InvalidArgument, "requested twice"},
		{"greater than one", []string{uuidOf(p, 0) + "::1", uuidOf(p, 0) + "::2"}, codes.InvalidArgument, "failRequestsGreaterThanOne"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: tt.ids}}})
			require.Equal(t, tt.code, status.Code(err), err)
			require.ErrorContains(t, err, tt.msg)
		})
	}
	t.Run("unknown ID in GetPreferredAllocation", func(t *testing.T) {
		_, err := c.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
			{AvailableDeviceIDs: []string{"GPU-nope"}, AllocationSize: 1},
		}})
		require.Equal(t, codes.InvalidArgument, status.Code(err), err)
	})
	t.Run("still serving, with device specs", func(t *testing.T) {
		resp, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{uuidOf(p, 5) + "::3"}}}})
		require.NoError(t, err)
		cr := resp.ContainerResponses[0]
		require.Equal(t, uuidOf(p, 5), cr.Envs[deviceplugin.EnvVisibleDevices])
		var paths []string
		for _, d := range cr.Devices {
			paths = append(paths, d.ContainerPath)
		}
		minor := p.mgr.Inventory().GPUs[5].Minor
		require.Contains(t, paths, "/dev/nvidiactl")
		require.Contains(t, paths, "/dev/nvidia"+strconv.Itoa(minor))
	})
}

func TestKubeletRestartAndSocketRemoval(t *testing.T) {
	dir := socketDir(t)
	k1 := startKubelet(t, dir)
	p := startPlugin(t, dir, pluginOpts{machine: "dgx-h100"})
	k1.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

	// The kubelet restarts: the new manager's Start wipes the directory
	// (our socket too) and creates kubelet.sock; we must register again.
	k1.Stop()
	k2 := startKubelet(t, dir)
	k2.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	_, _, err := k2.allocate("after-restart", "nvidia.com/gpu", 2, nil)
	require.NoError(t, err)

	// Someone removes our socket: we serve again, on a socket path of our
	// own (never the removed one), and the kubelet follows.
	pl := p.mgr.Plugins()[0]
	socket := pl.Socket()
	require.NoError(t, os.Remove(socket))
	require.Eventually(t, func() bool {
		now := pl.Socket()
		_, err := os.Stat(now)
		return now != "" && now != socket && err == nil
	}, 10*time.Second, 10*time.Millisecond)
	k2.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
	n := 0
	require.Eventually(t, func() bool {
		n++
		_, _, err := k2.allocate("after-removal-"+strconv.Itoa(n), "nvidia.com/gpu", 1, nil)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
}
