package deviceplugin

import (
	"slices"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// ListAndWatch sends the resource's devices, then one full update per health
// change that touches them: every replica and MIG device of a GPU changes in
// the same update. A change of the devices withheld for holders under other
// names is one too.
func (p *Plugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	ctx := s.Context()
	logger := klog.FromContext(ctx).WithValues("resource", p.resource.Name)
	defer p.streamStarted(p.streamGeneration(ctx))()
	// Only a kubelet that registered us opens the stream, also when its
	// answer to the registration was lost.
	p.handoff.pluginRegistered()
	var last []*pluginapi.Device
	for {
		changed, heldChanged := p.health.Changed(), p.held.Changed()
		devs := p.Devices()
		if !sameDevices(devs, last) {
			if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
				logger.Error(err, "Sending devices to the kubelet failed")
				return err
			}
			logger.V(2).Info("Sent devices to the kubelet", "devices", len(devs), "unhealthy", countUnhealthy(devs))
			last = devs
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-heldChanged:
		}
	}
}

func sameDevices(a, b []*pluginapi.Device) bool {
	return slices.EqualFunc(a, b, func(x, y *pluginapi.Device) bool { return x.ID == y.ID && x.Health == y.Health })
}

func countUnhealthy(devs []*pluginapi.Device) int {
	n := 0
	for _, d := range devs {
		if d.Health != pluginapi.Healthy {
			n++
		}
	}
	return n
}
