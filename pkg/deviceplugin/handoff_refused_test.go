package deviceplugin_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// listedAllocations is a PodResources API answering what was last set.
type listedAllocations struct {
	mu     sync.Mutex
	answer map[types.NamespacedName]map[string]map[string][]string
}

func (l *listedAllocations) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answer, nil
}

func (l *listedAllocations) set(answer map[types.NamespacedName]map[string]map[string][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answer = answer
}

// An Allocate the plugin refuses (a withheld device: the kubelet's choice
// raced the update) ends the question the kubelet asked for that pod: the
// next pod's Allocate, made without a question, is not taken for it.
// Before, it was: the next pod's devices were recorded as given to the
// refused pod, its PodResources listing was then ignored, and it stayed
// pending ahead of every later pod of its size, which lost the
// scheduler's set (here c, the plugin's own choice instead of GPU 5).
func TestHandoffRefusedAllocateEndsItsQuestion(t *testing.T) {
	machine, lib, cfg := fakeNode(t, fake.DGXA100, "version: v1")
	const res = "nvidia.com/gpu"
	uuid := machine.UUID
	// GPU 2 held under an earlier name: withheld.
	old := map[string]map[string][]string{"main": {"nvidia.com/gpu.shared": {uuid(2) + "::1"}}}
	src := &listedAllocations{answer: map[types.NamespacedName]map[string]map[string][]string{{Namespace: "default", Name: "old"}: old}}
	// a and b without the scheduler's choice, then c with GPU 5.
	a := fixture.MakePod().Named("a").GPUs(res, 1).Obj()
	b := fixture.MakePod().Named("b").GPUs(res, 1).Obj()
	c, _ := scheduled(t, "c", time.Now(), res, uuid(5))
	pods := &fixture.PodLister{}
	h := deviceplugin.NewHandoff(pods, deviceplugin.WithAllocations(src))
	for _, p := range []*v1.Pod{a, b, c} {
		pods.Add(p)
		h.Observe(p)
	}
	mgr, err := deviceplugin.New(deviceplugin.Options{Lib: lib, Config: cfg, PluginDir: t.TempDir(), PodResources: src, Handoff: h})
	require.NoError(t, err)
	p := mgr.Plugins()[0]
	ctx := context.Background()
	var all []string
	for gpu := range 8 {
		all = append(all, uuid(gpu))
	}
	prefer := func(avail []string) []string {
		resp, err := p.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
			{AvailableDeviceIDs: avail, AllocationSize: 1}}})
		require.NoError(t, err)
		return resp.GetContainerResponses()[0].GetDeviceIDs()
	}
	allocate := func(ids ...string) error {
		_, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
		return err
	}

	// The kubelet asks for a (the plugin's own choice), then allocates
	// GPU 2, offered before it was withheld: refused, a fails admission.
	own := prefer(all)
	require.Len(t, own, 1)
	require.NotEqual(t, uuid(5), own[0])
	err = allocate(uuid(2))
	require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
	// b gets the plugin's answer for a, asking nothing (the kubelet had
	// no choice left), and is listed.
	require.NoError(t, allocate(own...))
	src.set(map[types.NamespacedName]map[string]map[string][]string{
		{Namespace: "default", Name: "old"}: old,
		{Namespace: "default", Name: "b"}:   {"main": {res: own}},
	})
	// a's failure is delivered.
	failed := a.DeepCopy()
	failed.Status.Phase = v1.PodFailed
	pods.Set(failed, b, c)
	h.Observe(failed)
	// c's turn: its scheduler's set.
	var avail []string
	for _, id := range all {
		if id != own[0] && id != uuid(2) {
			avail = append(avail, id)
		}
	}
	require.Equal(t, []string{uuid(5)}, prefer(avail))
}
