package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func TestBadPodRequests(t *testing.T) {
	n := fixture.DGX1V100("bad")
	h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", n)})
	tests := []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"negative count", gpuPod("neg", "nvidia.com/gpu", -1), `container "main": nvidia.com/gpu quantity -1 is negative`},
		{"fraction", func() *v1.Pod {
			p := gpuPod("frac", "nvidia.com/gpu", 1)
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("500m")
			return p
		}(), "quantity 500m is not a whole number"},
		{"absurd count", gpuPod("huge", "nvidia.com/gpu", 1<<30), "quantity 1073741824 is more than the 1048576 devices a container may ask"},
		// 1E is a whole number too, far above the bound; 2.5E is not whole
		// but the bound is what is wrong with it.
		{"exa count", func() *v1.Pod {
			p := gpuPod("exa", "nvidia.com/gpu", 1)
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1E")
			return p
		}(), "quantity 1E is more than the 1048576 devices"},
		{"one above the bound", gpuPod("above", "nvidia.com/gpu", 1<<20+1), "quantity 1048577 is more than the 1048576 devices"},
		{"fraction above the bound", func() *v1.Pod {
			p := gpuPod("fracbig", "nvidia.com/gpu", 1)
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("2000000500m")
			return p
		}(), "is more than the 1048576 devices"},
		{"malformed hint", gpuPod("hint", "nvidia.com/gpu", 2, "gpupack.io/topology", "fastest"), `annotation gpupack.io/topology: topology hint "fastest": want required, preferred or none`},
		{"bad init container", func() *v1.Pod {
			p := gpuPod("init", "nvidia.com/gpu", 1)
			p.Spec.InitContainers = []v1.Container{{Name: "setup", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{"nvidia.com/mig-1g.5gb": resource.MustParse("-2")}}}}
			return p
		}(), `init container "setup": nvidia.com/mig-1g.5gb quantity -2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, st, _ := h.schedule(tt.pod)
			require.NotNil(t, st)
			require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
			require.Contains(t, st.Message(), tt.want)
		})
	}
	// A count no node of the resource's kind holds is known once the node
	// says the kind (whole GPUs here): Filter rejects it for good.
	t.Run("more than a node holds", func(t *testing.T) {
		pod := gpuPod("big", "nvidia.com/gpu", 65)
		_, _, st, _ := h.schedule(pod)
		require.NotNil(t, st)
		require.Contains(t, st.Message(), "65 GPUs is more than a node holds")
		ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get("n")
		require.NoError(t, err)
		require.Equal(t, fwk.UnschedulableAndUnresolvable, h.fh.RunFilterPlugins(h.ctx, newCycleState(t, h, pod), pod, ni).Code())
	})
}

func TestInitContainers(t *testing.T) {
	// NVSwitch box of 4 GPUs with 1 in use: 3 free.
	n := fixture.NVSwitch("i", "H100", 4, 18)
	withInit := func(name string, initGPUs int64, app ...int64) *v1.Pod {
		p := gpuPod(name, "nvidia.com/gpu", app[0])
		for k, a := range app[1:] {
			p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "app" + string(rune('a'+k)), Resources: v1.ResourceRequirements{
				Limits: v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(a, resource.DecimalSI)}}})
		}
		p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(initGPUs, resource.DecimalSI)}}}}
		return p
	}
	tests := []struct {
		name   string
		pod    *v1.Pod
		fits   bool
		wantN  int
		holder string // a container named in the devices annotation
		held   int    // how many devices it holds
	}{
		// max(init 4, app 1) = 4 > 3 free.
		{"init needs more than is free", withInit("a", 4, 1), false, 0, "", 0},
		// max(init 3, app 1) = 3: the init container's set is the pod's.
		{"init bigger than apps", withInit("b", 3, 1), true, 3, "init", 3},
		// max(init 1, apps 1+1) = 2: the apps' sets.
		{"apps bigger than init", withInit("c", 1, 1, 1), true, 2, "main", 1},
		// a sidecar (restartable init container) adds to the apps: 2+2 > 3.
		{"sidecar adds up", func() *v1.Pod {
			p := withInit("d", 2, 2)
			p.Spec.InitContainers[0].RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
			return p
		}(), false, 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, []*v1.Node{gpuNode(t, "n", n, n.GPUs[3].UUID)})
			_, got, st, state := h.schedule(tt.pod)
			if !tt.fits {
				require.NotNil(t, st)
				return
			}
			require.Nil(t, st)
			require.Len(t, got, tt.wantN)
			r, err := state.Read(devicesKey)
			require.NoError(t, err)
			d := r.(*reserved).devices
			require.Len(t, d.Containers[tt.holder]["nvidia.com/gpu"], tt.held)
			require.Len(t, d.Resources["nvidia.com/gpu"], tt.wantN)
		})
	}
}
