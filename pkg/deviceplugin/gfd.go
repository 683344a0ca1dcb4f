package deviceplugin

import (
	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
	"github.com/gpupack/gpupack/pkg/gfd"
)

// GFD is what GPU Feature Discovery's labels derive from: the inventory,
// the host files under Options.HostRoot (read once) and the config's MIG
// strategy, sharing and flags.gfd (noTimestamp, machineTypeFile).
func (m *Manager) GFD() *gfd.Node {
	m.gfdOnce.Do(func() {
		c := m.opts.Config
		var machineTypeFile string
		n := &gfd.Node{}
		if g := c.Flags.GFD; g != nil {
			machineTypeFile = deref(g.MachineTypeFile)
			n.NoTimestamp = deref(g.NoTimestamp)
		}
		host, errs := m.inv.GFDNode(m.opts.HostRoot, machineTypeFile)
		host.Unread = errs
		host.NoTimestamp = n.NoTimestamp
		host.MIGStrategy = deref(c.Flags.MigStrategy)
		if host.MIGStrategy == "" {
			host.MIGStrategy = configv1.MIGStrategyNone
		}
		host.Sharing = gfd.SharingOf(c)
		m.gfd = host
	})
	return m.gfd
}
