package deviceplugin_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// newManager builds a Manager over a fake machine without running it (the
// plugins answer RPCs called directly; every GPU healthy).
func newManager(t *testing.T, machine, config string) (*deviceplugin.Manager, *fake.Machine) {
	t.Helper()
	m, err := fake.New(machine)
	require.NoError(t, err)
	mgr, err := buildManager(t, m, config)
	require.NoError(t, err)
	return mgr, m
}

// fakeNode is an initialized NVML library over a new fake machine of the
// given shape (fake.DGXA100, ...), shut down when the test ends, and the
// device plugin config parsed from config.
func fakeNode(t *testing.T, shape, config string) (*fake.Machine, nvml.Lib, *configv1.Config) {
	t.Helper()
	machine, err := fake.New(shape)
	require.NoError(t, err)
	lib := nvml.New(machine.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	cfg, err := configv1.Parse([]byte(config))
	require.NoError(t, err)
	return machine, lib, cfg
}

// buildManager builds a Manager over fake machine m with config ("" for
// the defaults) without running it, as New answers: New must not panic
// whatever m's NVML says; its error is returned.
func buildManager(t *testing.T, m *fake.Machine, config string) (*deviceplugin.Manager, error) {
	t.Helper()
	lib := nvml.New(m.Interface())
	require.NoError(t, lib.Init())
	t.Cleanup(func() { _ = lib.Shutdown() })
	cfg := configv1.Default()
	if config != "" {
		var err error
		cfg, err = configv1.Parse([]byte(config))
		require.NoError(t, err)
	}
	var mgr *deviceplugin.Manager
	var err error
	require.NotPanics(t, func() {
		mgr, err = deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir()})
	})
	return mgr, err
}

func pluginNamed(t *testing.T, mgr *deviceplugin.Manager, name string) *deviceplugin.Plugin {
	t.Helper()
	for _, p := range mgr.Plugins() {
		if p.Name() == name {
			return p
		}
	}
	t.Fatalf("no plugin %s", name)
	return nil
}

// TestAllocateOneDeviceForTwoContainers: one AllocateRequest whose two
// container requests name the same GPU (or the same replica) gives that
// device twice; like a device named twice in one container it must be
// InvalidArgument.
func TestAllocateOneDeviceForTwoContainers(t *testing.T) {
	for _, tc := range []struct {
		name, config, resource string
		id                     func(m *fake.Machine) string
	}{
		{"whole GPU", "", "nvidia.com/gpu", func(m *fake.Machine) string { return m.UUID(3) }},
		{"replica", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}", "nvidia.com/gpu",
			func(m *fake.Machine) string { return m.UUID(3) + "::1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mgr, m := newManager(t, fake.DGXA100, tc.config)
			p := pluginNamed(t, mgr, tc.resource)
			id := tc.id(m)
			resp, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
				{DevicesIds: []string{id}}, {DevicesIds: []string{id}},
			}})
			require.Equal(t, codes.InvalidArgument, status.Code(err), "device %s given to two containers: %v", id, resp)
		})
	}
}

// TestPreferredAllocationAnswers: whatever the request, an answer is
// either an error or a set of exactly allocationSize distinct IDs out of
// the available ones, holding every must-include ID.
func TestPreferredAllocationAnswers(t *testing.T) {
	const shared = "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}"
	for _, tc := range []struct {
		name        string
		config      string
		avail, must func(m *fake.Machine) []string
		size        int32
	}{
		{"duplicate must-include replica", shared,
			func(m *fake.Machine) []string {
				return []string{m.UUID(0) + "::0", m.UUID(0) + "::1", m.UUID(1) + "::0"}
			},
			func(m *fake.Machine) []string { return []string{m.UUID(0) + "::0", m.UUID(0) + "::0"} }, 2},
		{"duplicate must-include GPU", "",
			func(m *fake.Machine) []string { return []string{m.UUID(0), m.UUID(1), m.UUID(2)} },
			func(m *fake.Machine) []string { return []string{m.UUID(0), m.UUID(0)} }, 2},
		{"duplicate available replicas", shared,
			func(m *fake.Machine) []string {
				return []string{m.UUID(0) + "::0", m.UUID(0) + "::0", m.UUID(1) + "::0"}
			},
			func(*fake.Machine) []string { return nil }, 3},
		{"must-include not available", "",
			func(m *fake.Machine) []string { return []string{m.UUID(0), m.UUID(1)} },
			func(m *fake.Machine) []string { return []string{m.UUID(5)} }, 1},
		{"more must-include than size", "",
			func(m *fake.Machine) []string { return []string{m.UUID(0), m.UUID(1), m.UUID(2)} },
			func(m *fake.Machine) []string { return []string{m.UUID(0), m.UUID(1)} }, 1},
		{"size larger than available", "",
			func(m *fake.Machine) []string { return []string{m.UUID(0), m.UUID(1)} },
			func(*fake.Machine) []string { return nil }, 3},
		{"negative size", "",
			func(m *fake.Machine) []string { return []string{m.UUID(0), m.UUID(1)} },
			func(*fake.Machine) []string { return nil }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mgr, m := newManager(t, fake.DGXA100, tc.config)
			p := pluginNamed(t, mgr, "nvidia.com/gpu")
			avail, must := tc.avail(m), tc.must(m)
			var resp *pluginapi.PreferredAllocationResponse
			var err error
			require.NotPanics(t, func() {
				resp, err = p.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
					{AvailableDeviceIDs: avail, MustIncludeDeviceIDs: must, AllocationSize: tc.size}}})
			})
			if err != nil {
				return
			}
			ids := resp.ContainerResponses[0].DeviceIDs
			if len(ids) == 0 {
				return // the kubelet chooses
			}
			require.Len(t, ids, int(tc.size), "answer %v", ids)
			sorted := slices.Sorted(slices.Values(ids))
			require.Equal(t, len(sorted), len(slices.Compact(slices.Clone(sorted))), "duplicate IDs in the answer %v", ids)
			for _, id := range ids {
				require.Contains(t, avail, id, fmt.Sprintf("answer %v", ids))
			}
			for _, id := range must {
				require.Contains(t, ids, id)
			}
		})
	}
}

// TestAllocateHugeRequest: 10,000 IDs (unknown, or every replica ID
// repeated) are refused with InvalidArgument and leave the plugin serving.
func TestAllocateHugeRequest(t *testing.T) {
	mgr, m := newManager(t, fake.DGXA100, "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}")
	p := pluginNamed(t, mgr, "nvidia.com/gpu")
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s::%d", m.UUID(i%8), i%4)
	}
	_, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)
	resp, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{m.UUID(2) + "::3"}}}})
	require.NoError(t, err)
	require.Equal(t, m.UUID(2), resp.ContainerResponses[0].Envs[deviceplugin.EnvVisibleDevices])
}
