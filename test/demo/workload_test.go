package main

import (
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
