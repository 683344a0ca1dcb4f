package nvml

import "testing"

// Any configuration space parses without a panic.
func FuzzVGPUCapability(f *testing.F) {
	f.Add(make([]byte, 256))
	c := make([]byte, 256)
	c[0x06], c[0x34] = 0x10, 0x40
	copy(c[0x40:], []byte{0x09, 0x00, 40, 'V', 'F', 0x00, 22, '4', '6', '0'})
	f.Add(c)
	f.Fuzz(func(t *testing.T, config []byte) {
		if capability := vendorCapability(config); isVGPU(capability) {
			_, _ = vgpuDriver(capability)
		}
	})
}
