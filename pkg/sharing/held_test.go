package sharing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/nvml"
)

// buildFrom is Build of inv under the config text cfg.
func buildFrom(t *testing.T, inv *nvml.Inventory, cfg string) []Resource {
	t.Helper()
	c, err := configv1.Parse([]byte(cfg))
	require.NoError(t, err)
	res, err := Build(inv, c)
	require.NoError(t, err)
	return res
}

// timeSliced is the config text that time-slices nvidia.com/gpu in n replicas.
func timeSliced(n int) string {
	return fmt.Sprintf("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: %d}]}}", n)
}

// holding is container main of pod default/pod holding resource res's id.
func holding(pod, res, id string) Holding {
	return Holding{Namespace: "default", Pod: pod, Container: "main", Resource: res, ID: id}
}

func TestWithheld(t *testing.T) {
	// 2 GPUs; GPU 0 has MIG devices MIG-0-0 and MIG-0-1 (used under mixed).
	inv := inventory(2, map[int][]string{0: {"3g.20gb", "3g.20gb"}})
	build := func(cfg string) []Resource { return buildFrom(t, inv, cfg) }
	hold := holding
	const (
		gpu    = "nvidia.com/gpu"
		shared = "nvidia.com/gpu.shared"
		mig    = "nvidia.com/mig-3g.20gb"
	)
	whole := build("version: v1")
	replicas4 := build("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}")
	mixed := build("version: v1\nflags: {migStrategy: mixed}")
	tests := []struct {
		name      string
		resources []Resource
		held      []Holding
		want      map[string]map[string]Holding
	}{
		{"nothing held", whole, nil, map[string]map[string]Holding{}},
		{
			"held under its own name and ID: the kubelet counts it", whole,
			[]Holding{hold("a", gpu, "GPU-0")}, map[string]map[string]Holding{},
		},
		{
			"another vendor's device", whole,
			[]Holding{hold("a", "example.com/nic", "GPU-0-not-ours")}, map[string]map[string]Holding{},
		},
		{
			// A MIG device on no GPU of the node and remembered nowhere
			// (the plugin restarted after a MIG layout change): its GPU
			// may be either MIG-capable GPU, so both are withheld, 2 - 2
			// = 0 given. Before, neither was.
			"a MIG device that is gone, its GPU not known", whole,
			[]Holding{hold("b", mig, "MIG-9-9")},
			map[string]map[string]Holding{gpu: {"GPU-0": hold("b", mig, "MIG-9-9"), "GPU-1": hold("b", mig, "MIG-9-9")}},
		},
		{
			"renamed: the same GPU under another name", whole,
			[]Holding{hold("a", "example.com/gpu", "GPU-1")},
			map[string]map[string]Holding{gpu: {"GPU-1": hold("a", "example.com/gpu", "GPU-1")}},
		},
		{
			"replicas off: a replica holds its whole GPU", whole,
			[]Holding{hold("a", shared, "GPU-1::3")},
			map[string]map[string]Holding{gpu: {"GPU-1": hold("a", shared, "GPU-1::3")}},
		},
		{
			"replicas on: a whole GPU holds its replicas", replicas4,
			[]Holding{hold("a", "nvidia.com/gpu-old", "GPU-0")},
			map[string]map[string]Holding{gpu: {
				"GPU-0::0": hold("a", "nvidia.com/gpu-old", "GPU-0"), "GPU-0::1": hold("a", "nvidia.com/gpu-old", "GPU-0"),
				"GPU-0::2": hold("a", "nvidia.com/gpu-old", "GPU-0"), "GPU-0::3": hold("a", "nvidia.com/gpu-old", "GPU-0"),
			}},
		},
		{
			// GPU-0::0 held under its own name (the kubelet counts it);
			// 2 shares under the old name take 2 of the 3 free replicas,
			// highest first: ::3 and ::2; ::1 stays. The app container that
			// reused its init container's replica is listed twice: 1 share.
			"replicas renamed: each held share takes one free replica", replicas4,
			[]Holding{
				hold("a", gpu, "GPU-0::0"),
				hold("b", shared, "GPU-0::0"), {Namespace: "default", Pod: "b", Container: "init", Resource: shared, ID: "GPU-0::0"},
				hold("c", shared, "GPU-0::5"),
			},
			map[string]map[string]Holding{gpu: {
				"GPU-0::3": {Namespace: "default", Pod: "b", Container: "init", Resource: shared, ID: "GPU-0::0"},
				"GPU-0::2": hold("c", shared, "GPU-0::5"),
			}},
		},
		{
			// 4 replicas, 1 held under its name, 4 shares under the old:
			// all 3 free replicas withheld, none left to give.
			"more held shares than free replicas", replicas4,
			[]Holding{hold("a", gpu, "GPU-1::1"), hold("b", shared, "GPU-1::0"), hold("c", shared, "GPU-1::1"), hold("d", shared, "GPU-1::2"), hold("e", shared, "GPU-1::3")},
			map[string]map[string]Holding{gpu: {"GPU-1::3": hold("b", shared, "GPU-1::0"), "GPU-1::2": hold("c", shared, "GPU-1::1"), "GPU-1::0": hold("d", shared, "GPU-1::2")}},
		},
		{
			"none to mixed: a whole GPU holds its MIG devices", mixed,
			[]Holding{hold("a", "nvidia.com/gpu-old", "GPU-0")},
			map[string]map[string]Holding{mig: {"MIG-0-0": hold("a", "nvidia.com/gpu-old", "GPU-0"), "MIG-0-1": hold("a", "nvidia.com/gpu-old", "GPU-0")}},
		},
		{
			"mixed to none: a MIG device holds its GPU, not the other GPU", whole,
			[]Holding{hold("a", mig, "MIG-0-1")},
			map[string]map[string]Holding{gpu: {"GPU-0": hold("a", mig, "MIG-0-1")}},
		},
		{
			"a MIG device renamed holds itself, not its sibling", mixed,
			[]Holding{hold("a", gpu, "MIG-0-1")},
			map[string]map[string]Holding{mig: {"MIG-0-1": hold("a", gpu, "MIG-0-1")}},
		},
		{
			"a held replica of a GPU holds its MIG devices", mixed,
			[]Holding{hold("a", shared, "GPU-0::1")},
			map[string]map[string]Holding{mig: {"MIG-0-0": hold("a", shared, "GPU-0::1"), "MIG-0-1": hold("a", shared, "GPU-0::1")}},
		},
		{
			// What this plugin allocated since its last PodResources read
			// counts; where the kubelet names the pod too, the pod names it.
			"unnamed holdings count, named ones name the holder", whole,
			[]Holding{{Resource: shared, ID: "GPU-0::1"}, {Resource: shared, ID: "GPU-1::0"}, hold("a", shared, "GPU-1::0")},
			map[string]map[string]Holding{gpu: {"GPU-0": {Resource: shared, ID: "GPU-0::1"}, "GPU-1": hold("a", shared, "GPU-1::0")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Withheld(tc.resources, inv, nil, tc.held, nil))
		})
	}
}

func TestHoldingString(t *testing.T) {
	require.Equal(t, "default/a container main holds nvidia.com/gpu GPU-0",
		Holding{Namespace: "default", Pod: "a", Container: "main", Resource: "nvidia.com/gpu", ID: "GPU-0"}.String())
	require.Equal(t, "a container this plugin allocated to holds nvidia.com/gpu GPU-0",
		Holding{Resource: "nvidia.com/gpu", ID: "GPU-0"}.String())
}

// A withheld share stays on the replica it was withheld on (prev) while the
// kubelet still sees that replica free. Before, shares were laid out anew
// on the highest free replicas at each recompute: when a higher replica was
// released, or another share went, a share moved onto a replica the kubelet
// had been told was free (and may have chosen: its Allocate was refused),
// and the replica it left was served again.
func TestWithheldShareDoesNotMove(t *testing.T) {
	// 2 GPUs, no MIG.
	inv := inventory(2, nil)
	build := func(replicas int) []Resource { return buildFrom(t, inv, timeSliced(replicas)) }
	hold := holding
	const (
		gpu    = "nvidia.com/gpu"
		shared = "nvidia.com/gpu.shared"
	)
	replicas4, replicas8 := build(4), build(8)
	x := hold("x", gpu, "GPU-0::3")    // held under its own name: the kubelet counts it
	b := hold("b", shared, "GPU-0::0") // shares under an earlier name
	c := hold("c", shared, "GPU-0::5")
	a := hold("a", shared, "GPU-0::1") // sorts before b and c
	tests := []struct {
		name                string
		before, after       []Resource
		heldBefore, heldNow []Holding
		wantBefore, want    map[string]Holding // of nvidia.com/gpu
		wantWithoutPrevious map[string]Holding // the layout anew, as before the fix
	}{
		{
			// ::3 held under its own name: c takes the highest free, ::2.
			// x ends: ::3 is free, and c stays on ::2.
			name: "a higher replica released", before: replicas4, after: replicas4,
			heldBefore: []Holding{x, c}, heldNow: []Holding{c},
			wantBefore: map[string]Holding{"GPU-0::2": c}, want: map[string]Holding{"GPU-0::2": c},
			wantWithoutPrevious: map[string]Holding{"GPU-0::3": c},
		},
		{
			// b on ::3, c on ::2 (free ::3 ::2 ::1 ::0, in holding order);
			// b ends: c stays on ::2, ::3 is served again.
			name: "another share gone", before: replicas4, after: replicas4,
			heldBefore: []Holding{b, c}, heldNow: []Holding{c},
			wantBefore: map[string]Holding{"GPU-0::3": b, "GPU-0::2": c}, want: map[string]Holding{"GPU-0::2": c},
			wantWithoutPrevious: map[string]Holding{"GPU-0::3": c},
		},
		{
			// b on ::3, c on ::2; a new share a, first in holding order,
			// takes the highest replica left, ::1: b and c keep theirs.
			name: "a new share first in order", before: replicas4, after: replicas4,
			heldBefore: []Holding{b, c}, heldNow: []Holding{a, b, c},
			wantBefore:          map[string]Holding{"GPU-0::3": b, "GPU-0::2": c},
			want:                map[string]Holding{"GPU-0::3": b, "GPU-0::2": c, "GPU-0::1": a},
			wantWithoutPrevious: map[string]Holding{"GPU-0::3": a, "GPU-0::2": b, "GPU-0::1": c},
		},
		{
			// A reload from 4 to 8 replicas keeps ::0..::3: c stays on ::2
			// (x ended meanwhile), not on the new highest, ::7.
			name: "a reload to more replicas", before: replicas4, after: replicas8,
			heldBefore: []Holding{x, c}, heldNow: []Holding{c},
			wantBefore: map[string]Holding{"GPU-0::2": c}, want: map[string]Holding{"GPU-0::2": c},
			wantWithoutPrevious: map[string]Holding{"GPU-0::7": c},
		},
		{
			// A reload from 8 to 4 replicas: c was on ::7 (x holds ::3
			// under its own name in both), which is gone; c takes the
			// highest free of the 4, ::2.
			name: "a reload that drops its replica", before: replicas8, after: replicas4,
			heldBefore: []Holding{x, c}, heldNow: []Holding{x, c},
			wantBefore: map[string]Holding{"GPU-0::7": c}, want: map[string]Holding{"GPU-0::2": c},
			wantWithoutPrevious: map[string]Holding{"GPU-0::2": c},
		},
		{
			// What this plugin allocated since its last read, unnamed,
			// then named by the kubelet: the same share (resource and ID)
			// keeps its replica, now naming its pod.
			name: "an unnamed share named later", before: replicas4, after: replicas4,
			heldBefore: []Holding{x, {Resource: shared, ID: "GPU-0::5"}}, heldNow: []Holding{c},
			wantBefore: map[string]Holding{"GPU-0::2": {Resource: shared, ID: "GPU-0::5"}}, want: map[string]Holding{"GPU-0::2": c},
			wantWithoutPrevious: map[string]Holding{"GPU-0::3": c},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prev := Withheld(tc.before, inv, nil, tc.heldBefore, nil)
			require.Equal(t, map[string]map[string]Holding{gpu: tc.wantBefore}, prev)
			require.Equal(t, map[string]map[string]Holding{gpu: tc.want}, Withheld(tc.after, inv, nil, tc.heldNow, prev))
			require.Equal(t, map[string]map[string]Holding{gpu: tc.wantWithoutPrevious}, Withheld(tc.after, inv, nil, tc.heldNow, nil))
			// Recomputed with its own result, nothing moves.
			now := Withheld(tc.after, inv, nil, tc.heldNow, prev)
			require.Equal(t, now, Withheld(tc.after, inv, nil, tc.heldNow, now))
		})
	}
}

// A share takes one replica, whatever prev says: a replica prev gave it
// that the kubelet now counts held under its own name, or that another
// holding blocks, is not kept; prev's replicas of holders that are gone,
// of another GPU or twice for one share do not add any.
func TestWithheldKeepsShares(t *testing.T) {
	inv := inventory(2, nil)
	replicas4 := buildFrom(t, inv, timeSliced(4))
	hold := holding
	const (
		gpu    = "nvidia.com/gpu"
		shared = "nvidia.com/gpu.shared"
	)
	s1, s2 := hold("s1", shared, "GPU-0::0"), hold("s2", shared, "GPU-0::1")
	gone := hold("gone", shared, "GPU-0::2")
	tests := []struct {
		name string
		held []Holding
		prev map[string]Holding // of nvidia.com/gpu
		want map[string]Holding
	}{
		{
			// s1 was on ::2; the kubelet gave ::2 under its own name (it
			// chose it before it was withheld): s1 takes the highest free,
			// ::3. 4 - 1 held - 1 share = 2 left.
			name: "its replica now held under its own name",
			held: []Holding{hold("y", gpu, "GPU-0::2"), s1},
			prev: map[string]Holding{"GPU-0::2": s1},
			want: map[string]Holding{"GPU-0::3": s1},
		},
		{
			name: "a holder gone: its replica is free again",
			held: []Holding{s1},
			prev: map[string]Holding{"GPU-0::3": gone, "GPU-0::1": s1},
			want: map[string]Holding{"GPU-0::1": s1},
		},
		{
			// A malformed prev: s1 on two replicas keeps one, the highest.
			name: "one share on two replicas in prev",
			held: []Holding{s1},
			prev: map[string]Holding{"GPU-0::1": s1, "GPU-0::2": s1},
			want: map[string]Holding{"GPU-0::2": s1},
		},
		{
			name: "prev on another GPU",
			held: []Holding{s1},
			prev: map[string]Holding{"GPU-1::1": s1},
			want: map[string]Holding{"GPU-0::3": s1},
		},
		{
			// 1 held under its own name, 4 shares, 3 free: s1 and s2 keep
			// ::0 and ::1, the first of the others in holding order takes
			// ::3, the last none. 4 - 1 - 3 = 0 left.
			name: "more shares than free replicas",
			held: []Holding{hold("y", gpu, "GPU-0::2"), hold("a", shared, "GPU-0::7"), hold("b", shared, "GPU-0::8"), s1, s2},
			prev: map[string]Holding{"GPU-0::0": s1, "GPU-0::1": s2},
			want: map[string]Holding{"GPU-0::0": s1, "GPU-0::1": s2, "GPU-0::3": hold("a", shared, "GPU-0::7")},
		},
		{
			// A whole GPU 0 held under an earlier name blocks all its
			// replicas: s1 has none of its own.
			name: "its replica blocked by a whole-GPU holding",
			held: []Holding{hold("w", "example.com/gpu", "GPU-0"), s1},
			prev: map[string]Holding{"GPU-0::1": s1},
			want: map[string]Holding{
				"GPU-0::0": hold("w", "example.com/gpu", "GPU-0"), "GPU-0::1": hold("w", "example.com/gpu", "GPU-0"),
				"GPU-0::2": hold("w", "example.com/gpu", "GPU-0"), "GPU-0::3": hold("w", "example.com/gpu", "GPU-0"),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Withheld(replicas4, inv, nil, tc.held, map[string]map[string]Holding{gpu: tc.prev})
			require.Equal(t, map[string]map[string]Holding{gpu: tc.want}, got)
		})
	}
}

// Over random sequences of holdings on 2 GPUs of 4 replicas, each result
// fed back as prev: every GPU withholds min(shares, free) replicas, each
// for a distinct share, and a share keeps its replica while the kubelet
// sees that replica free.
func TestWithheldSharesStayOverTime(t *testing.T) {
	inv := inventory(2, nil)
	res := buildFrom(t, inv, timeSliced(4))
	const (
		gpu    = "nvidia.com/gpu"
		shared = "nvidia.com/gpu.shared"
	)
	// The pool: each replica held under its own name, and 6 shares per
	// GPU under an earlier name (replica IDs of an earlier 6-replica
	// config).
	var pool []Holding
	for g := range 2 {
		for n := range 4 {
			pool = append(pool, Holding{Namespace: "own", Pod: fmt.Sprintf("p%d-%d", g, n), Container: "main", Resource: gpu, ID: fmt.Sprintf("GPU-%d::%d", g, n)})
		}
		for n := range 6 {
			pool = append(pool, Holding{Namespace: "old", Pod: fmt.Sprintf("s%d-%d", g, n), Container: "main", Resource: shared, ID: fmt.Sprintf("GPU-%d::%d", g, n)})
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	present := make([]bool, len(pool))
	var prev map[string]map[string]Holding
	for step := range 2000 {
		// Each step one holding comes or goes.
		i := rng.IntN(len(pool))
		present[i] = !present[i]
		var held []Holding
		known := map[string]bool{} // replica IDs held under their own name
		shares := map[string]int{} // GPU UUID -> shares
		for j, h := range pool {
			if !present[j] {
				continue
			}
			held = append(held, h)
			uuid, _ := deviceid.UUIDOf(h.ID)
			if h.Resource == gpu {
				known[h.ID] = true
			} else {
				shares[uuid]++
			}
		}
		got := Withheld(res, inv, nil, held, prev)
		for g := range 2 {
			uuid := fmt.Sprintf("GPU-%d", g)
			free := 4
			for n := range 4 {
				if known[deviceid.ReplicaID(uuid, n)] {
					free--
				}
			}
			n, holders := 0, map[Holding]bool{}
			for id, h := range got[gpu] {
				if u, _ := deviceid.UUIDOf(id); u == uuid {
					n++
					holders[h] = true
					require.False(t, known[id], "step %d: %s withheld and held under its own name", step, id)
				}
			}
			require.Equal(t, min(shares[uuid], free), n, "step %d, %s", step, uuid)
			require.Len(t, holders, n, "step %d, %s: a share on two replicas", step, uuid)
		}
		for id, h := range prev[gpu] {
			if present[slices.Index(pool, h)] && !known[id] {
				require.Equal(t, h, got[gpu][id], "step %d: the share moved off %s", step, id)
			}
		}
		prev = got
	}
}

// What Withheld skips or counts although malformed is noted, once per
// resource and ID; a holding under its own name and ID, or of a GPU under
// an earlier name, is not.
func TestWithheldNotes(t *testing.T) {
	inv := inventory(2, nil)
	whole := buildFrom(t, inv, "version: v1")
	hold := func(res, id string) Holding { return holding("a", res, id) }
	long := strings.Repeat("GPU-", 100)
	tests := []struct {
		name         string
		held         Holding
		want         []Note
		wantWithheld map[string]map[string]Holding
	}{
		{name: "its own name and ID", held: hold("nvidia.com/gpu", "GPU-0"), wantWithheld: map[string]map[string]Holding{}},
		{
			name: "a GPU under an earlier name", held: hold("nvidia.com/gpu.old", "GPU-1"),
			wantWithheld: map[string]map[string]Holding{"nvidia.com/gpu": {"GPU-1": hold("nvidia.com/gpu.old", "GPU-1")}},
		},
		{
			// Its GPU not known: both MIG-capable GPUs withheld.
			name: "a MIG device that is gone", held: hold("nvidia.com/mig-1g.5gb", "MIG-gone"),
			want: []Note{{Holding: hold("nvidia.com/mig-1g.5gb", "MIG-gone"), Counted: true, Gone: true, ParentUnknown: true, GPUs: []string{"GPU-0", "GPU-1"},
				Problem: "a MIG device no longer on this node, on a GPU not known; every GPU it may have been on is withheld"}},
			wantWithheld: map[string]map[string]Holding{"nvidia.com/gpu": {
				"GPU-0": hold("nvidia.com/mig-1g.5gb", "MIG-gone"), "GPU-1": hold("nvidia.com/mig-1g.5gb", "MIG-gone"),
			}},
		},
		{
			name: "a GPU that is gone", held: hold("nvidia.com/gpu", "GPU-gone"),
			want:         []Note{{Holding: hold("nvidia.com/gpu", "GPU-gone"), Problem: "names none of this node's GPUs or MIG devices"}},
			wantWithheld: map[string]map[string]Holding{},
		},
		{
			name: "another vendor's device", held: hold("example.com/nic", "0000:3b:00.0"),
			want:         []Note{{Holding: hold("example.com/nic", "0000:3b:00.0"), Problem: "another vendor's device", OtherVendor: true}},
			wantWithheld: map[string]map[string]Holding{},
		},
		{
			// Counted: the kubelet says something holds GPU 1.
			name: "a malformed replica of a GPU of the node", held: hold("example.com/gpu", "GPU-1::abc"),
			want: []Note{{Holding: hold("example.com/gpu", "GPU-1::abc"), Counted: true,
				Problem: `device ID "GPU-1::abc": want <UUID>::<replica number >= 0>`}},
			wantWithheld: map[string]map[string]Holding{"nvidia.com/gpu": {"GPU-1": hold("example.com/gpu", "GPU-1::abc")}},
		},
		{
			name: "an empty resource name", held: hold("", "GPU-0"),
			want:         []Note{{Holding: hold("", "GPU-0"), Problem: "empty resource name", Counted: true}},
			wantWithheld: map[string]map[string]Holding{"nvidia.com/gpu": {"GPU-0": hold("", "GPU-0")}},
		},
		{
			name: "an empty ID", held: hold("nvidia.com/gpu", ""),
			want:         []Note{{Holding: hold("nvidia.com/gpu", ""), Problem: `device ID "": empty or longer than 256 bytes`}},
			wantWithheld: map[string]map[string]Holding{},
		},
		{
			// 400 bytes, quoted cut to 64.
			name: "an overlong ID", held: hold("nvidia.com/gpu", long),
			want: []Note{{Holding: hold("nvidia.com/gpu", long),
				Problem: `device ID "GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-GPU-"... (400 bytes): empty or longer than 256 bytes`}},
			wantWithheld: map[string]map[string]Holding{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Listed twice (an app container reusing its init
			// container's device): noted once.
			w, notes := WithheldNotes(whole, inv, nil, []Holding{tc.held, tc.held}, nil)
			require.Equal(t, tc.want, notes)
			require.Equal(t, tc.wantWithheld, w)
		})
	}
}
