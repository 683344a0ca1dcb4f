package sharing

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
)

// The MIG resource of migNode's MIG devices.
const mig3g = "nvidia.com/mig-3g.20gb"

// migNode is an inventory of n MIG-capable GPUs GPU-A, GPU-B, ...; the GPU
// at index i has MIG mode enabled, with the MIG devices mig[i] (their
// UUIDs), each a 3g.20gb.
func migNode(n int, mig map[int][]string) *nvml.Inventory {
	inv := &nvml.Inventory{}
	for i := range n {
		uuid := fmt.Sprintf("GPU-%c", 'A'+i)
		_, on := mig[i]
		inv.GPUs = append(inv.GPUs, nvml.GPU{Index: i, Minor: i, UUID: uuid, NUMANode: -1, MIGCapable: true, MIGEnabled: on})
		for j, m := range mig[i] {
			inv.MIG = append(inv.MIG, nvml.MIGDevice{UUID: m, ParentIndex: i, ParentUUID: uuid, Profile: "3g.20gb", GIID: j + 1})
		}
	}
	return inv
}

// A container keeps the MIG device it was given after a MIG layout change
// destroyed it (the kubelet's PodResources lists the old MIG UUID until
// the pod ends), and keeps the parent GPU's device node: the GPU it was on
// must not be given to another pod, under any name, until it is gone.
// Before, a holding of a MIG device that is in no new inventory counted
// for nothing: the GPU was given again, whole or in replicas (the first
// case failed so: GPU-A not withheld). The reverse, a whole GPU (or a
// replica of it) held when MIG is enabled on it, withholds its new MIG
// devices.
func TestWithheldAfterMIGLayoutChange(t *testing.T) {
	const (
		gpu    = "nvidia.com/gpu"
		mixed  = "version: v1\nflags: {migStrategy: mixed}"
		single = "version: v1\nflags: {migStrategy: single}"
	)
	hold := holding
	mig1 := hold("train", mig3g, "MIG-1")
	// GPU-A with MIG devices MIG-1 and MIG-2, GPU-B whole: the layout the
	// pods were given their devices on.
	aMIG := migNode(2, map[int][]string{0: {"MIG-1", "MIG-2"}})
	wholeAB := migNode(2, nil)
	tests := []struct {
		name string
		// before are the inventories discovered before after, oldest
		// first: the memory of their MIG devices is carried through each
		// (RememberMIG), as the device plugin carries it from Manager to
		// Manager.
		before []*nvml.Inventory
		// lost: the memory is lost on the way (the plugin restarted).
		lost  bool
		after *nvml.Inventory
		cfg   string
		held  []Holding
		want  map[string]map[string]Holding
	}{
		{
			// 2 GPUs served whole, GPU-A withheld: 2 - 1 = 1 given (GPU-B).
			name: "MIG disabled: the GPU is withheld whole", before: []*nvml.Inventory{aMIG}, after: wholeAB, cfg: "version: v1",
			held: []Holding{mig1}, want: map[string]map[string]Holding{gpu: {"GPU-A": mig1}},
		},
		{
			// 2 GPUs x 4 replicas = 8, GPU-A's 4 withheld (the container
			// holds the GPU, not one share of it): 8 - 4 = 4 given.
			name: "MIG disabled, replicas on: every replica of the GPU", before: []*nvml.Inventory{aMIG}, after: wholeAB, cfg: timeSliced(4),
			held: []Holding{mig1},
			want: map[string]map[string]Holding{gpu: {"GPU-A::0": mig1, "GPU-A::1": mig1, "GPU-A::2": mig1, "GPU-A::3": mig1}},
		},
		{
			// A held replica of the gone MIG device holds the GPU whole
			// too: 8 - 4 = 4 given.
			name: "a replica of the gone MIG device", before: []*nvml.Inventory{aMIG}, after: wholeAB, cfg: timeSliced(4),
			held: []Holding{hold("r", mig3g+".shared", "MIG-1::1")},
			want: map[string]map[string]Holding{gpu: {
				"GPU-A::0": hold("r", mig3g+".shared", "MIG-1::1"), "GPU-A::1": hold("r", mig3g+".shared", "MIG-1::1"),
				"GPU-A::2": hold("r", mig3g+".shared", "MIG-1::1"), "GPU-A::3": hold("r", mig3g+".shared", "MIG-1::1"),
			}},
		},
		{
			// The new MIG devices of GPU-A overlap the old one's slices:
			// both withheld, 2 - 2 = 0 given; GPU-B whole, 1 given.
			name: "re-created with new UUIDs", before: []*nvml.Inventory{aMIG}, after: migNode(2, map[int][]string{0: {"MIG-3", "MIG-4"}}), cfg: mixed,
			held: []Holding{mig1}, want: map[string]map[string]Holding{mig3g: {"MIG-3": mig1, "MIG-4": mig1}},
		},
		{
			// MIG-1 is back under its UUID: the kubelet counts it under
			// its own name and ID; its sibling MIG-4 is apart.
			name: "re-created under the held UUID", before: []*nvml.Inventory{aMIG}, after: migNode(2, map[int][]string{0: {"MIG-1", "MIG-4"}}), cfg: mixed,
			held: []Holding{mig1}, want: map[string]map[string]Holding{},
		},
		{
			// MIG off (GPU-A whole, withheld), then on with new devices:
			// the memory of MIG-1 outlived the middle inventory.
			name: "rediscovered twice", before: []*nvml.Inventory{aMIG, wholeAB}, after: migNode(2, map[int][]string{0: {"MIG-5", "MIG-6"}}), cfg: mixed,
			held: []Holding{mig1}, want: map[string]map[string]Holding{mig3g: {"MIG-5": mig1, "MIG-6": mig1}},
		},
		{
			// MIG on both; the pod on GPU-B's MIG-3: only GPU-B withheld,
			// 2 - 1 = 1 given (GPU-A).
			name: "two GPUs: the held device's GPU only", before: []*nvml.Inventory{migNode(2, map[int][]string{0: {"MIG-1", "MIG-2"}, 1: {"MIG-3", "MIG-4"}})},
			after: wholeAB, cfg: "version: v1",
			held: []Holding{hold("b", mig3g, "MIG-3")}, want: map[string]map[string]Holding{gpu: {"GPU-B": hold("b", mig3g, "MIG-3")}},
		},
		{
			// A pod on each GPU: 2 - 2 = 0 given.
			name: "two GPUs, two pods", before: []*nvml.Inventory{migNode(2, map[int][]string{0: {"MIG-1", "MIG-2"}, 1: {"MIG-3", "MIG-4"}})},
			after: wholeAB, cfg: "version: v1",
			held: []Holding{mig1, hold("b", mig3g, "MIG-4")},
			want: map[string]map[string]Holding{gpu: {"GPU-A": mig1, "GPU-B": hold("b", mig3g, "MIG-4")}},
		},
		{
			// The pod ended: 2 - 0 = 2 given.
			name: "released", before: []*nvml.Inventory{aMIG}, after: wholeAB, cfg: "version: v1",
			held: []Holding{}, want: map[string]map[string]Holding{},
		},
		{
			// Nothing remembers MIG-1's GPU: either MIG-capable GPU may be
			// it, both withheld, 2 - 2 = 0 given.
			name: "the memory lost: every MIG-capable GPU", before: []*nvml.Inventory{aMIG}, lost: true, after: wholeAB, cfg: "version: v1",
			held: []Holding{mig1}, want: map[string]map[string]Holding{gpu: {"GPU-A": mig1, "GPU-B": mig1}},
		},
		{
			// The reverse: GPU-A held whole, then MIG enabled on it. Its
			// MIG devices are withheld, 2 - 2 = 0 given; GPU-B keeps its
			// name and ID.
			name: "a whole GPU held, then MIG on it", before: []*nvml.Inventory{wholeAB}, after: migNode(2, map[int][]string{0: {"MIG-3", "MIG-4"}}), cfg: mixed,
			held: []Holding{hold("w", gpu, "GPU-A")}, want: map[string]map[string]Holding{mig3g: {"MIG-3": hold("w", gpu, "GPU-A"), "MIG-4": hold("w", gpu, "GPU-A")}},
		},
		{
			name: "a replica of a GPU held, then MIG on it", before: []*nvml.Inventory{wholeAB}, after: migNode(2, map[int][]string{0: {"MIG-3", "MIG-4"}}), cfg: mixed,
			held: []Holding{hold("s", gpu, "GPU-A::1")},
			want: map[string]map[string]Holding{mig3g: {"MIG-3": hold("s", gpu, "GPU-A::1"), "MIG-4": hold("s", gpu, "GPU-A::1")}},
		},
		{
			// Single: 4 MIG devices under nvidia.com/gpu, GPU-A's 2
			// withheld: 4 - 2 = 2 given.
			name: "a whole GPU held, then MIG on every GPU (single)", before: []*nvml.Inventory{wholeAB},
			after: migNode(2, map[int][]string{0: {"MIG-3", "MIG-4"}, 1: {"MIG-5", "MIG-6"}}), cfg: single,
			held: []Holding{hold("w", gpu, "GPU-A")}, want: map[string]map[string]Holding{gpu: {"MIG-3": hold("w", gpu, "GPU-A"), "MIG-4": hold("w", gpu, "GPU-A")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var memory MIGParents
			for _, inv := range tc.before {
				memory = RememberMIG(inv, memory, tc.held)
			}
			if tc.lost {
				memory = nil
			}
			res := buildFrom(t, tc.after, tc.cfg)
			require.Equal(t, tc.want, Withheld(res, tc.after, memory, tc.held, nil))
		})
	}
}

// The memory of MIG devices gone keeps an entry while a holding names it,
// and forgets it once none does: it stays within the node's MIG devices
// and the holdings the kubelet lists. What the plugin never learnt of the
// holdings forgets nothing (they may name it), within MaxMIGParents.
func TestRememberMIG(t *testing.T) {
	aMIG := migNode(1, map[int][]string{0: {"MIG-1", "MIG-2"}})
	wholeA := migNode(1, nil)
	both := MIGParents{"MIG-1": "GPU-A", "MIG-2": "GPU-A"}
	many := MIGParents{}
	for i := range 2 * MaxMIGParents {
		many[fmt.Sprintf("MIG-old-%04d", i)] = "GPU-A"
	}
	tests := []struct {
		name    string
		inv     *nvml.Inventory
		earlier MIGParents
		held    []Holding
		want    MIGParents
	}{
		{"the inventory's own, held or not", aMIG, nil, []Holding{}, both},
		{"a gone device a holding names stays, the other goes", wholeA, both, []Holding{holding("a", mig3g, "MIG-1")}, MIGParents{"MIG-1": "GPU-A"}},
		{"a replica names its device", wholeA, both, []Holding{holding("a", mig3g+".shared", "MIG-2::1")}, MIGParents{"MIG-2": "GPU-A"}},
		{"released: forgotten", wholeA, both, []Holding{}, MIGParents{}},
		{"the holdings not known: kept", wholeA, both, nil, both},
		{"back in the inventory: its parent now", aMIG, MIGParents{"MIG-1": "GPU-B"}, []Holding{holding("a", mig3g, "MIG-1")}, both},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, RememberMIG(tc.inv, tc.earlier, tc.held))
		})
	}
	t.Run("bounded", func(t *testing.T) {
		// 2 of the inventory's + 2048 earlier, nothing known of the
		// holdings: 1024 kept, the inventory's 2 among them.
		got := RememberMIG(aMIG, many, nil)
		require.Len(t, got, MaxMIGParents)
		require.Equal(t, "GPU-A", got["MIG-1"])
		require.Equal(t, "GPU-A", got["MIG-2"])
	})
}

// The life of one holding across a MIG layout change, as the device
// plugin's Managers see it: GPU-A is withheld while the kubelet lists the
// pod, given again once it does not, and the memory of MIG-1 dropped then.
func TestGoneMIGDeviceReleased(t *testing.T) {
	aMIG := migNode(2, map[int][]string{0: {"MIG-1", "MIG-2"}})
	after := migNode(2, nil)
	res := buildFrom(t, after, "version: v1")
	h := holding("train", mig3g, "MIG-1")

	// Manager 1 (MIG on GPU-A) carries its MIG devices; Manager 2 (MIG
	// off) withholds GPU-A: 2 - 1 = 1 given.
	memory := RememberMIG(aMIG, nil, []Holding{h})
	require.Equal(t, MIGParents{"MIG-1": "GPU-A", "MIG-2": "GPU-A"}, memory)
	w, notes := WithheldNotes(res, after, memory, []Holding{h}, nil)
	require.Equal(t, map[string]map[string]Holding{"nvidia.com/gpu": {"GPU-A": h}}, w)
	require.Equal(t, []Note{{Holding: h, Counted: true, Gone: true, GPUs: []string{"GPU-A"},
		Problem: "a MIG device no longer on this node; its GPU is withheld whole"}}, notes)
	// A reload while it runs keeps MIG-1 (named), forgets MIG-2.
	memory = RememberMIG(after, memory, []Holding{h})
	require.Equal(t, MIGParents{"MIG-1": "GPU-A"}, memory)

	// The pod ended: 2 - 0 = 2 given, and the next Manager remembers nothing.
	w, notes = WithheldNotes(res, after, memory, []Holding{}, w)
	require.Empty(t, w)
	require.Empty(t, notes)
	require.Empty(t, RememberMIG(after, memory, []Holding{}))
}

// A MIG UUID of no known GPU on a node without a MIG-capable GPU cannot
// have been on it: nothing withheld, noted as naming none of its devices.
// One under another vendor's resource is that vendor's.
func TestGoneMIGDeviceWithoutMIGCapableGPU(t *testing.T) {
	inv := migNode(2, nil)
	for i := range inv.GPUs {
		inv.GPUs[i].MIGCapable = false
	}
	res := buildFrom(t, inv, "version: v1")
	gone := holding("a", mig3g, "MIG-1")
	other := holding("b", "example.com/accel", "MIG-1")
	w, notes := WithheldNotes(res, inv, nil, []Holding{gone, other}, nil)
	require.Empty(t, w)
	require.Equal(t, []Note{
		{Holding: gone, Problem: "names none of this node's GPUs or MIG devices"},
		{Holding: other, Problem: "another vendor's device", OtherVendor: true},
	}, notes)
}
