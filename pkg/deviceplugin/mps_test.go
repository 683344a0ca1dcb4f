package deviceplugin_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/mps"
	"github.com/gpupack/gpupack/pkg/mps/mpstest"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestMPSWithKubelet runs MPS sharing against the real kubelet device
// manager on a 4 x T4 box with the fake control program: one daemon per
// GPU with NVIDIA's settings, the MPS replicas advertised, a container
// given its GPU's pipe directory and the MPS shm, a request of two refused,
// a daemon crash turning that GPU's replicas unhealthy at the kubelet until
// the daemon is restarted, and every daemon quit when the plugin stops.
func TestMPSWithKubelet(t *testing.T) {
	ctl := mpstest.New(t)
	root := mps.Root(t.TempDir())
	var uuids []string
	var p *plugin
	// Registered first, so it runs after the plugin has stopped.
	t.Cleanup(func() {
		for i, u := range uuids {
			rec := ctl.RecordOf(t, u)
			require.Equal(t, "quit", rec[len(rec)-1], "daemon of %s quit when the plugin stopped", u)
			require.NoFileExists(t, root.PIDFile(u))
			require.Equal(t, gonvml.COMPUTEMODE_DEFAULT, p.machine.ComputeMode(i), "GPU %d back in DEFAULT", i)
		}
	})
	config := fmt.Sprintf("flags: {mpsRoot: %q}\nsharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}", root)
	k, p0 := setup(t, pluginOpts{machine: fake.PCIe4GPU2Socket, config: config,
		mps: &deviceplugin.MPSOptions{Binary: ctl.Binary, CheckInterval: time.Second, InitialBackoff: 5 * time.Second, MaxBackoff: 10 * time.Second}})
	p = p0
	k.waitCounts(map[string]int64{"nvidia.com/gpu": 16}) // 4 GPUs x 4 replicas
	for i := range 4 {
		uuids = append(uuids, uuidOf(p, i))
		// As NVIDIA's MPS daemon sets it, through pkg/nvml.
		require.Equal(t, gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS, p.machine.ComputeMode(i), "GPU %d", i)
	}
	// Published for the scheduler: replicas of 4, one per request.
	res := p.mgr.Node().Resources
	require.Len(t, res, 1)
	require.Equal(t, 4, res[0].Replicas)
	require.True(t, res[0].FailRequestsGreaterThanOne)

	// Each GPU's daemon: its own pipe and log dirs, only its GPU visible
	// (the fake records CUDA_VISIBLE_DEVICES), 1/4 of the threads and of
	// the memory (15360 MiB / 4 = 3840 MiB).
	for _, u := range uuids {
		require.Equal(t, []string{
			"-d pipe=" + root.PipeDir(u) + " log=" + root.LogDir(u),
			"set_default_device_pinned_mem_limit " + u + " 3840M",
			"set_default_active_thread_percentage 25",
			"get_default_active_thread_percentage",
		}, ctl.RecordOf(t, u)[:4])
	}

	ids, env, mounts := allocateMPS(t, k, "one", 1)
	require.Len(t, ids, 1)
	gpu := ids[0][:len(ids[0])-len("::0")]
	require.Contains(t, uuids, gpu)
	require.Equal(t, gpu, env["NVIDIA_VISIBLE_DEVICES"], "the replica's GPU, as for time-slicing")
	require.Equal(t, "/mps/"+gpu+"/pipe", env["CUDA_MPS_PIPE_DIRECTORY"])
	require.Equal(t, map[string]string{
		"/mps/" + gpu + "/pipe": root.PipeDir(gpu),
		"/dev/shm":              root.ShmDir(),
	}, mounts)

	// NVIDIA forces failRequestsGreaterThanOne under MPS.
	_, _, err := k.allocate("two", "nvidia.com/gpu", 2, nil)
	require.ErrorContains(t, err, "failRequestsGreaterThanOne allows 1")

	// GPU 2's daemon crashes and cannot start for now: its 4 replicas go
	// unhealthy at the kubelet (16 - 4 = 12), the others stay.
	ctl.FailStarts(t, uuids[2], true)
	ctl.Crash(t, root.PIDFile(uuids[2]))
	stepUntil(t, p, func() bool { h, _ := k.counts(); return h["nvidia.com/gpu"] == 12 })
	start := "-d pipe=" + root.PipeDir(uuids[2]) + " log=" + root.LogDir(uuids[2])
	require.Eventually(t, func() bool { return countOf(ctl.RecordOf(t, uuids[2]), start+" (failed)") > 0 }, 10*time.Second, 10*time.Millisecond,
		"the restart was tried and failed")
	_, total := k.counts()
	require.Equal(t, int64(16), total["nvidia.com/gpu"], "capacity stays")
	require.True(t, p.mgr.Node().GPUs[1].Healthy)
	require.False(t, p.mgr.Node().GPUs[2].Healthy, "the published topology says so too")

	// It can start again: restarted after its backoff, healthy again.
	ctl.FailStarts(t, uuids[2], false)
	stepUntil(t, p, func() bool { h, _ := k.counts(); return h["nvidia.com/gpu"] == 16 })
	require.True(t, p.mgr.Node().GPUs[2].Healthy)
	require.Equal(t, 2, countOf(ctl.RecordOf(t, uuids[2]), start), "the first start and the restart that worked")
}

// TestMPSMissingBinary: a config sharing GPUs with MPS and no control
// program is a clear error before anything is served.
func TestMPSMissingBinary(t *testing.T) {
	m, err := fake.New(fake.PCIe4GPU2Socket)
	require.NoError(t, err)
	cfg, err := configv1.Parse([]byte("sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}"))
	require.NoError(t, err)
	lib := m.Lib(t)
	_, err = deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(),
		MPS: &deviceplugin.MPSOptions{Binary: "/nonexistent/nvidia-cuda-mps-control"}})
	require.ErrorContains(t, err, `sharing GPUs with MPS: MPS control binary "/nonexistent/nvidia-cuda-mps-control"`)
	// Without MPS options (--print-topology) the resources are built.
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir()})
	require.NoError(t, err)
	require.Len(t, mgr.Plugins()[0].Devices(), 8) // 4 x 2
}

func allocateMPS(t *testing.T, k *kubelet, name string, count int64) ([]string, map[string]string, map[string]string) {
	t.Helper()
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "main", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(count, resource.DecimalSI)}}}}},
	}
	ctx := klog.NewContext(context.Background(), klog.Background())
	require.NoError(t, k.Admit(ctx, pod))
	env, err := k.Env(ctx, pod, &pod.Spec.Containers[0])
	require.NoError(t, err)
	mounts, err := k.Mounts(ctx, pod, &pod.Spec.Containers[0])
	require.NoError(t, err)
	return k.Devices(pod)["nvidia.com/gpu"], env, mounts
}

// stepUntil advances the plugin's clock a second at a time until cond.
func stepUntil(t *testing.T, p *plugin, cond func() bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		if cond() {
			return true
		}
		p.clock.Step(time.Second)
		return false
	}, 20*time.Second, 20*time.Millisecond)
}

func countOf(l []string, s string) int {
	n := 0
	for _, x := range l {
		if x == s {
			n++
		}
	}
	return n
}

// TestMPSAllocateAcrossStrategies: under every device list and device ID
// strategy, an MPS replica's container gets its GPU in the device list as
// any replica does, plus its GPU's pipe directory and the MPS shm.
func TestMPSAllocateAcrossStrategies(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		list, id string
	}{
		{"envvar", "uuid"}, {"envvar", "index"}, {"volume-mounts", "uuid"},
		{"cdi-annotations", "uuid"}, {"cdi-cri", "index"}, {"[cdi-cri, envvar]", "uuid"},
	} {
		t.Run(tc.list+"/"+tc.id, func(t *testing.T) {
			m, err := fake.New(fake.PCIe4GPU2Socket)
			require.NoError(t, err)
			lib := m.Lib(t)
			cfg, err := configv1.Parse([]byte(fmt.Sprintf("flags: {mpsRoot: %q, plugin: {deviceListStrategy: %s, deviceIDStrategy: %s}}\nsharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}",
				root, tc.list, tc.id)))
			require.NoError(t, err)
			mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir()})
			require.NoError(t, err)
			gpu := mgr.Inventory().GPUs[3].UUID
			resp, err := mgr.Plugins()[0].Allocate(context.Background(), &pluginapi.AllocateRequest{
				ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{gpu + "::1"}}}})
			require.NoError(t, err)
			c := resp.ContainerResponses[0]
			require.Equal(t, "/mps/"+gpu+"/pipe", c.Envs["CUDA_MPS_PIPE_DIRECTORY"])
			mounts := map[string]string{}
			for _, mt := range c.Mounts {
				mounts[mt.ContainerPath] = mt.HostPath
			}
			require.Equal(t, root+"/"+gpu+"/pipe", mounts["/mps/"+gpu+"/pipe"])
			require.Equal(t, root+"/shm", mounts["/dev/shm"])
			name := gpu
			if tc.id == "index" {
				name = "3"
			}
			switch tc.list {
			case "envvar":
				require.Equal(t, name, c.Envs["NVIDIA_VISIBLE_DEVICES"])
			case "volume-mounts":
				require.Equal(t, "/dev/null", mounts["/var/run/nvidia-container-devices/"+name])
			case "cdi-annotations":
				require.Len(t, c.Annotations, 1)
				for _, v := range c.Annotations {
					require.Equal(t, "k8s.device-plugin.nvidia.com/gpu="+name, v)
				}
			default:
				require.Equal(t, "k8s.device-plugin.nvidia.com/gpu="+name, c.CdiDevices[0].Name)
			}
		})
	}
}
