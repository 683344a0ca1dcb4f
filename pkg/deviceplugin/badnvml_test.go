package deviceplugin_test

import (
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
)

// TestBadUUIDsFromNVML: NVML answering a UUID that cannot be a
// kubelet device ID (a space, a newline, the replica separator, too long,
// or an empty MIG UUID) must never reach the kubelet: New refuses with a
// clear error, or every advertised ID passes deviceid.Validate and the
// node's topology can still be published.
func TestBadUUIDsFromNVML(t *testing.T) {
	setGPUUUID := func(uuid string) func(m *fake.Machine) {
		return func(m *fake.Machine) {
			m.Device(1).GetUUIDFunc = func() (string, gonvml.Return) { return uuid, gonvml.SUCCESS }
		}
	}
	setMIGUUID := func(uuid string) func(m *fake.Machine) {
		return func(m *fake.Machine) {
			d := m.Device(0)
			get := d.GetMigDeviceHandleByIndexFunc
			d.GetMigDeviceHandleByIndexFunc = func(k int) (gonvml.Device, gonvml.Return) {
				h, ret := get(k)
				if md, ok := h.(*mock.Device); ok && k == 0 {
					md.GetUUIDFunc = func() (string, gonvml.Return) { return uuid, gonvml.SUCCESS }
				}
				return h, ret
			}
		}
	}
	const mixed = "version: v1\nflags: {migStrategy: mixed}"
	const shared = "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}"
	for _, tc := range []struct {
		name    string
		config  string
		breakIt func(m *fake.Machine)
	}{
		{"GPU UUID with a space", "", setGPUUUID("GPU-bad uuid")},
		{"GPU UUID with a newline", "", setGPUUUID("GPU-bad\nuuid")},
		{"GPU UUID with the replica separator, time-shared", shared, setGPUUUID("GPU-a::1")},
		{"GPU UUID of 300 bytes", "", setGPUUUID("GPU-" + strings.Repeat("a", 296))},
		{"empty MIG UUID", mixed, setMIGUUID("")},
		{"MIG UUID with a space", mixed, setMIGUUID("MIG-bad uuid")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []fake.Option
			if tc.config == mixed {
				opts = append(opts, fake.WithMIG(map[int][]string{0: {"1g.5gb", "1g.5gb"}}))
			}
			m, err := fake.New(fake.DGXA100, opts...)
			require.NoError(t, err)
			tc.breakIt(m)
			mgr, err := buildManager(t, m, tc.config)
			if err != nil {
				t.Logf("refused with: %v", err)
				return
			}
			for _, p := range mgr.Plugins() {
				for _, d := range p.Devices() {
					require.NoError(t, deviceid.Validate(d.ID), "resource %s advertises an invalid device ID", p.Name())
					if uuid, isReplica := deviceid.UUIDOf(d.ID); isReplica {
						require.NoError(t, deviceid.ValidateUUID(uuid), "resource %s: replica of an invalid UUID", p.Name())
					}
				}
			}
			_, err = protocol.EncodeTopology(mgr.Node())
			require.NoError(t, err, "the node's topology can be published")
		})
	}
}
