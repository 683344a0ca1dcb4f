package gpucache

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
)

// The index against a map through random puts, replacements and removals
// of up to 300 Node objects (tables grow and are rebuilt with the deleted
// slots dropped): find answers as the map does, for Node objects present,
// removed and never put.
func TestNodeIndexMatchesMap(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 9))
			c := &Cache{}
			want := map[*v1.Node]*nodeEntry{}
			var objs []*v1.Node
			for range 300 {
				objs = append(objs, &v1.Node{})
			}
			rebuilt := 0
			for step := range 20000 {
				node := objs[rng.IntN(len(objs))]
				before := c.index.Load()
				switch rng.IntN(3) {
				case 0, 1:
					e := &nodeEntry{}
					c.indexLocked(node, e)
					want[node] = e
				case 2:
					c.unindexLocked(node)
					delete(want, node)
				}
				if before != nil && c.index.Load() != before {
					rebuilt++
				}
				idx := c.index.Load()
				if idx == nil {
					continue
				}
				require.Equal(t, len(want), idx.live, "step %d", step)
				// Filled slots stay under 3/4 of the table, so a probe
				// always ends at an empty slot.
				require.LessOrEqual(t, 4*idx.filled, 3*len(idx.slots), "step %d", step)
				probe := objs[rng.IntN(len(objs))]
				require.Same(t, want[probe], idx.find(probe), "step %d", step)
				require.Nil(t, idx.find(&v1.Node{}), "step %d: a Node never put", step)
			}
			for _, node := range objs {
				require.Same(t, want[node], c.lookupNode(node))
			}
			require.Positive(t, rebuilt, "the deleted slots never made a new table")
		})
	}
}

// Sizes: at least twice the Node objects asked for, a power of two, at
// least minIndexSlots; a cache without one finds nothing.
func TestNewNodeIndexSize(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, minIndexSlots},
		{1, minIndexSlots},
		{31, minIndexSlots}, // 2*31 = 62 -> 1<<Len(62) = 64
		{32, 128},           // 2*32 = 64 -> 1<<Len(64) = 128
		{5000, 16384},       // 2*5000 = 10000 -> 1<<Len(10000) = 1<<14
	} {
		got := len(newNodeIndex(tc.n).slots)
		require.Equal(t, tc.want, got, "n=%d", tc.n)
		require.GreaterOrEqual(t, got, 2*tc.n)
	}
	require.Nil(t, (&Cache{}).lookupNode(&v1.Node{}))
}
