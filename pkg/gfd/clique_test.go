package gfd_test

import (
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/gfd"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// TestCliqueOfDisagreeingGPUs: a GB200 tray (4 GPUs, one NVLink fabric,
// clique 32766) whose GPUs' fabric info is changed per GPU. As NVIDIA's GPU
// Feature Discovery (internal/lm/fabric.go, getFabricIDs): GPUs not attached
// to a completed fabric are skipped; the attached ones must share one
// cluster UUID and one clique ID, else the node has no clique, and GFD
// warns. Here the label is left out with an error naming each GPU's clique
// (the publisher logs it), and the topology annotation's node.clique, which
// was the first attached GPU's, follows the same rule.
func TestCliqueOfDisagreeingGPUs(t *testing.T) {
	other := uuid.MustParse("7b968a6d-c8aa-45e1-9e07-e1e51be99c31")
	attached := func(cluster [16]uint8, clique uint32) func() (gonvml.GpuFabricInfo, gonvml.Return) {
		return func() (gonvml.GpuFabricInfo, gonvml.Return) {
			return gonvml.GpuFabricInfo{ClusterUuid: cluster, CliqueId: clique, State: gonvml.GPU_FABRIC_STATE_COMPLETED, Status: uint32(gonvml.SUCCESS)}, gonvml.SUCCESS
		}
	}
	notSupported := func() (gonvml.GpuFabricInfo, gonvml.Return) {
		return gonvml.GpuFabricInfo{}, gonvml.ERROR_NOT_SUPPORTED
	}
	inProgress := func() (gonvml.GpuFabricInfo, gonvml.Return) {
		return gonvml.GpuFabricInfo{State: gonvml.GPU_FABRIC_STATE_IN_PROGRESS}, gonvml.SUCCESS
	}
	for name, tc := range map[string]struct {
		// fabric changes the fabric info of GPU i of the tray; own is the
		// tray's cluster UUID.
		fabric func(own [16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return)
		// want is the clique as "<cluster>.<id>" with <own> for the tray's
		// cluster UUID; "" for none.
		want string
		// wantErr is part of the error of the label left out; "" for no
		// error.
		wantErr []string
	}{
		"all four agree": {
			fabric: func([16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return) { return nil },
			want:   "<own>.32766",
		},
		"GPU 1 and 3 in clique 1": {
			fabric: func(own [16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return) {
				return map[int]func() (gonvml.GpuFabricInfo, gonvml.Return){1: attached(own, 1), 3: attached(own, 1)}
			},
			// GPUs 0, 2 say 32766, GPUs 1, 3 say 1: two cliques, none published
			wantErr: []string{"nvidia.com/gpu.clique", "GPUs 0, 2: <own>.32766", "GPUs 1, 3: <own>.1"},
		},
		"GPU 0 in another cluster": {
			fabric: func([16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return) {
				return map[int]func() (gonvml.GpuFabricInfo, gonvml.Return){0: attached(other, 32766)}
			},
			// the same clique ID under two cluster UUIDs: two cliques
			wantErr: []string{"GPU 0: 7b968a6d-c8aa-45e1-9e07-e1e51be99c31.32766", "GPUs 1, 2, 3: <own>.32766"},
		},
		"GPU 0 not attached, the others agree": {
			fabric: func([16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return) {
				return map[int]func() (gonvml.GpuFabricInfo, gonvml.Return){0: notSupported}
			},
			// GFD skips a GPU not attached: GPUs 1, 2, 3's clique
			want: "<own>.32766",
		},
		"GPU 2's fabric still training, the others agree": {
			fabric: func([16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return) {
				return map[int]func() (gonvml.GpuFabricInfo, gonvml.Return){2: inProgress}
			},
			want: "<own>.32766",
		},
		"GPU 0 not attached, GPU 1 disagrees": {
			fabric: func(own [16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return) {
				return map[int]func() (gonvml.GpuFabricInfo, gonvml.Return){0: notSupported, 1: attached(own, 5)}
			},
			// the first attached GPU (1) is not the node's: 1 against 2, 3
			wantErr: []string{"GPU 1: <own>.5", "GPUs 2, 3: <own>.32766"},
		},
		"none attached": {
			fabric: func([16]uint8) map[int]func() (gonvml.GpuFabricInfo, gonvml.Return) {
				return map[int]func() (gonvml.GpuFabricInfo, gonvml.Return){0: notSupported, 1: notSupported, 2: inProgress, 3: notSupported}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := fake.New(fake.GB2004GPU)
			require.NoError(t, err)
			own, ret := m.Device(0).GetGpuFabricInfo()
			require.Equal(t, gonvml.SUCCESS, ret)
			for i, f := range tc.fabric(own.ClusterUuid) {
				m.Device(i).GetGpuFabricInfoFunc = f
			}
			inv, err := m.Lib(t).Discover()
			require.NoError(t, err)
			expand := func(s string) string {
				return strings.ReplaceAll(s, "<own>", uuid.UUID(own.ClusterUuid).String())
			}
			n, errs := inv.GFDNode("", "")
			require.Empty(t, errs)
			n.MIGStrategy = configv1.MIGStrategyNone
			got, errs := gfd.Labels(n, now)
			if tc.want == "" {
				require.NotContains(t, got, gfd.LabelClique)
			} else {
				require.Equal(t, expand(tc.want), got[gfd.LabelClique])
			}
			if tc.wantErr == nil {
				require.Empty(t, errs)
			} else {
				require.Len(t, errs, 1, "%v", errs)
				for _, s := range tc.wantErr {
					require.Contains(t, errs[0].Error(), expand(s))
				}
			}
			// The topology annotation's node.clique: the same clique or none.
			require.Equal(t, expand(tc.want), inv.Topology().Clique)
		})
	}
}
