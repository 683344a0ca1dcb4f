package protocol

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

type namedNode struct {
	name string
	node *topology.Node
}

// testNodes are the shapes whose annotations must round-trip.
var testNodes = []namedNode{
	{"dgx-1-v100", fixture.DGX1V100("dgx1")},
	{"dgx-a100", fixture.NVSwitch("dgxa100", "A100", 8, 12)},
	{"pcie-4gpu-2socket", fixture.PCIe("pcie4", "T4", 4)},
	{"nvswitch-16gpu", fixture.NVSwitch("nvs16", "H100", 16, 18)},
	{"shared", fixture.Shared(fixture.PCIe("shared", "T4", 8), 4)},
	// The biggest nodes: every GPU of a DGX H100 split in 7 MIG devices
	// (56, about 9 KiB with real UUIDs), and 64 GPUs, the most a node may
	// have, all linked (4096 links, about 100 KiB).
	{"all-mig-8x7", allMIG(fixture.NVSwitch("allmig", "H100", 8, 18), "1g.10gb", 7)},
	{"nvswitch-64gpu", fixture.NVSwitch("nvs64", "GB200", 64, 18)},
}

// allMIG puts every GPU of node in MIG mode with n devices of profile, one
// slice each.
func allMIG(node *topology.Node, profile string, n int) *topology.Node {
	profiles := make([]string, n)
	for k := range profiles {
		profiles[k] = profile
	}
	for i := range node.GPUs {
		fixture.WithMIG(node, i, 1, profiles...)
	}
	return node
}

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range append(testNodes, namedNode{"mig", fixture.MixedStates("dgxa100")}, namedNode{"empty", &topology.Node{GPUs: []topology.GPU{}, Links: [][]topology.Link{}}}) {
		t.Run(tc.name, func(t *testing.T) {
			s, err := EncodeTopology(tc.node)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(s, `{"version":"v1","node":{`), s[:40])
			got, err := DecodeTopology(s)
			require.NoError(t, err)
			require.Equal(t, tc.node, got)
			// Same matrix, same interned shape.
			require.Same(t, tc.node.Shape(), got.Shape())
		})
	}
}

// A node that publishes its resources is written as v2 and read back with
// them; without them it stays v1 (older schedulers read it).
func TestCodecResources(t *testing.T) {
	n := fixture.PCIe("pcie4", "T4", 4)
	for i := range n.GPUs {
		n.GPUs[i].Replicas = 4
	}
	n.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicySpread}}
	s, err := EncodeTopology(n)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s, `{"version":"v2","node":{`), s[:40])
	got, err := DecodeTopology(s)
	require.NoError(t, err)
	require.Equal(t, n, got)
	r, ok := got.Resource("nvidia.com/gpu")
	require.True(t, ok)
	require.Equal(t, topology.Resource{Name: "nvidia.com/gpu", Kind: topology.KindReplica, Replicas: 4, Policy: topology.PolicySpread}, r)
	_, ok = got.Resource("nvidia.com/gpu.shared")
	require.False(t, ok)
}

// TestEncodeFormat pins the wire format of a 2-GPU node.
func TestEncodeFormat(t *testing.T) {
	n := &topology.Node{
		GPUs: []topology.GPU{
			{Index: 0, UUID: "GPU-0", Model: "A100", MemoryMiB: 40960, NVLinkVersion: 3, Healthy: true},
			{Index: 1, UUID: "GPU-1", Model: "A100", MemoryMiB: 40960, NUMANode: 1, NVLinkVersion: 3, Replicas: 2},
		},
		Links:      [][]topology.Link{{{}, {Class: topology.ClassNVLink, NVLinks: 12}}, {{Class: topology.ClassNVLink, NVLinks: 12}, {}}},
		Generation: 3,
	}
	s, err := EncodeTopology(n)
	require.NoError(t, err)
	require.JSONEq(t, `{"version":"v1","node":{
		"gpus":[
			{"index":0,"uuid":"GPU-0","model":"A100","memoryMiB":40960,"numa":0,"nvlinkVersion":3,"healthy":true},
			{"index":1,"uuid":"GPU-1","model":"A100","memoryMiB":40960,"numa":1,"nvlinkVersion":3,"healthy":false,"replicas":2}],
		"links":[[{"class":0},{"class":7,"nvlinks":12}],[{"class":7,"nvlinks":12},{"class":0}]],
		"generation":3}}`, s)
}

// mutate encodes the DGX-1 node after applying f, bypassing Encode's
// validation, so Decode sees the inconsistent node.
func mutate(t *testing.T, f func(n *topology.Node)) string {
	t.Helper()
	n := fixture.DGX1V100("dgx1")
	f(n)
	b, err := json.Marshal(topologyEnvelope{Version: TopologyVersion, Node: n})
	require.NoError(t, err)
	return string(b)
}

func TestDecodeErrors(t *testing.T) {
	valid, err := EncodeTopology(fixture.DGX1V100("dgx1"))
	require.NoError(t, err)
	tests := []struct {
		name  string
		in    string
		error string
	}{
		{"empty", "", "malformed JSON"},
		{"not JSON", "gpus: 8", "malformed JSON"},
		{"truncated", valid[:len(valid)/2], "malformed JSON"},
		{"truncated by one", valid[:len(valid)-1], "malformed JSON"},
		{"trailing data", valid + `{}`, "after top-level value"},
		{"array", `[1,2]`, "malformed JSON"},
		{"null", `null`, "no version field"},
		{"no version", `{"node":{"gpus":[],"links":[]}}`, "no version field"},
		{"wrong version", `{"version":"v3","node":{"gpus":[],"links":[],"newField":1}}`, `unsupported version "v3"`},
		{"v1 with resources", `{"version":"v1","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/gpu","kind":"gpu"}]}}`, "format v1 has no resources"},
		{"unknown resource kind", `{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/gpu","kind":"vgpu"}]}}`, `unknown kind "vgpu"`},
		{"resource name no name", `{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/","kind":"gpu"}]}}`, "not an extended resource name"},
		{"resource listed twice", `{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/gpu","kind":"gpu"},{"name":"nvidia.com/gpu","kind":"gpu"}]}}`, "listed twice"},
		{"replicas of one", `{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/gpu","kind":"replica","replicas":1,"policy":"packed"}]}}`, "1 replicas, want 2 to 43690"},
		{"replica without policy", `{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/gpu","kind":"replica","replicas":4}]}}`, `replica policy ""`},
		{"whole with replicas", `{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/gpu","kind":"gpu","replicas":4}]}}`, "has no replicas"},
		{"MIG without profile", `{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/mig-1g.5gb","kind":"mig"}]}}`, `MIG profile ""`},
		{"version of wrong type", `{"version":1,"node":{}}`, "malformed JSON"},
		{"no node", `{"version":"v1"}`, "no node"},
		{"null node", `{"version":"v1","node":null}`, "no node"},
		{"unknown envelope field", `{"version":"v1","node":{"gpus":[],"links":[]},"extra":true}`, `unknown field "extra"`},
		{"unknown node field", strings.Replace(valid, `"generation"`, `"color":"red","generation"`, 1), `unknown field "node.color"`},
		// Field names match as written, once each: encoding/json took
		// "Generation" for "generation", and the last of two keys.
		{"field name in other case", strings.Replace(valid, `"generation":1`, `"Generation":1`, 1), `unknown field "node.Generation"`},
		{"field given twice", strings.Replace(valid, `"generation":1`, `"generation":1,"generation":7`, 1), `duplicate field "node.generation"`},
		{"envelope field given twice", strings.Replace(valid, `"version":"v1"`, `"version":"v1","version":"v1"`, 1), `duplicate field "version"`},
		{"huge NUMA node", mutate(t, func(n *topology.Node) { n.GPUs[3].NUMANode = 99999999999 }), "GPU 3 has NUMA node 99999999999"},
		{"oversized", `{"version":"v1","node":{"clique":"` + strings.Repeat("x", MaxPayload) + `"}}`, "more than the 262144 allowed"},
		{"wrong field type", strings.Replace(valid, `"generation":1`, `"generation":"zero"`, 1), "cannot unmarshal"},
		{"negative memory", strings.Replace(valid, `"memoryMiB":16384`, `"memoryMiB":-1`, 1), "cannot unmarshal"},
		{"matrix missing a row", mutate(t, func(n *topology.Node) { n.Links = n.Links[:7] }), "link matrix has 7 rows, want 8"},
		{"matrix row too short", mutate(t, func(n *topology.Node) { n.Links[3] = n.Links[3][:5] }), "link matrix row 3 has 5 entries, want 8"},
		{"matrix too big", mutate(t, func(n *topology.Node) { n.Links = append(n.Links, n.Links[0]) }), "link matrix has 9 rows, want 8"},
		{"GPU index out of range", mutate(t, func(n *topology.Node) { n.GPUs[2].Index = 9 }), "GPU at position 2 has index 9"},
		{"GPU index negative", mutate(t, func(n *topology.Node) { n.GPUs[0].Index = -1 }), "GPU at position 0 has index -1"},
		{"GPU indexes swapped", mutate(t, func(n *topology.Node) { n.GPUs[1].Index, n.GPUs[2].Index = 2, 1 }), "GPU at position 1 has index 2"},
		{"duplicate UUID", mutate(t, func(n *topology.Node) { n.GPUs[5].UUID = n.GPUs[4].UUID }), `GPU 5 has UUID "GPU-dgx1-4", already used by GPU 4`},
		{"empty UUID", mutate(t, func(n *topology.Node) { n.GPUs[5].UUID = "" }), "GPU 5 has no UUID"},
		// A UUID that cannot name a device: the node was accepted and
		// scored, and every Binding naming its devices was refused.
		{"UUID with a space", `{"version":"v1","node":{"gpus":[{"index":0,"uuid":"GPU a","model":"m","memoryMiB":1,"numa":0,"healthy":true}],"links":[[{"class":0}]]}}`, `GPU 0: device ID "GPU a": contains a space`},
		{"UUID with a newline", mutate(t, func(n *topology.Node) { n.GPUs[3].UUID = "GPU-\n" }), "GPU 3: device ID"},
		{"UUID too long", mutate(t, func(n *topology.Node) { n.GPUs[3].UUID = "GPU-" + strings.Repeat("a", 300) }), "longer than 256 bytes"},
		{"unknown link class", mutate(t, func(n *topology.Node) { n.Links[0][5].Class = 42 }), "link 0-5 has unknown class 42"},
		{"negative lanes", mutate(t, func(n *topology.Node) { n.Links[0][1].NVLinks = -2 }), "link 0-1 has -2 NVLink lanes"},
		{"too many lanes", mutate(t, func(n *topology.Node) { n.Links[0][1].NVLinks = 1000 }), "link 0-1 has 1000 NVLink lanes"},
		{"NVLink without lanes", mutate(t, func(n *topology.Node) { n.Links[0][1].NVLinks, n.Links[1][0].NVLinks = 0, 0 }), "link 0-1 is NV with no lanes"},
		{"PCIe with lanes", mutate(t, func(n *topology.Node) { n.Links[0][5].NVLinks = 2 }), "link 0-5 is SYS but has 2 NVLink lanes"},
		{"asymmetric", mutate(t, func(n *topology.Node) { n.Links[6][7].NVLinks = 1 }), "link 7-6 (NV2) differs from link 6-7 (NV1)"},
		{"negative replicas", mutate(t, func(n *topology.Node) { n.GPUs[3].Replicas = -1 }), "GPU 3 has -1 replicas"},
		{"too many replicas", mutate(t, func(n *topology.Node) { n.GPUs[3].Replicas = 100000 }), "GPU 3 has 100000 replicas"},
		{"negative NVLink version", mutate(t, func(n *topology.Node) { n.GPUs[3].NVLinkVersion = -1 }), "GPU 3 has NVLink version -1"},
		{"bad NUMA node", mutate(t, func(n *topology.Node) { n.GPUs[3].NUMANode = -7 }), "GPU 3 has NUMA node -7"},
		{"negative generation", mutate(t, func(n *topology.Node) { n.Generation = -1 }), "generation -1 is negative"},
		{"MIG parent out of range", mutate(t, func(n *topology.Node) {
			n.MIG = []topology.MIGDevice{{UUID: "MIG-1", Parent: 8, Profile: "1g.5gb", Size: 1}}
		}), "MIG device 0 has parent GPU 8, want 0 to 7"},
		{"MIG parent negative", mutate(t, func(n *topology.Node) {
			n.MIG = []topology.MIGDevice{{UUID: "MIG-1", Parent: -1, Profile: "1g.5gb", Size: 1}}
		}), "MIG device 0 has parent GPU -1"},
		{"MIG on a non-MIG GPU", mutate(t, func(n *topology.Node) {
			n.MIG = []topology.MIGDevice{{UUID: "MIG-1", Parent: 2, Profile: "1g.5gb", Size: 1}}
		}), "MIG device 0 is on GPU 2, which is not MIG-enabled"},
		{"MIG slices out of range", mutate(t, func(n *topology.Node) {
			n.GPUs[2].MIGEnabled = true
			n.MIG = []topology.MIGDevice{{UUID: "MIG-1", Parent: 2, Profile: "1g.5gb", Start: 7, Size: 2}}
		}), "MIG device 0 has slices start 7 size 2"},
		{"MIG UUID reused", mutate(t, func(n *topology.Node) {
			n.GPUs[2].MIGEnabled = true
			n.MIG = []topology.MIGDevice{{UUID: "GPU-dgx1-2", Parent: 2, Profile: "7g.40gb", Size: 8}}
		}), `MIG device 0 has UUID "GPU-dgx1-2", already used by GPU 2`},
		{"too many GPUs", func() string {
			n := &topology.Node{}
			for i := range 65 {
				n.GPUs = append(n.GPUs, topology.GPU{Index: i, UUID: strings.Repeat("u", i+1)})
			}
			b, _ := json.Marshal(topologyEnvelope{Version: TopologyVersion, Node: n})
			return string(b)
		}(), "65 GPUs, more than 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := DecodeTopology(tc.in)
			require.Error(t, err)
			require.Nil(t, n)
			require.ErrorContains(t, err, tc.error)
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	_, err := EncodeTopology(nil)
	require.ErrorContains(t, err, "nil node")
	n := fixture.DGX1V100("dgx1")
	n.Links = n.Links[:3]
	_, err = EncodeTopology(n)
	require.ErrorContains(t, err, "link matrix has 3 rows, want 8")
	// Too big to fit an annotation: 64 GPUs with 4 KiB models.
	n = &topology.Node{}
	for i := range 64 {
		n.GPUs = append(n.GPUs, topology.GPU{Index: i, UUID: strings.Repeat("u", i+1), Model: strings.Repeat("m", 4096)})
	}
	n.Links = make([][]topology.Link, 64)
	for i := range n.Links {
		n.Links[i] = make([]topology.Link, 64)
	}
	_, err = EncodeTopology(n)
	require.ErrorContains(t, err, "more than the 262144 allowed")
}

// FuzzDecodeTopology feeds DecodeTopology arbitrary input: it must return a node or an error,
// never panic; a decoded node must encode, and decode again to the same node;
// and its shape must answer BestSet inside the usable GPUs.
func FuzzDecodeTopology(f *testing.F) {
	for _, n := range []*topology.Node{fixture.DGX1V100("dgx1"), fixture.PCIe("pcie4", "T4", 4), fixture.MixedStates("dgxa100")} {
		s, err := EncodeTopology(n)
		require.NoError(f, err)
		f.Add(s)
	}
	f.Add(`{"version":"v1","node":{"gpus":[],"links":[]}}`)
	f.Add(`{"version":"v2","node":{}}`)
	f.Add(`{"version":"v2","node":{"gpus":[],"links":[],"resources":[]}}`)
	f.Add(`{"version":"v2","node":{"gpus":[],"links":[],"resources":[{"name":"nvidia.com/gpu","kind":"replica","replicas":4,"policy":"spread"}]}}`)
	f.Add(migOverflow(f))
	f.Fuzz(func(t *testing.T, in string) {
		n, err := DecodeTopology(in)
		if err != nil {
			require.Nil(t, n)
			return
		}
		s, err := EncodeTopology(n)
		require.NoError(t, err)
		again, err := DecodeTopology(s)
		require.NoError(t, err)
		require.Equal(t, n, again)
		s2, err := EncodeTopology(again)
		require.NoError(t, err)
		require.Equal(t, s, s2)
		if len(n.GPUs) <= 16 {
			usable := n.Usable()
			for size := 1; size <= min(len(n.GPUs), 4); size++ {
				set, q, ok := n.Shape().BestSet(usable, size)
				require.Equal(t, size <= usable.Len(), ok)
				require.True(t, set.SubsetOf(usable))
				if ok {
					require.Equal(t, n.Shape().Quality(set), q)
				}
			}
		}
	})
}

func BenchmarkDecodeTopology(b *testing.B) {
	s, err := EncodeTopology(fixture.MixedStates("dgxa100"))
	require.NoError(b, err)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := DecodeTopology(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeTopology(b *testing.B) {
	n := fixture.MixedStates("dgxa100")
	for b.Loop() {
		if _, err := EncodeTopology(n); err != nil {
			b.Fatal(err)
		}
	}
}

// migOverflow is MixedStates's annotation with its first MIG device at slice
// start MaxInt64, size 1: Start+Size overflowed and passed validation.
func migOverflow(tb testing.TB) string {
	n := fixture.MixedStates("dgxa100")
	n.MIG[0].Size = 1
	s, err := EncodeTopology(n)
	require.NoError(tb, err)
	out := strings.Replace(s, `"start":0,"size":1`, `"start":9223372036854775807,"size":1`, 1)
	require.NotEqual(tb, s, out)
	return out
}

func TestDecodeRejectsMIGSliceOverflow(t *testing.T) {
	_, err := DecodeTopology(migOverflow(t))
	require.ErrorContains(t, err, "MIG device 0 has slices start 9223372036854775807 size 1")
}
