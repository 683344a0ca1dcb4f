package gpupack

import (
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
)

// pinnedArgs are the default args with the workload pinned to prior.
func pinnedArgs(t *testing.T, prior ...config.TaskTypeWeight) *config.GPUPackArgs {
	t.Helper()
	a, err := toArgs(nil)
	require.NoError(t, err)
	a.Workload.Prior = prior
	a.Workload.Pin = true
	return a
}

func TestInvalidArgsFailWithEveryError(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	a := pinnedArgs(t, config.TaskTypeWeight{Kind: "whole", Count: 0, Weight: 1})
	a.TopologyWeight = -1
	a.ReplicaPolicy = "scatter"
	_, err := New(ctx, a, nil)
	require.Error(t, err)
	for _, want := range []string{"invalid GPUPack args", "topologyWeight: Invalid value: -1", `replicaPolicy: Unsupported value: "scatter"`, "workload.prior[0].count: Invalid value: 0"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = New(ctx, &v1.Pod{}, nil)
	require.ErrorContains(t, err, "want args of type GPUPackArgs, got *v1.Pod")
}
