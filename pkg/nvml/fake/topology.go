package fake

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/nvml"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Topology discovers the named catalog machine through pkg/nvml, as the
// device plugin does, and returns its topology (what the plugin publishes
// in the gpupack.io/topology annotation).
func Topology(name string, opts ...Option) (*topology.Node, error) {
	m, err := New(name, opts...)
	if err != nil {
		return nil, err
	}
	lib := nvml.New(m.Interface())
	if err := lib.Init(); err != nil {
		return nil, fmt.Errorf("fake %s: %w", name, err)
	}
	defer func() { _ = lib.Shutdown() }()
	inv, err := lib.Discover()
	if err != nil {
		return nil, fmt.Errorf("fake %s: %w", name, err)
	}
	return inv.Topology(), nil
}
