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

// TestReplicaLimitFitsTheKubelet: the config's replica limit is what the
// kubelet can carry for the largest node of whole GPUs; MIG devices on
// such a node multiply the devices beyond it, and that node gets one clear
// error naming the limit.
func TestReplicaLimitFitsTheKubelet(t *testing.T) {
	// 64 GPUs x 682 replicas = 43648 devices fit in 4 MiB.
	require.NoError(t, checkListAndWatchSize([]sharing.Resource{replicaResource(topology.MaxGPUs, 1, topology.MaxReplicas)}))
	// 64 GPUs x 7 MIG devices x 682 replicas = 305536 devices do not.
	err := checkListAndWatchSize([]sharing.Resource{replicaResource(topology.MaxGPUs, 7, topology.MaxReplicas)})
	require.ErrorContains(t, err, "resource nvidia.com/gpu: 305536 devices make a")
	require.ErrorContains(t, err, "more than the kubelet's 4194304-byte limit")
}
