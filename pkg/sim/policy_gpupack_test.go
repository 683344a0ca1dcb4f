package sim

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A run's cache of answers stays within maxCachedEvaluations however many
// classes the pod list has: past it, it starts over. 1,213 nodes (the
// openb list): 1<<20 / 1,213 = 864 classes at most at once.
func TestGPUPackRunCacheBounded(t *testing.T) {
	const nodes = 1213
	p := (&gpupack{}).newRun()
	most := 0
	for ci := range int32(5000) {
		c := p.cacheFor(ci, nodes)
		require.Len(t, c, nodes)
		require.Same(t, &c[0], &p.cacheFor(ci, nodes)[0], "class %d: a cached class is not made again", ci)
		require.LessOrEqual(t, len(p.cache)*nodes, maxCachedEvaluations)
		most = max(most, len(p.cache))
	}
	require.Equal(t, maxCachedEvaluations/nodes, most) // 864: the bound is used
}
