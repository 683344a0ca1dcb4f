package deviceplugin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// imexRoot is a fake driver root holding the IMEX channels given as
// character devices (1:3, the null device's numbers) and the others as
// plain files. Creating a device node needs CAP_MKNOD: without it the test
// is skipped.
func imexRoot(t *testing.T, chars []string, files ...string) string {
	t.Helper()
	root := fakeDriverRoot(t)
	dir := filepath.Join(root, deviceplugin.IMEXChannelsDir)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, c := range chars {
		err := syscall.Mknod(filepath.Join(dir, c), syscall.S_IFCHR|0o666, 1<<8|3)
		if errors.Is(err, syscall.EPERM) {
			t.Skip("creating a character device needs CAP_MKNOD")
		}
		require.NoError(t, err)
	}
	for _, f := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
	}
	return root
}

// TestIMEXChannelsInjected: imex.channelIDs [0] with channel0 present under
// the driver root: every container that gets a GPU gets the channel, per
// device list strategy as NVIDIA's plugin gives it (NVIDIA_IMEX_CHANNELS,
// a /dev/null mount under imex/, the CDI device
// k8s.device-plugin.nvidia.com/imex-channel=0 in a spec the CDI library
// accepts, a device spec with passDeviceSpecs).
func TestIMEXChannelsInjected(t *testing.T) {
	root := imexRoot(t, []string{"channel0"})
	cdiDir := t.TempDir()
	config := "flags: {nvidiaDriverRoot: " + root + ", plugin: {passDeviceSpecs: true, deviceListStrategy: [envvar, cdi-cri]}}\n" +
		"imex: {channelIDs: [0], required: true}"
	k, p := setup(t, pluginOpts{machine: fake.GB2004GPU, config: config, cdiDir: cdiDir})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 4})
	resp, err := client(t, p, "nvidia.com/gpu").Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{uuidOf(p, 1)}}}})
	require.NoError(t, err)
	cr := resp.ContainerResponses[0]
	require.Equal(t, "0", cr.Envs[deviceplugin.EnvIMEXChannels])
	require.Equal(t, uuidOf(p, 1), cr.Envs[deviceplugin.EnvVisibleDevices])
	const channel = "/dev/nvidia-caps-imex-channels/channel0"
	require.Contains(t, cr.Devices, &pluginapi.DeviceSpec{ContainerPath: channel, HostPath: filepath.Join(root, channel), Permissions: "rw"})
	var names []string
	for _, d := range cr.CdiDevices {
		names = append(names, d.Name)
	}
	require.Equal(t, []string{"k8s.device-plugin.nvidia.com/gpu=" + uuidOf(p, 1), "k8s.device-plugin.nvidia.com/imex-channel=0"}, names)

	cache, err := cdi.NewCache(cdi.WithSpecDirs(cdiDir), cdi.WithAutoRefresh(false))
	require.NoError(t, err)
	require.Empty(t, cache.GetErrors(), "the CDI library accepts both specs")
	for _, n := range names {
		require.NotNil(t, cache.GetDevice(n), n)
	}
	nodes := cache.GetDevice("k8s.device-plugin.nvidia.com/imex-channel=0").ContainerEdits.DeviceNodes
	require.Len(t, nodes, 1)
	require.Equal(t, channel, nodes[0].Path)
	require.Equal(t, filepath.Join(root, channel), nodes[0].HostPath)

	// The node's config drops the channels: the next start removes their
	// spec, the GPUs' stays.
	cfg, err := configv1.Parse([]byte("flags: {nvidiaDriverRoot: " + root + ", plugin: {deviceListStrategy: cdi-cri}}"))
	require.NoError(t, err)
	lib := nvml.New(p.machine.Interface())
	require.NoError(t, lib.Init())
	_, err = deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(), CDISpecDir: cdiDir})
	require.NoError(t, err)
	require.NoError(t, cache.Refresh())
	require.Nil(t, cache.GetDevice("k8s.device-plugin.nvidia.com/imex-channel=0"))
	require.NotNil(t, cache.GetDevice(names[0]))
}

// TestIMEXVolumeMounts: under volume-mounts the channel is a /dev/null
// mount at /var/run/nvidia-container-devices/imex/<id>, beside the GPUs'.
func TestIMEXVolumeMounts(t *testing.T) {
	root := imexRoot(t, []string{"channel0"})
	config := "flags: {nvidiaDriverRoot: " + root + ", plugin: {deviceListStrategy: volume-mounts}}\nimex: {channelIDs: [0]}"
	k, p := setup(t, pluginOpts{machine: fake.GB2004GPU, config: config})
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 4})
	resp, err := client(t, p, "nvidia.com/gpu").Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{uuidOf(p, 0)}}}})
	require.NoError(t, err)
	var mounts []string
	for _, m := range resp.ContainerResponses[0].Mounts {
		require.Equal(t, "/dev/null", m.HostPath)
		mounts = append(mounts, m.ContainerPath)
	}
	require.Equal(t, []string{deviceplugin.VolumeMountsRoot + "/" + uuidOf(p, 0), deviceplugin.VolumeMountsRoot + "/imex/0"}, mounts)
	require.NotContains(t, resp.ContainerResponses[0].Envs, deviceplugin.EnvIMEXChannels, "the variable is the envvar strategy's")
}

// TestIMEXChannelMissing: a channel that is not there (or not a character
// device) stops the plugin when imex.required, naming the channel, as
// NVIDIA's plugin fails to start; when not required it is left out.
func TestIMEXChannelMissing(t *testing.T) {
	root := imexRoot(t, nil, "channel0") // a plain file, not a device
	for _, tc := range []struct {
		name, imex, err string
	}{
		{"required, absent", "{channelIDs: [0], required: true}", "imex.required: IMEX channel /dev/nvidia-caps-imex-channels/channel0"},
		{"required, not a device", "{channelIDs: [0], required: true}", "channel0 is not a character device"},
		{"not required", "{channelIDs: [0]}", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			driverRoot := root
			if tc.name == "required, absent" {
				driverRoot = fakeDriverRoot(t)
			}
			cfg, err := configv1.Parse([]byte("flags: {nvidiaDriverRoot: " + driverRoot + "}\nimex: " + tc.imex))
			require.NoError(t, err)
			m, err := fake.New(fake.GB2004GPU)
			require.NoError(t, err)
			lib := m.Lib(t)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir()})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			resp, err := mgr.Plugins()[0].Allocate(context.Background(), &pluginapi.AllocateRequest{
				ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{mgr.Inventory().GPUs[0].UUID}}}})
			require.NoError(t, err)
			require.NotContains(t, resp.ContainerResponses[0].Envs, deviceplugin.EnvIMEXChannels)
		})
	}
}
