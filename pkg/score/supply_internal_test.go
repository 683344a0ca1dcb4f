package score

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPoissonTail(t *testing.T) {
	for _, tc := range []struct {
		lambda float64
		s      int64
		want   float64
	}{
		{2, 0, 1},
		{0, 1, 0},
		{2, 1, 1 - math.Exp(-2)},         // 1 - P(0)
		{2, 3, 1 - math.Exp(-2)*(1+2+2)}, // 1 - P(0..2) = 0.32332
		{1.5, 1, 1 - math.Exp(-1.5)},     // 0.77687
		{10, 80, 0},                      // beyond lambda + 12 sqrt(lambda) + 20
		{100, 100, 0.5 * math.Erfc(-0.5/math.Sqrt(200))}, // normal, continuity-corrected: 0.51994
	} {
		require.InDelta(t, tc.want, poissonTail(tc.lambda, tc.s), 1e-12, "lambda %v s %d", tc.lambda, tc.s)
	}
	// The normal approximation agrees with the exact sum where they meet
	// (lambda 30: within 0.01).
	exact := 1.0
	term := math.Exp(-30.0)
	cdf := term
	for i := 1; i < 35; i++ {
		term *= 30.0 / float64(i)
		cdf += term
	}
	exact -= cdf
	require.InDelta(t, exact, poissonTail(30, 35), 0.01)
}
