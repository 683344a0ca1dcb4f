package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
)

func TestDistribution(t *testing.T) {
	reqs := []score.Request{
		{Kind: score.KindWhole, Count: 4},
		{Kind: score.KindWhole, Count: 4},
		{Kind: score.KindWhole, Count: 1},
		{Kind: score.KindMIG, Count: 1, MIGProfile: "1g.5gb"},
		{Kind: score.KindShared, Count: 2},                       // packed: 2/4 of one GPU = 500m
		{Kind: score.KindShared, Count: 2, Policy: score.Spread}, // 1/4 on each of 2 GPUs = 250m
	}
	d, err := distribution(reqs, 4)
	require.NoError(t, err)
	want := map[string]float64{ // 6 requests, whole:4 twice
		"whole:4": 2.0 / 6, "whole:1": 1.0 / 6, "mig:1g.5gb": 1.0 / 6, "shared:500m": 1.0 / 6, "shared:250m": 1.0 / 6,
	}
	got := map[string]float64{}
	for i, typ := range d.Types {
		got[typ.String()] = d.P[i]
	}
	require.Len(t, got, len(want))
	for k, p := range want {
		require.InDelta(t, p, got[k], 1e-9, k)
	}

	for _, tc := range []struct {
		name     string
		reqs     []score.Request
		replicas int
	}{
		{"shared without replicas", []score.Request{{Kind: score.KindShared, Count: 1}}, 1},
		{"invalid request", []score.Request{{Kind: score.KindWhole, Count: 0}}, 4},
		{"no requests", nil, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := distribution(tc.reqs, tc.replicas)
			require.Error(t, err)
		})
	}
}

func TestHeader(t *testing.T) {
	h := header(workload())
	t.Log("\n" + h)
	for _, l := range strings.Split(h, "\n") {
		require.LessOrEqual(t, len([]rune(l)), 120, "line too wide: %q", l)
	}
	flat := strings.Join(strings.Fields(h), " ")
	for _, want := range []string{
		"two identical pools of 5 fake GPU nodes",
		"Both pools run gpupack's device plugin",
		"this compares the schedulers (gpupack-scheduler and the stock default-scheduler), not device plugins.",
		"the same 21 pods arrive at each pool one at a time, small pods first (1-GPU inference, time-shared, MIG; " +
			"training jobs of 2 and 4 GPUs among them), then 2 whole-node 8-GPU jobs",
		"one scenario, chosen to show fragmentation",
		"differ slightly from run to run",
	} {
		require.Contains(t, flat, want)
	}
	require.Equal(t, "2, 4 and 8", andList([]string{"2", "4", "8"}))
	require.Equal(t, "2", andList([]string{"2"}))
}
