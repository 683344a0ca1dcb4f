package protocol_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

func TestDeviceCount(t *testing.T) {
	const gpu = "nvidia.com/gpu"
	q := resource.MustParse
	tests := []struct {
		name     string
		limits   v1.ResourceList
		requests v1.ResourceList
		want     int
		err      string
	}{
		{name: "none"},
		{name: "limit", limits: v1.ResourceList{gpu: q("2")}, want: 2},
		{name: "request only", requests: v1.ResourceList{gpu: q("3")}, want: 3},
		// The limit wins: the API server makes them equal for extended
		// resources.
		{name: "limit over request", limits: v1.ResourceList{gpu: q("4")}, requests: v1.ResourceList{gpu: q("1")}, want: 4},
		{name: "zero", limits: v1.ResourceList{gpu: q("0")}},
		{name: "other resource", limits: v1.ResourceList{"cpu": q("2")}},
		// Quantity.Value() rounds 1500m up to 2: a device count must be
		// whole.
		{name: "fraction", limits: v1.ResourceList{gpu: q("1500m")}, err: "quantity 1500m is not a whole number"},
		{name: "negative", limits: v1.ResourceList{gpu: q("-1")}, err: "quantity -1 is negative"},
		// 2^20 + 1 = 1048577.
		{name: "over MaxDevices", limits: v1.ResourceList{gpu: q("1048577")}, err: "quantity 1048577 is more than the 1048576 devices a container may ask"},
		{name: "MaxDevices", limits: v1.ResourceList{gpu: q("1048576")}, want: protocol.MaxDevices},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v1.Container{Name: "main", Resources: v1.ResourceRequirements{Limits: tt.limits, Requests: tt.requests}}
			n, err := protocol.DeviceCount(&c, gpu)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				require.ErrorContains(t, err, `container "main"`)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, n)
		})
	}
}

func TestTopologyHintOf(t *testing.T) {
	tests := []struct {
		value *string
		want  score.TopologyHint
		err   bool
	}{
		{value: nil, want: score.HintNone}, // no annotation: the default passed in
		{value: new(""), want: score.HintPreferred},
		{value: new("preferred"), want: score.HintPreferred},
		{value: new(" required "), want: score.HintRequired},
		{value: new("none"), want: score.HintNone},
		{value: new("Required"), want: score.HintNone, err: true},
		{value: new("best"), want: score.HintNone, err: true},
	}
	for _, tt := range tests {
		ann := map[string]string{}
		if tt.value != nil {
			ann[protocol.TopologyHintAnnotation] = *tt.value
		}
		h, err := protocol.TopologyHintOf(fixture.MakePod().Name("p").AnnotationMap(ann).Obj(), score.HintNone)
		if tt.err {
			require.ErrorContains(t, err, "annotation gpupack.io/topology")
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, tt.want, h)
	}
	// Every hint's name reads back as that hint.
	for _, h := range []score.TopologyHint{score.HintPreferred, score.HintRequired, score.HintNone} {
		got, err := protocol.ParseTopologyHint(h.String())
		require.NoError(t, err)
		require.Equal(t, h, got)
	}
}

func TestReplicaPolicyOf(t *testing.T) {
	p, set, err := protocol.ReplicaPolicyOf(fixture.MakePod().Name("p").Obj())
	require.NoError(t, err)
	require.False(t, set)
	require.Equal(t, score.Packed, p)

	p, set, err = protocol.ReplicaPolicyOf(fixture.MakePod().Name("p").Annotations(protocol.ReplicaPolicyAnnotation, " spread").Obj())
	require.NoError(t, err)
	require.True(t, set)
	require.Equal(t, score.Spread, p)

	_, set, err = protocol.ReplicaPolicyOf(fixture.MakePod().Name("p").Annotations(protocol.ReplicaPolicyAnnotation, "scatter").Obj())
	require.ErrorContains(t, err, `annotation gpupack.io/replica-policy: replica policy "scatter": want packed or spread`)
	require.False(t, set)

	for _, p := range []score.ReplicaPolicy{score.Packed, score.Spread} {
		got, err := protocol.ParseReplicaPolicy(p.String())
		require.NoError(t, err)
		require.Equal(t, p, got)
	}
}

// A bad hint or policy is quoted in the error at most 64 bytes long (the
// error reaches the pod's condition and events): a 200 kB value made a
// 200 kB message. Multi-byte runes are not cut in half.
func TestBadValueQuotedShort(t *testing.T) {
	long := strings.Repeat("x", 200000)
	_, err := protocol.ParseTopologyHint(long)
	require.ErrorContains(t, err, `"`+strings.Repeat("x", 64)+`"... (200000 bytes)`)
	require.Less(t, len(err.Error()), 200)
	_, err = protocol.ParseReplicaPolicy(long)
	require.Less(t, len(err.Error()), 200)
	// 63 ASCII bytes then a 3-byte rune: cut before the rune (63 bytes).
	odd := strings.Repeat("y", 63) + "€€"
	_, err = protocol.ParseTopologyHint(odd)
	require.ErrorContains(t, err, `"`+strings.Repeat("y", 63)+`"... (69 bytes)`)
	_, err = protocol.ParseTopologyHint("maybe")
	require.ErrorContains(t, err, `topology hint "maybe": want required, preferred or none`)
}
