package score_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
)

// Every constant of the request's enums has its name, and a value outside
// them says its type and number.
func TestEnumNames(t *testing.T) {
	require.Equal(t, []string{"whole", "mig", "shared", "Kind(3)", "Kind(-1)"},
		[]string{score.KindWhole.String(), score.KindMIG.String(), score.KindShared.String(), score.Kind(3).String(), score.Kind(-1).String()})
	require.Equal(t, []string{"packed", "spread", "ReplicaPolicy(2)"},
		[]string{score.Packed.String(), score.Spread.String(), score.ReplicaPolicy(2).String()})
	require.Equal(t, []string{"preferred", "required", "none", "TopologyHint(7)"},
		[]string{score.HintPreferred.String(), score.HintRequired.String(), score.HintNone.String(), score.TopologyHint(7).String()})
}
