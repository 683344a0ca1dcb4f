package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// podResourcesAnswer stands in for the kubelet's PodResources API: each
// read answers what was last set.
type podResourcesAnswer struct {
	mu     sync.Mutex
	answer map[types.NamespacedName]map[string]map[string][]string
	err    error
}

func (a *podResourcesAnswer) Allocated(context.Context) (map[types.NamespacedName]map[string]map[string][]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answer, a.err
}

// set makes the answer list holdings, or fail with err.
func (a *podResourcesAnswer) set(err error, held ...sharing.Holding) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err, a.answer = err, answerOf(held...)
}

// answerOf is the PodResources answer listing held.
func answerOf(held ...sharing.Holding) map[types.NamespacedName]map[string]map[string][]string {
	out := map[types.NamespacedName]map[string]map[string][]string{}
	for _, h := range held {
		pod := types.NamespacedName{Namespace: h.Namespace, Name: h.Pod}
		if out[pod] == nil {
			out[pod] = map[string]map[string][]string{}
		}
		if out[pod][h.Container] == nil {
			out[pod][h.Container] = map[string][]string{}
		}
		out[pod][h.Container][h.Resource] = append(out[pod][h.Container][h.Resource], h.ID)
	}
	return out
}

// oneGPU is a node of one GPU, GPU-0, served in replicas under nvidia.com/gpu.
func oneGPU(t *testing.T, replicas int) (*nvml.Inventory, []sharing.Resource) {
	t.Helper()
	inv := &nvml.Inventory{GPUs: []nvml.GPU{{Index: 0, UUID: "GPU-0"}}}
	c, err := configv1.Parse(fmt.Appendf(nil, "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: %d}]}}", replicas))
	require.NoError(t, err)
	res, err := sharing.Build(inv, c)
	require.NoError(t, err)
	return inv, res
}

// A share held under an earlier name stays withheld on its replica when
// the kubelet's answer changes (a higher replica released) and across a
// reload to more replicas, with PodResources answering or not: the
// kubelet, told that replica alone is unhealthy, never sees another one
// withheld under it. Before, the share moved onto the highest free
// replica at each recompute (here ::3, then ::7 after the reload).
func TestHoldingsKeepAShareOnItsReplica(t *testing.T) {
	ctx := context.Background()
	const gpu = "nvidia.com/gpu"
	x := sharing.Holding{Namespace: "default", Pod: "x", Container: "main", Resource: gpu, ID: "GPU-0::3"}
	c := sharing.Holding{Namespace: "default", Pod: "c", Container: "main", Resource: "nvidia.com/gpu.shared", ID: "GPU-0::5"}
	inv, replicas4 := oneGPU(t, 4)
	_, replicas8 := oneGPU(t, 8)

	src := &podResourcesAnswer{}
	src.set(nil, x, c)
	h := newHoldings(src, inv, replicas4, nil, nil, nil)
	_, err := h.refresh(ctx)
	require.NoError(t, err)
	// ::3 held under its own name: c on the highest free, ::2.
	require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, h.of(gpu))

	src.set(nil, c) // x ended: ::3 is free
	changed, err := h.refresh(ctx)
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, h.of(gpu))

	tests := []struct {
		name string
		src  Allocations
	}{
		{"reload, PodResources answering", src},
		{"reload, PodResources down", &podResourcesAnswer{err: errors.New("connection refused")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := newHoldings(tc.src, inv, replicas8, h.snapshot(), h.all(), nil)
			require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, next.of(gpu))
			_, _ = next.refresh(ctx)
			require.Equal(t, map[string]sharing.Holding{"GPU-0::2": c}, next.of(gpu))
		})
	}
}
