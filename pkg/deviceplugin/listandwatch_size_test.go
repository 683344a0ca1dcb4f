package deviceplugin

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/sharing"
	"github.com/gpupack/gpupack/pkg/topology"
)

// replicaResource is n GPUs x r replicas with real-length UUIDs, all on
// NUMA node 7, as the kubelet would receive them.
func replicaResource(gpus, perGPU, r int) sharing.Resource {
	res := sharing.Resource{Name: "nvidia.com/gpu"}
	for g := range gpus * perGPU {
		uuid := fmt.Sprintf("MIG-%08x-0000-4000-8000-%012x", g, g)
		for n := range r {
			res.Devices = append(res.Devices, sharing.Device{ID: deviceid.ReplicaID(uuid, n), UUID: uuid, NUMANode: 7, Replica: n, Replicas: r})
		}
	}
	return res
}

// TestReplicaLimitFitsTheKubelet: the config's replica limit is what one
// ListAndWatch message carries for a one-GPU node; a node with more
// devices carries fewer each and gets one clear error naming its own limit.
func TestReplicaLimitFitsTheKubelet(t *testing.T) {
	// 4194304 / 96 = 43690: one GPU with the config's limit fits.
	require.Equal(t, 43690, topology.MaxReplicas)
	require.NoError(t, checkListAndWatchSize([]sharing.Resource{replicaResource(1, 1, topology.MaxReplicas)}))
	// 64 GPUs x 682 replicas = 43648 devices fit in 4 MiB.
	require.NoError(t, checkListAndWatchSize([]sharing.Resource{replicaResource(topology.MaxGPUs, 1, 682)}))
	// 4 GPUs x 16384 replicas (NVIDIA users slice by memory so) = 65536
	// devices do not: 4412008 bytes, 67.3 an entry (68 counted), so
	// 4194304 / 68 = 61681 devices fit: 15420 a GPU.
	err := checkListAndWatchSize([]sharing.Resource{replicaResource(4, 1, 16384)})
	require.ErrorContains(t, err, "resource nvidia.com/gpu: 65536 devices make a")
	require.ErrorContains(t, err, "more than the kubelet's 4194304-byte limit")
	require.ErrorContains(t, err, "this node's 4 devices take at most 15420 replicas each")
	// 64 GPUs x 7 MIG devices x 682 replicas = 305536 devices do not.
	err = checkListAndWatchSize([]sharing.Resource{replicaResource(topology.MaxGPUs, 7, 682)})
	require.ErrorContains(t, err, "resource nvidia.com/gpu: 305536 devices make a")
	require.ErrorContains(t, err, "this node's 448 devices take at most")
}
