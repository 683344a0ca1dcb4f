package score_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func TestPreferred(t *testing.T) {
	dgx := fixture.DGX1V100("a")
	shared := fixture.Shared(fixture.DGX1V100("s"), 4)
	mig := fixture.WithMIG(fixture.NVSwitch("m", "A100", 2, 12), 0, 1, "1g.5gb", "1g.5gb")
	halfOnly, err := score.NewWorkload(score.WorkloadOptions{Prior: []score.Weighted{{Type: half, Weight: 1}}, Pin: true})
	require.NoError(t, err)
	rep := func(gpu int, n ...int) []string {
		var out []string
		for _, k := range n {
			out = append(out, deviceid.ReplicaID(shared.GPUs[gpu].UUID, k))
		}
		return out
	}
	whole := func(n int) score.Request { return score.Request{Kind: score.KindWhole, Count: n} }
	tests := []struct {
		name      string
		req       score.Request
		available []string
		must      []string
		w         *score.Workload
		want      []string
	}{
		{
			// Available {3,4,7} as in TestChooseWholeDGX1: GPU 3 keeps
			// the 2-lane pair 4-7.
			name: "one GPU keeps the best pair", req: whole(1), available: uuids(dgx, 3, 4, 7),
			want: uuids(dgx, 3),
		},
		{
			// 7 must be in: {4,7} (2 lanes, 50 GB/s) or {3,7} (1 lane, 25);
			// either leaves one GPU (same fragmentation): quality decides.
			name: "must include 7", req: whole(2), available: uuids(dgx, 3, 4, 7), must: uuids(dgx, 7),
			want: uuids(dgx, 4, 7),
		},
		{
			name: "must include everything", req: whole(2), available: uuids(dgx, 3, 4, 7), must: uuids(dgx, 3, 7),
			want: uuids(dgx, 3, 7),
		},
		{
			// Only GPUs 0 (replicas 1-3 free, .75) and 1 (all 4, 1.0) are
			// offered; the rest count as used. Workload: shared 500m only.
			// 2 replicas on GPU 0: .75 -> .25 < .5 strands .25 (+.25); on
			// GPU 1: 1 -> .5, still usable (0): GPU 1, replicas 0 and 1.
			name: "replicas keep half GPUs usable", req: score.Request{Kind: score.KindShared, Count: 2},
			available: append(rep(0, 1, 2, 3), rep(1, 0, 1, 2, 3)...), w: halfOnly,
			want: rep(1, 0, 1),
		},
		{
			// With GPU 0's replica 1 required, packed keeps the request on
			// that GPU: replicas 1 and 2.
			name: "replicas with must include", req: score.Request{Kind: score.KindShared, Count: 2},
			available: append(rep(0, 1, 2, 3), rep(1, 0, 1, 2, 3)...), must: rep(0, 1), w: halfOnly,
			want: rep(0, 1, 2),
		},
		{
			// The same replica named twice in mustInclude (the kubelet
			// passes a set; a malformed request must not make the answer
			// name a device twice): as named once, replicas 1 and 2.
			name: "replica named twice in must include", req: score.Request{Kind: score.KindShared, Count: 2},
			available: append(rep(0, 1, 2, 3), rep(1, 0, 1, 2, 3)...), must: append(rep(0, 1), rep(0, 1)...), w: halfOnly,
			want: rep(0, 1, 2),
		},
		{
			// GPU 7 named twice: as once, {4,7}.
			name: "GPU named twice in must include", req: whole(2), available: uuids(dgx, 3, 4, 7), must: uuids(dgx, 7, 7),
			want: uuids(dgx, 4, 7),
		},
		{
			// Both 1g.5gb on GPU 0: the lower placement start.
			name: "MIG", req: score.Request{Kind: score.KindMIG, Count: 1, MIGProfile: "1g.5gb"},
			available: []string{mig.MIG[1].UUID, mig.MIG[0].UUID}, want: []string{mig.MIG[0].UUID},
		},
		{
			name: "MIG: only what is available", req: score.Request{Kind: score.KindMIG, Count: 1, MIGProfile: "1g.5gb"},
			available: []string{mig.MIG[1].UUID}, want: []string{mig.MIG[1].UUID},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := dgx
			switch tt.req.Kind {
			case score.KindShared:
				node = shared
			case score.KindMIG:
				node = mig
			}
			got, err := score.Preferred(node, tt.req, tt.available, tt.must, tt.w)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestPreferredErrors(t *testing.T) {
	dgx := fixture.DGX1V100("e")
	mig := fixture.WithMIG(fixture.NVSwitch("em", "A100", 2, 12), 0, 1, "1g.5gb")
	tests := []struct {
		name      string
		node      bool
		req       score.Request
		available []string
		must      []string
		wantIs    error
		want      string
	}{
		{"no node", false, score.Request{Kind: score.KindWhole, Count: 1}, uuids(dgx, 0), nil, nil, "no node topology"},
		{"zero size", true, score.Request{Kind: score.KindWhole, Count: 0}, uuids(dgx, 0), nil, score.ErrInvalidRequest, "count 0 must be positive"},
		{"more must than size", true, score.Request{Kind: score.KindWhole, Count: 1}, uuids(dgx, 0, 1), uuids(dgx, 0, 1), score.ErrInvalidRequest, "2 devices must be included but only 1 requested"},
		{"must not available", true, score.Request{Kind: score.KindWhole, Count: 2}, uuids(dgx, 0, 1), uuids(dgx, 5), score.ErrInvalidRequest, `must-include device "GPU-e-5" is not available`},
		{"too few available", true, score.Request{Kind: score.KindWhole, Count: 3}, uuids(dgx, 0, 1), nil, score.ErrNoFit, "2 available, 3 requested"},
		{"unknown ID", true, score.Request{Kind: score.KindWhole, Count: 1}, []string{"GPU-e-0", "GPU-nope"}, nil, score.ErrUnknownDevice, `"GPU-nope" is not a whole device of this node`},
		{"MIG ID for a whole request", true, score.Request{Kind: score.KindWhole, Count: 1}, []string{"GPU-e-0", mig.MIG[0].UUID}, nil, score.ErrUnknownDevice, "is not a whole device"},
		{"replica ID of a GPU that is not shared", true, score.Request{Kind: score.KindShared, Count: 1}, []string{deviceid.ReplicaID("GPU-e-0", 0)}, nil, score.ErrUnknownDevice, `"GPU-e-0::0" is not a shared device`},
		{"unhealthy only", true, score.Request{Kind: score.KindWhole, Count: 1}, uuids(dgx, 6), nil, score.ErrNoFit, "1 whole devices out of 1 available"},
	}
	dgx.GPUs[6].Healthy = false
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := dgx
			if !tt.node {
				node = nil
			}
			got, err := score.Preferred(node, tt.req, tt.available, tt.must, nil)
			require.Error(t, err)
			require.Nil(t, got)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			require.Contains(t, err.Error(), tt.want)
		})
	}
}
