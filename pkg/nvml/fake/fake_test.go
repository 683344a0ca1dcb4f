package fake_test

import (
	"slices"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
)

func TestNames(t *testing.T) {
	require.Equal(t, []string{
		"a100-pcie-8gpu-nvbridge", "dgx-1-v100", "dgx-a100", "dgx-h100",
		"gb200-4gpu", "nvswitch-16gpu", "pcie-4gpu-2socket",
	}, fake.Names())
	require.True(t, slices.IsSorted(fake.Names()))
}

// The functions the go-nvml mocks leave to panic answer on every machine,
// for every GPU and every link index.
func TestNoPanics(t *testing.T) {
	for _, name := range fake.Names() {
		t.Run(name, func(t *testing.T) {
			m, err := fake.New(name)
			require.NoError(t, err)
			require.NotPanics(t, func() {
				for i := range m.NumGPUs() {
					d := m.Device(i)
					for j := range m.NumGPUs() {
						d.GetTopologyCommonAncestor(m.Device(j))
					}
					for link := -1; link <= gonvml.NVLINK_MAX_LINKS; link++ {
						d.GetNvLinkState(link)
						d.GetNvLinkRemotePciInfo(link)
						d.GetNvLinkRemoteDeviceType(link)
						d.GetNvLinkVersion(link)
					}
					d.GetNumaNodeId()
					d.GetMemoryAffinity(1024, gonvml.AFFINITY_SCOPE_NODE)
					d.GetGpuFabricInfo()
					d.GetMaxMigDeviceCount()
					d.GetMigDeviceHandleByIndex(0)
					d.GetSupportedEventTypes()
					d.GetRetiredPagesPendingStatus()
					d.GetRemappedRows()
					d.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC)
				}
				m.InjectXID(-1, 1)
				m.InjectECC(99, true)
				m.LoseGPU(99)
				m.RestoreGPU(-3)
				m.ResetGPU(-1)
			})
			require.Nil(t, m.Device(-1))
			require.Empty(t, m.UUID(m.NumGPUs()))
		})
	}
}

func TestEventSet(t *testing.T) {
	m, err := fake.New(fake.DGXA100)
	require.NoError(t, err)
	iface := m.Interface()
	set, ret := iface.EventSetCreate()
	require.Equal(t, gonvml.SUCCESS, ret)
	_, ret = set.Wait(1)
	require.Equal(t, gonvml.ERROR_TIMEOUT, ret, "nothing queued")

	m.InjectXID(2, 48)
	_, ret = set.Wait(1)
	require.Equal(t, gonvml.ERROR_TIMEOUT, ret, "GPU 2 is not registered")

	require.Equal(t, gonvml.SUCCESS, m.Device(2).RegisterEvents(gonvml.EventTypeXidCriticalError, set))
	m.InjectECC(2, true) // not registered for ECC
	m.InjectXID(2, 48)
	ev, ret := set.Wait(1000)
	require.Equal(t, gonvml.SUCCESS, ret)
	require.Equal(t, uint64(gonvml.EventTypeXidCriticalError), ev.EventType)
	require.Equal(t, uint64(48), ev.EventData)
	id, _ := ev.Device.GetUUID()
	require.Equal(t, m.UUID(2), id)

	require.Equal(t, gonvml.SUCCESS, set.Free())
	_, ret = set.Wait(1)
	require.Equal(t, gonvml.ERROR_INVALID_ARGUMENT, ret)
	require.Equal(t, gonvml.ERROR_INVALID_ARGUMENT, m.Device(2).RegisterEvents(gonvml.EventTypeXidCriticalError, set))
}

func TestLostGPUHandles(t *testing.T) {
	m, err := fake.New(fake.DGXA100, fake.WithMIG(map[int][]string{3: {"7g.40gb"}}))
	require.NoError(t, err)
	iface := m.Interface()
	held, ret := iface.DeviceGetHandleByIndex(3)
	require.Equal(t, gonvml.SUCCESS, ret)
	mig, ret := held.GetMigDeviceHandleByIndex(0)
	require.Equal(t, gonvml.SUCCESS, ret)
	migUUID, _ := mig.GetUUID()
	got, ret := iface.DeviceGetHandleByUUID(migUUID)
	require.Equal(t, gonvml.SUCCESS, ret, "MIG devices are found by UUID")
	require.Equal(t, mig, got)

	m.LoseGPU(3)
	_, ret = iface.DeviceGetHandleByIndex(3)
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)
	_, ret = iface.DeviceGetHandleByUUID(m.UUID(3))
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)
	_, ret = iface.DeviceGetHandleByUUID(migUUID)
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)
	_, ret = iface.DeviceGetHandleByPciBusId("00000000:4E:00.0")
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)
	_, ret = held.GetMemoryInfo()
	require.Equal(t, gonvml.ERROR_GPU_IS_LOST, ret)
	_, ret = iface.DeviceGetHandleByIndex(2)
	require.Equal(t, gonvml.SUCCESS, ret, "other GPUs still answer")

	m.RestoreGPU(3)
	_, ret = held.GetMemoryInfo()
	require.Equal(t, gonvml.SUCCESS, ret)
}
