package deviceplugin_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/test/harness"
)

// initOnly is a pod whose only GPU request is its init container "init"'s
// (a regular init container, or a sidecar when sidecar is set), one GPU,
// the scheduler's choice id; its app container "main" asks none.
func initOnly(t *testing.T, name string, sidecar bool, sec int64, id string) *v1.Pod {
	t.Helper()
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{"nvidia.com/gpu": {id}},
		Containers: map[string]map[string][]string{"init": {"nvidia.com/gpu": {id}}},
	})
	require.NoError(t, err)
	p := fixture.MakePod().Named(name).Node("node").Created(time.Unix(sec, 0)).
		Annotations(protocol.DevicesAnnotation, s, protocol.AssumedAtAnnotation, protocol.FormatAssumedAt(time.Unix(sec, 0)))
	if sidecar {
		p.Sidecar("init")
	} else {
		p.InitContainer("init")
	}
	return p.Limit("nvidia.com/gpu", 1).Container("main").Obj()
}

// oneGPU is a one-container pod asking one GPU, the scheduler's choice id.
func oneGPU(t *testing.T, name string, sec int64, id string) *v1.Pod {
	t.Helper()
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{"nvidia.com/gpu": {id}},
		Containers: map[string]map[string][]string{"main": {"nvidia.com/gpu": {id}}},
	})
	require.NoError(t, err)
	return fixture.MakePod().Named(name).Node("node").Created(time.Unix(sec, 0)).
		Annotations(protocol.DevicesAnnotation, s, protocol.AssumedAtAnnotation, protocol.FormatAssumedAt(time.Unix(sec, 0))).
		GPUs("nvidia.com/gpu", 1).Obj()
}

// A pod whose only GPU request is an init container's runs when the device
// plugin restarts (the kubelet keeps running). The new process remembers
// none of its Allocates, and the kubelet's PodResources never lists a
// regular init container: the pod is listed, its app container without
// devices. Its entry stayed pending for the pod's life, ahead of every
// later pod of its size: the next pod was answered for it (its set held:
// the plugin's own choice) and that Allocate marked it, so the next pod's
// own entry stayed pending and every later pod got its predecessor's set.
// A pod the kubelet listed before this process registered had its
// admission over (no pod needing the plugin's resource is admitted while
// no plugin of it is registered) and, once it started, its entries are
// served. A sidecar is listed with its devices (v1.37): recovered already.
func TestHandoffInitOnlyPodAfterPluginRestart(t *testing.T) {
	tests := []struct {
		name    string
		sidecar bool
	}{
		{"regular init container", false},
		{"sidecar", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := socketDir(t)
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
			ctx := klog.NewContext(context.Background(), logger)
			hk, err := harness.StartKubelet(ctx, dir)
			require.NoError(t, err)
			k := &kubelet{t: t, Kubelet: hk}
			podres := deviceplugin.NewPodResources(servePodResources(t, k))
			pods := &fixture.PodLister{}

			first := startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", handoff: deviceplugin.NewHandoff(pods, deviceplugin.WithAllocations(podres))})
			t.Cleanup(hk.Stop) // before the plugins stop (cleanups run last first)
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

			// The init-only pod is admitted by the first process and runs:
			// it holds GPU 2 (the kubelet keeps an init container's devices
			// for the pod's life).
			run := initOnly(t, "run", tc.sidecar, 10, uuidOf(first, 2))
			pods.Add(run)
			require.NoError(t, hk.Admit(ctx, run))
			require.Equal(t, []string{uuidOf(first, 2)}, hk.Devices(run)["nvidia.com/gpu"])
			run.Status.Phase, run.Status.StartTime = v1.PodRunning, &metav1.Time{Time: time.Unix(11, 0)}

			// The plugin restarts: the first process ends (the kubelet sees
			// its devices go), a new one starts with an empty own record.
			first.cancel()
			err = <-first.done
			first.done <- err // for startPlugin's cleanup
			require.NoError(t, err)
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 0})
			h := deviceplugin.NewHandoff(pods, deviceplugin.WithUnsynced(), deviceplugin.WithAllocations(podres))
			h.Observe(run) // the informer's first list
			h.Synced()
			second := startPlugin(t, dir, pluginOpts{machine: "dgx-1-v100", handoff: h})
			for i := range 8 {
				require.Equal(t, uuidOf(first, i), uuidOf(second, i), "the same GPUs")
			}
			// 8 GPUs, all healthy again; GPU 2 held by run: 7 to give.
			k.waitCounts(map[string]int64{"nvidia.com/gpu": 8})

			// Later pods of size 1 each get their own set: 5, then 6, then 0.
			for i, gpu := range []int{5, 6, 0} {
				p := oneGPU(t, "next"+string(rune('a'+i)), int64(20+i), uuidOf(second, gpu))
				pods.Add(p)
				h.Observe(p)
				require.NoError(t, hk.Admit(ctx, p))
				require.Equal(t, []string{uuidOf(second, gpu)}, hk.Devices(p)["nvidia.com/gpu"], "pod %s gets its own set", p.Name)
			}
			require.Equal(t, []string{uuidOf(second, 2)}, hk.Devices(run)["nvidia.com/gpu"], "run keeps GPU 2")
		})
	}
}
