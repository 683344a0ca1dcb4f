package fake_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

// discover returns the inventory of a fake machine.
func discover(t *testing.T, name string, opts ...fake.Option) *nvml.Inventory {
	t.Helper()
	m, err := fake.New(name, opts...)
	require.NoError(t, err)
	lib := m.Lib(t)
	inv, err := lib.Discover()
	require.NoError(t, err)
	return inv
}

func uuids(inv *nvml.Inventory) []string {
	var out []string
	for _, g := range inv.GPUs {
		out = append(out, g.UUID)
	}
	for _, m := range inv.MIG {
		out = append(out, m.UUID)
	}
	return out
}

// Two nodes of one machine type have disjoint GPU and MIG UUIDs, as real
// nodes do (issue 12 item 8); one host's UUIDs are the same every time.
func TestHostnameMakesUUIDsUnique(t *testing.T) {
	mig := fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb"}})
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			opts := func(host string) []fake.Option {
				o := []fake.Option{fake.WithHostname(host)}
				if name == "dgx-a100" {
					o = append(o, mig)
				}
				return o
			}
			a := uuids(discover(t, name, opts("node-a")...))
			b := uuids(discover(t, name, opts("node-b")...))
			again := uuids(discover(t, name, opts("node-a")...))
			require.Equal(t, a, again, "deterministic per host")
			seen := map[string]bool{}
			for _, id := range append(append([]string{}, a...), b...) {
				require.False(t, seen[id], "UUID %s on both nodes", id)
				seen[id] = true
			}
		})
	}
	// The nodes of one NVLink clique still share the fabric's cluster UUID.
	a := discover(t, "gb200-4gpu", fake.WithHostname("node-a"))
	b := discover(t, "gb200-4gpu", fake.WithHostname("node-b"))
	require.NotEmpty(t, a.GPUs[0].ClusterUUID)
	require.Equal(t, a.GPUs[0].ClusterUUID, b.GPUs[0].ClusterUUID)
	_, err := fake.New("dgx-a100", fake.WithHostname(""))
	require.Error(t, err)
}
