package deviceplugin_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// benchPlugin builds (without serving) the plugin of one resource.
func benchPlugin(b *testing.B, config string, resource string, opts ...fake.Option) *deviceplugin.Plugin {
	b.Helper()
	m, err := fake.New("dgx-a100", opts...)
	require.NoError(b, err)
	lib := m.Lib(b)
	cfg, err := configv1.Parse([]byte(config))
	require.NoError(b, err)
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: b.TempDir()})
	require.NoError(b, err)
	for _, p := range mgr.Plugins() {
		if p.Name() == resource {
			return p
		}
	}
	b.Fatalf("no resource %s", resource)
	return nil
}

func ids(p *deviceplugin.Plugin) []string {
	var out []string
	for _, d := range p.Devices() {
		out = append(out, d.ID)
	}
	return out
}

type benchCase struct {
	name, config, resource string
	opts                   []fake.Option
}

func benchCases() []benchCase {
	seven := []string{"1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"}
	mig := map[int][]string{}
	for i := range 8 {
		mig[i] = seven
	}
	return []benchCase{
		// Baseline: 8 whole GPUs.
		{"whole-8", "version: v1", "nvidia.com/gpu", nil},
		// 8 GPUs x 7 MIG 1g.5gb = 56 devices.
		{"mig-8x7", "version: v1\nflags: {migStrategy: mixed}", "nvidia.com/mig-1g.5gb", []fake.Option{fake.WithMIG(mig)}},
		// 8 GPUs x 10 replicas = 80 devices.
		{"replicas-8x10", "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 10}]}}", "nvidia.com/gpu", nil},
	}
}

func BenchmarkAllocate(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			p := benchPlugin(b, bc.config, bc.resource, bc.opts...)
			all := ids(p)
			req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: all[:1]}}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Allocate(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetPreferredAllocation(b *testing.B) {
	for _, bc := range benchCases() {
		for _, size := range []int32{1, 2} {
			b.Run(bc.name+"/size-"+string(rune('0'+size)), func(b *testing.B) {
				p := benchPlugin(b, bc.config, bc.resource, bc.opts...)
				all := ids(p)
				// A third of the devices in use: available is the rest.
				req := &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
					{AvailableDeviceIDs: all[len(all)/3:], AllocationSize: size},
				}}
				ctx := context.Background()
				resp, err := p.GetPreferredAllocation(ctx, req)
				require.NoError(b, err)
				require.Len(b, resp.ContainerResponses[0].DeviceIDs, int(size), "a set is chosen")
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.GetPreferredAllocation(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGetPreferredAllocationHandoff: 8 whole GPUs, 110 pods on the node
// of which 10 carry a scheduler choice that does not fit (their GPUs are in
// use): the handoff decodes them all, then pkg/score chooses.
func BenchmarkGetPreferredAllocationHandoff(b *testing.B) {
	m, err := fake.New("dgx-a100")
	require.NoError(b, err)
	lib := nvml.New(m.Interface())
	require.NoError(b, lib.Init())
	pods := &fixture.PodLister{}
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: configv1.Default(), PluginDir: b.TempDir(), Handoff: deviceplugin.NewHandoff(pods)})
	require.NoError(b, err)
	p := mgr.Plugins()[0]
	all := ids(p)
	for i := range 110 {
		name := "pod-" + strconv.Itoa(i)
		if i%11 == 0 {
			pod, _ := scheduled(b, name, time.Now(), "nvidia.com/gpu", all[0], all[1])
			pods.Add(pod)
			continue
		}
		pods.Add(fixture.MakePod().Name(name).UID(name).Obj())
	}
	req := &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
		{AvailableDeviceIDs: all[2:], AllocationSize: 2},
	}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.GetPreferredAllocation(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
