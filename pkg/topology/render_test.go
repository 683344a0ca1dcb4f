package topology_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

func TestRenderDGX1Matrix(t *testing.T) {
	n := fixture.DGX1V100("dgx1")
	n.GPUs[5].Healthy = false
	n.GPUs[6].Replicas = 4
	var out bytes.Buffer
	require.NoError(t, topology.Render(&out, n))

	// The link matrix as nvidia-smi topo -m prints it for a DGX-1 V100, written
	// out by hand: NV2 = two NVLink lanes, NV1 = one, PIX inside a PCIe switch
	// pair, NODE within a socket, SYS across sockets.
	want := []string{
		"      GPU0  GPU1  GPU2  GPU3  GPU4  GPU5  GPU6  GPU7  NUMA",
		"GPU0  X     NV1   NV1   NV2   NV2   SYS   SYS   SYS   0",
		"GPU1  NV1   X     NV2   NV1   SYS   NV2   SYS   SYS   0",
		"GPU2  NV1   NV2   X     NV2   SYS   SYS   NV1   SYS   0",
		"GPU3  NV2   NV1   NV2   X     SYS   SYS   SYS   NV1   0",
		"GPU4  NV2   SYS   SYS   SYS   X     NV1   NV1   NV2   1",
		"GPU5  SYS   NV2   SYS   SYS   NV1   X     NV2   NV1   1",
		"GPU6  SYS   SYS   NV1   SYS   NV1   NV2   X     NV2   1",
		"GPU7  SYS   SYS   SYS   NV1   NV2   NV1   NV2   X     1",
	}
	got := out.String()
	for _, line := range want {
		require.Contains(t, got, line+"\n")
	}
	// The fixture's DGX-1 holds 16 GiB V100s (16384 MiB / 1024).
	require.Contains(t, got, "5    V100   16 GiB  1     UNHEALTHY  whole")
	require.Contains(t, got, "6    V100   16 GiB  1     ok         shared x4")
	require.NotContains(t, got, "MIG DEVICE", "no MIG section on a node without MIG")
}

func TestRenderMIGAndClique(t *testing.T) {
	n := fixture.NVSwitch("dgxa100", "A100", 8, 12)
	n.Clique = "cluster-a.7"
	n.GPUs[0].MIGEnabled = true
	n.MIG = []topology.MIGDevice{
		{UUID: "MIG-a", Parent: 0, Profile: "3g.20gb", Start: 4, Size: 4, Healthy: true},
		{UUID: "MIG-b", Parent: 0, Profile: "1g.5gb", Start: 0, Size: 1, Healthy: false},
	}
	var out bytes.Buffer
	require.NoError(t, topology.Render(&out, n))
	got := out.String()
	require.Contains(t, got, "NVLink clique: cluster-a.7")
	require.Contains(t, got, "GPU0  X     NS12")
	// Slices [start, start+size-1]: 4+4-1 = 7.
	lines := strings.Split(got, "\n")
	require.Contains(t, lines, "MIG-a       0    3g.20gb  [4-7]   ok")
	require.Contains(t, lines, "MIG-b       0    1g.5gb   [0]     UNHEALTHY")
}
