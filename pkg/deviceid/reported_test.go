package deviceid_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceid"
)

// held is n odd IDs "<prefix>-<i>" under nvidia.com/gpu.
func held(prefix string, n int) []deviceid.Held {
	out := make([]deviceid.Held, n)
	for i := range out {
		out[i] = deviceid.Held{Resource: "nvidia.com/gpu", ID: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return out
}

// One Reported (limit 3) through a sequence of answers: each ID is
// reported once while listed, forgotten when not, and the overflow is said
// once per run of answers over the limit.
func TestReportedListed(t *testing.T) {
	r := deviceid.NewReported(3)
	a := deviceid.Held{Resource: "nvidia.com/gpu", ID: "bad a"}
	b := deviceid.Held{Resource: "nvidia.com/gpu", ID: "bad b"}
	for _, step := range []struct {
		name       string
		listed     []deviceid.Held
		wantReport []int
		wantOver   bool
		wantLen    int
	}{
		{"first sight", []deviceid.Held{a, b}, []int{0, 1}, false, 2},
		{"the same again: nothing new", []deviceid.Held{b, a}, nil, false, 2},
		{"a repeat within one answer counts once", []deviceid.Held{a, a, b, b}, nil, false, 2},
		{"a gone: forgotten", []deviceid.Held{b}, nil, false, 1},
		{"a back: reported again", []deviceid.Held{a, b}, []int{0}, false, 2},
		// 5 distinct IDs > limit 3: a and b are remembered, so only one of
		// the 3 new ones (the first) fits; the overflow is said.
		{"over the limit", append([]deviceid.Held{a, b}, held("x", 3)...), []int{2}, true, 3},
		{"still over: said once", append([]deviceid.Held{a, b}, held("x", 3)...), nil, false, 3},
		{"within the limit again", held("x", 2), []int{1}, false, 2},
		{"over again: said again", held("y", 4), []int{0, 1, 2}, true, 3},
		{"none", nil, nil, false, 0},
	} {
		report, over := r.Listed(step.listed)
		require.Equal(t, step.wantReport, report, step.name)
		require.Equal(t, step.wantOver, over, step.name)
		require.Equal(t, step.wantLen, r.Len(), step.name)
	}
}

// The resource is part of the key (the same ID under two resources is two
// entries) and no split of the strings makes two pairs one.
func TestReportedKeys(t *testing.T) {
	r := deviceid.NewReported(10)
	report, _ := r.Listed([]deviceid.Held{
		{Resource: "nvidia.com/gpu", ID: "x"},
		{Resource: "nvidia.com/gpu.shared", ID: "x"},
		{Resource: "a", ID: "bc"},
		{Resource: "ab", ID: "c"},
	})
	require.Equal(t, []int{0, 1, 2, 3}, report)
	require.Equal(t, 4, r.Len())
}

// Long IDs do not grow the memory per ID: it holds digests, at most the
// limit of them, however many and long the IDs of an answer.
func TestReportedBounded(t *testing.T) {
	r := deviceid.NewReported(1024)
	long := make([]deviceid.Held, 5000)
	for i := range long {
		long[i] = deviceid.Held{Resource: "nvidia.com/gpu", ID: strings.Repeat("z", 1<<12) + fmt.Sprint(i)}
	}
	report, over := r.Listed(long)
	require.Len(t, report, 1024)
	require.True(t, over)
	require.Equal(t, 1024, r.Len())
	// A limit below 1 keeps one.
	one := deviceid.NewReported(0)
	report, over = one.Listed(held("q", 2))
	require.Equal(t, []int{0}, report)
	require.True(t, over)
}
