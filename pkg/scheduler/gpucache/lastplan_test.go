package gpucache

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
)

// A node's last plans answer only for the State, the workload snapshot and
// the request they were made for, keep the newest maxLastPlans requests
// and never change once stored.
func TestLastPlans(t *testing.T) {
	n := fixture.DGX1V100("l")
	st1, st2 := score.NewState(n), score.NewState(n)
	d1, d2 := score.DefaultDistribution(), &score.Distribution{}
	errFull := errors.New("full")
	var l *lastPlans
	for id := uint64(1); id <= 5; id++ {
		var err error
		if id == 3 {
			err = errFull
		}
		next := l.with(st1, d1, id, Figures{FragDelta: float64(id)}, err)
		l = &next
	}
	for _, tc := range []struct {
		name  string
		state *score.State
		dist  *score.Distribution
		id    uint64
		found bool
		frag  float64
		err   error
	}{
		// 5 requests stored, 4 kept: the first went.
		{"oldest dropped", st1, d1, 1, false, 0, nil},
		{"kept", st1, d1, 2, true, 2, nil},
		{"kept with its error", st1, d1, 3, true, 3, errFull},
		{"newest", st1, d1, 5, true, 5, nil},
		{"other State", st2, d1, 5, false, 0, nil},
		{"other snapshot", st1, d2, 5, false, 0, nil},
		{"unknown request", st1, d1, 9, false, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err, ok := l.find(tc.state, tc.dist, tc.id)
			require.Equal(t, tc.found, ok)
			require.Equal(t, tc.frag, p.FragDelta)
			require.Equal(t, tc.err, err)
		})
	}
	// A plan for another State starts over and leaves l as it was.
	l2 := l.with(st2, d1, 7, Figures{FragDelta: 7}, nil)
	require.Equal(t, 1, l2.n)
	_, _, ok := l2.find(st2, d1, 2)
	require.False(t, ok)
	require.Equal(t, maxLastPlans, l.n)
	var none *lastPlans
	_, _, ok = none.find(st1, d1, 1)
	require.False(t, ok)
}
