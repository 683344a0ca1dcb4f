package sharing

import (
	"testing"

	"github.com/stretchr/testify/require"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
)

func TestWithheld(t *testing.T) {
	// 2 GPUs; GPU 0 has MIG devices MIG-0-0 and MIG-0-1 (used under mixed).
	inv := inventory(2, map[int][]string{0: {"3g.20gb", "3g.20gb"}})
	build := func(cfg string) []Resource {
		c, err := configv1.Parse([]byte(cfg))
		require.NoError(t, err)
		res, err := Build(inv, c)
		require.NoError(t, err)
		return res
	}
	hold := func(pod, res, id string) Holding {
		return Holding{Namespace: "default", Pod: pod, Container: "main", Resource: res, ID: id}
	}
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
			"another vendor's device, a MIG device that is gone", whole,
			[]Holding{hold("a", "example.com/nic", "GPU-0-not-ours"), hold("b", mig, "MIG-9-9")}, map[string]map[string]Holding{},
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
			require.Equal(t, tc.want, Withheld(tc.resources, inv, tc.held))
		})
	}
}

func TestHoldingString(t *testing.T) {
	require.Equal(t, "default/a container main holds nvidia.com/gpu GPU-0",
		Holding{Namespace: "default", Pod: "a", Container: "main", Resource: "nvidia.com/gpu", ID: "GPU-0"}.String())
	require.Equal(t, "a container this plugin allocated to holds nvidia.com/gpu GPU-0",
		Holding{Resource: "nvidia.com/gpu", ID: "GPU-0"}.String())
}
