package score

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// TestMemoAgreesWithDirect checks that the choice memo never changes an
// answer: for random usages of several layouts, Choose on a node
// (filling the memo), then on a twin node of the same layout with other
// UUIDs (a hit), equals the unmemoized choose on that node, device
// IDs included.
func TestMemoAgreesWithDirect(t *testing.T) {
	mixed := func(p string) *topology.Node {
		n := fixture.DGX1V100(p)
		for i := 4; i < 8; i++ {
			n.GPUs[i].Model = "P100"
		}
		n.GPUs[6].Healthy = false
		return n
	}
	layouts := []struct {
		name string
		make func(prefix string) *topology.Node
	}{
		{"dgx1", fixture.DGX1V100},
		{"dgx1-mixed-models", mixed},
		{"dgx1-shared4", func(p string) *topology.Node { return fixture.Shared(fixture.DGX1V100(p), 4) }},
		{"nvswitch16", func(p string) *topology.Node { return fixture.NVSwitch(p, "H100", 16, 18) }},
		{"pcie16", func(p string) *topology.Node { return fixture.PCIe(p, "T4", 16) }},
	}
	d, err := NewDistribution(append(DefaultPrior(), Weighted{TaskType{Kind: KindWhole, Count: 2, Model: "P100"}, 0.05}))
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			a, b := l.make("a"), l.make("b")
			for range 200 {
				sa, sb := NewState(a), NewState(b)
				require.NotZero(t, sa.layout)
				require.Equal(t, sa.layout, sb.layout, "twins share a layout")
				// Random usage, the same on both.
				for i := range a.GPUs {
					if rng.IntN(3) == 0 {
						r := 1 + rng.IntN(sa.reps[i])
						sa.repUsed[i], sb.repUsed[i] = r, r
						sa.busy |= topology.SetOf(i)
						sb.busy |= topology.SetOf(i)
					}
				}
				req := Request{Kind: KindWhole, Count: 1 + rng.IntN(5), Topology: TopologyHint(rng.IntN(3))}
				switch rng.IntN(4) {
				case 0:
					req = Request{Kind: KindShared, Count: 1 + rng.IntN(3), Policy: ReplicaPolicy(rng.IntN(2))}
				case 1:
					req.Model = "P100"
				}
				for _, dd := range []*Distribution{d, defaultDistribution} {
					want, wantOK := choose(sb, req, dd, must{})
					_, _ = Choose(sa, req, dd)
					got, gotOK := Choose(sb, req, dd)
					require.Equal(t, wantOK, gotOK, "request %+v", req)
					require.Equal(t, want, got, "request %+v", req)
					again, _ := Choose(sb, req, dd)
					require.Equal(t, want, again)
				}
			}
		})
	}
}

// TestMemoIgnoresUnnumberedDistribution: a Distribution built without
// NewDistribution is not memoized (it could be changed in place).
func TestMemoIgnoresUnnumberedDistribution(t *testing.T) {
	n := fixture.DGX1V100("u")
	s := NewState(n)
	d := &Distribution{Types: []TaskType{{Kind: KindWhole, Count: 1}}, P: []float64{1}}
	_, ok := s.keyOf(Request{Kind: KindWhole, Count: 1}, d)
	require.False(t, ok)
	c, ok := Choose(s, Request{Kind: KindWhole, Count: 1}, d)
	require.True(t, ok)
	require.Len(t, c.DeviceIDs, 1)
}

// TestMemoConcurrent: parallel callers (as Filter runs on 16 goroutines)
// get the same answers as the direct computation; run with -race.
func TestMemoConcurrent(t *testing.T) {
	nodes := []*topology.Node{fixture.DGX1V100("c0"), fixture.DGX1V100("c1"), fixture.DGX1V100("c2")}
	reqs := []Request{{Kind: KindWhole, Count: 1}, {Kind: KindWhole, Count: 2}, {Kind: KindWhole, Count: 4, Topology: HintRequired}, {Kind: KindShared, Count: 1}}
	type job struct {
		s    *State
		req  Request
		want Choice
		ok   bool
	}
	var jobs []job
	for i, n := range nodes {
		for mask := range 16 {
			used := map[string]bool{}
			for g := range 4 {
				if mask&(1<<g) != 0 {
					used[n.GPUs[g*2+i%2].UUID] = true
				}
			}
			s, _ := StateOf(n, used)
			for _, r := range reqs {
				c, ok := choose(s, r, defaultDistribution, must{})
				jobs = append(jobs, job{s, r, c, ok})
			}
		}
	}
	ResetMemo()
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			for k := range jobs {
				j := jobs[(k*7+w*13)%len(jobs)]
				got, ok := Choose(j.s, j.req, nil)
				if ok != j.ok || !reflect.DeepEqual(got, j.want) {
					errs <- fmt.Errorf("request %+v: got %v, want %v", j.req, got, j.want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
}
