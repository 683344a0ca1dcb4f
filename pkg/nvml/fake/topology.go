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
	return m.Topology()
}

// Topology discovers m as it is now (after LinkDown, a MIG layout or any
// other change) through pkg/nvml, as the device plugin does, and returns
// its topology. Errors, a failed shutdown of the library included, name
// the machine.
func (m *Machine) Topology() (_ *topology.Node, err error) {
	lib := nvml.New(m.Interface())
	if err := lib.Init(); err != nil {
		return nil, fmt.Errorf("fake %s: %w", m.Name(), err)
	}
	defer func() {
		if serr := lib.Shutdown(); serr != nil && err == nil {
			err = fmt.Errorf("fake %s: shutdown: %w", m.Name(), serr)
		}
	}()
	inv, err := lib.Discover()
	if err != nil {
		return nil, fmt.Errorf("fake %s: %w", m.Name(), err)
	}
	return inv.Topology(), nil
}
