package deviceplugin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// driverMIGMinors writes a mig-minors file as the driver does: config 1,
// monitor 2, then for each GPU minor g, GPU instance i (0-14) its access
// cap and the access caps of compute instances 0-7, numbered in order:
// gpu g / gi i is 3 + (15g+i)*9, its ci c is that + 1 + c.
func driverMIGMinors(t *testing.T, root string, gpus int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("config 1\nmonitor 2\n")
	for g := range gpus {
		for i := range 15 {
			base := 3 + (15*g+i)*9
			fmt.Fprintf(&b, "gpu%d/gi%d/access %d\n", g, i, base)
			for c := range 8 {
				fmt.Fprintf(&b, "gpu%d/gi%d/ci%d/access %d\n", g, i, c, base+1+c)
			}
		}
	}
	path := filepath.Join(root, nvml.MIGMinorsFile)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
}

// TestMIGDeviceSpecs is the field report: migStrategy mixed,
// passDeviceSpecs, Allocate one 1g.5gb. The container got /dev/nvidiactl,
// /dev/nvidia-uvm, /dev/nvidia-uvm-tools and /dev/nvidia0 only; it also
// needs the nvidia-cap nodes of its GPU instance and compute instance.
func TestMIGDeviceSpecs(t *testing.T) {
	root := fakeDriverRoot(t) // the mig-minors file and the three control nodes
	config := fmt.Sprintf(`version: v1
flags: {migStrategy: mixed, nvidiaDriverRoot: %q, plugin: {passDeviceSpecs: true}}`, root)
	k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: config,
		fake: []fake.Option{fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb"}, 2: {"3g.20gb"}})}})
	k.waitCounts(map[string]int64{"nvidia.com/mig-1g.5gb": 2, "nvidia.com/mig-3g.20gb": 1, "nvidia.com/gpu": 6})
	ctx := context.Background()
	for _, m := range p.mgr.Inventory().MIG {
		res := "nvidia.com/mig-" + m.Profile
		t.Run(m.UUID, func(t *testing.T) {
			resp, err := client(t, p, res).Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{m.UUID}}}})
			require.NoError(t, err)
			minor := p.mgr.Inventory().GPUs[m.ParentIndex].Minor
			gi := 3 + (15*minor+m.GIID)*9
			want := []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
				fmt.Sprintf("/dev/nvidia%d", minor),
				fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", gi),
				fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", gi+1+m.CIID)}
			var got []string
			for _, d := range resp.ContainerResponses[0].Devices {
				got = append(got, d.ContainerPath)
				require.Equal(t, filepath.Join(root, d.ContainerPath), d.HostPath)
				require.Equal(t, "rw", d.Permissions)
			}
			require.Equal(t, want, got)
		})
	}
	// Two MIG devices of one GPU: the GPU node once, both instances' caps.
	var ids []string
	for _, m := range p.mgr.Inventory().MIG {
		if m.ParentIndex == 0 {
			ids = append(ids, m.UUID)
		}
	}
	resp, err := client(t, p, "nvidia.com/mig-1g.5gb").Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
	require.NoError(t, err)
	require.Len(t, resp.ContainerResponses[0].Devices, 3+1+2*2)

	// No mig-minors file: a clear error, not a container without its caps.
	require.NoError(t, os.Remove(filepath.Join(root, nvml.MIGMinorsFile)))
	_, err = client(t, p, "nvidia.com/mig-1g.5gb").Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids[:1]}}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
	require.ErrorContains(t, err, "mig-minors")
	// Whole GPUs need no caps file.
	_, err = client(t, p, "nvidia.com/gpu").Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{uuidOf(p, 5)}}}})
	require.NoError(t, err)
}

// TestDeviceSpecsControlNodes: with passDeviceSpecs the control nodes
// (/dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools,
// /dev/nvidia-modeset) are passed as NVIDIA's plugin passes them: each one
// that exists, in that order, and none that does not (a device spec whose
// host path is missing fails the container's creation: nvidia-uvm-tools
// and nvidia-modeset are absent on many nodes). The GPU's own node is
// always passed.
func TestDeviceSpecsControlNodes(t *testing.T) {
	tests := []struct {
		name    string
		present []string // under <root>/dev
		want    []string // control nodes passed, before /dev/nvidia<minor>
	}{
		{"all four", []string{"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"},
			[]string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"}},
		{"no uvm-tools, no modeset", []string{"nvidiactl", "nvidia-uvm"},
			[]string{"/dev/nvidiactl", "/dev/nvidia-uvm"}},
		{"modeset, no uvm (module not loaded yet)", []string{"nvidiactl", "nvidia-modeset"},
			[]string{"/dev/nvidiactl", "/dev/nvidia-modeset"}},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
			for _, n := range tt.present {
				require.NoError(t, os.WriteFile(filepath.Join(root, "dev", n), nil, 0o644))
			}
			config := fmt.Sprintf("flags: {nvidiaDriverRoot: %q, plugin: {passDeviceSpecs: true}}", root)
			k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: config})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			resp, err := client(t, p, "nvidia.com/gpu").Allocate(context.Background(), &pluginapi.AllocateRequest{
				ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{uuidOf(p, 3)}}}})
			require.NoError(t, err)
			var got []string
			for _, d := range resp.ContainerResponses[0].Devices {
				got = append(got, d.ContainerPath)
				require.Equal(t, filepath.Join(root, d.ContainerPath), d.HostPath)
			}
			want := append(slices.Clone(tt.want), fmt.Sprintf("/dev/nvidia%d", p.mgr.Inventory().GPUs[3].Minor))
			require.Equal(t, want, got)
		})
	}
}

// TestDeviceSpecsNotWithCDIOnly: NVIDIA's plugin passes device specs only
// when at least one device list strategy is not CDI; with CDI alone the
// CDI spec carries the device nodes and passDeviceSpecs has no effect (a
// MIG device's specs, which need the mig-minors file, cannot fail the
// Allocate then).
func TestDeviceSpecsNotWithCDIOnly(t *testing.T) {
	tests := []struct {
		strategies string
		wantSpecs  bool
	}{
		{"[cdi-cri]", false},
		{"[cdi-annotations]", false},
		{"[cdi-annotations, cdi-cri]", false},
		{"[cdi-cri, envvar]", true},
		{"[volume-mounts, cdi-annotations]", true},
		{"[envvar]", true},
	}
	for _, tt := range tests {
		t.Run(tt.strategies, func(t *testing.T) {
			root := fakeDriverRoot(t)
			config := fmt.Sprintf("flags: {nvidiaDriverRoot: %q, plugin: {passDeviceSpecs: true, deviceListStrategy: %s}}", root, tt.strategies)
			k, p := setup(t, pluginOpts{machine: fake.DGXA100, config: config, cdiDir: t.TempDir()})
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})
			resp, err := client(t, p, "nvidia.com/gpu").Allocate(context.Background(), &pluginapi.AllocateRequest{
				ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{uuidOf(p, 2)}}}})
			require.NoError(t, err)
			require.Equal(t, tt.wantSpecs, len(resp.ContainerResponses[0].Devices) > 0, resp.ContainerResponses[0].Devices)
		})
	}
}
