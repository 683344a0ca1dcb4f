package deviceplugin_test

import (
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/gpupack/gpupack/pkg/deviceplugin"
	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/sharing"
)

// A MIG layout change under a running pod (NVIDIA's mig-manager or
// nvidia-smi mig destroyed its MIG device, then the plugin discovered the
// node again) must not let the kubelet give the GPU the device was on
// while the kubelet still lists the pod with the old MIG UUID: the
// container keeps the GPU's device node. The next Manager, given the
// memory of the MIG devices the previous one served (Options.MIGParents,
// as cmd/device-plugin carries it), withholds that GPU whole until the
// pod is gone, and forgets the old MIG UUID then. Without the memory (the
// plugin restarted after the change), every MIG-capable GPU is withheld,
// with a Warning event naming the pod. Before, the GPU was served at once:
// "MIG disabled" counted 8 healthy GPUs, "re-created with new UUIDs" 3
// healthy MIG devices, while the pod held one of them.
func TestMIGLayoutChangeKeepsTheHeldGPUWithheld(t *testing.T) {
	const mixed = "version: v1\nflags: {migStrategy: mixed}"
	small := []string{"1g.5gb", "1g.5gb", "1g.5gb"}
	disable := func(m *fake.Machine) error {
		if err := m.ReconfigureMIG(0, nil); err != nil {
			return err
		}
		if ret, _ := m.Device(0).SetMigMode(gonvml.DEVICE_MIG_DISABLE); ret != gonvml.SUCCESS {
			return ret
		}
		return nil
	}
	tests := []struct {
		name   string
		change func(*fake.Machine) error
		// lost: the memory is not carried (the plugin restarted).
		lost bool
		// Healthy counts with the pod listed, then once it is gone.
		want, released map[string]int64
		// wantMemory is the next Manager's memory once the pod is gone:
		// the inventory's MIG devices only.
		wantMemory int
		wantEvent  bool
	}{
		{
			// GPU 0 whole again, withheld: 8 - 1 = 7; released: 8. The
			// kubelet keeps mig-1g.5gb with 0 for a grace period.
			name: "MIG disabled", change: disable,
			want:     map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 0},
			released: map[string]int64{"nvidia.com/gpu": 8, "nvidia.com/mig-1g.5gb": 0},
		},
		{
			// GPU 0's 3 new MIG devices (new UUIDs) withheld: 3 - 3 = 0;
			// GPUs 1-7 whole, 7. Released: 3.
			name: "re-created with new UUIDs", change: func(m *fake.Machine) error { return m.ReconfigureMIG(0, small) },
			want:     map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 0},
			released: map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 3}, wantMemory: 3,
		},
		{
			// Nothing remembers GPU 0: all 8 A100s are MIG-capable, 8 - 8
			// = 0; released: 8.
			name: "the memory lost", change: disable, lost: true,
			want:      map[string]int64{"nvidia.com/gpu": 0, "nvidia.com/mig-1g.5gb": 0},
			released:  map[string]int64{"nvidia.com/gpu": 8, "nvidia.com/mig-1g.5gb": 0},
			wantEvent: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newReloadNode(t, fake.WithMIG(map[int][]string{0: small}))
			prev, stop := n.run(mixed, nil)
			n.k.waitCounts(map[string]int64{"nvidia.com/gpu": 7, "nvidia.com/mig-1g.5gb": 3})
			held, _, err := n.k.allocate("running", "nvidia.com/mig-1g.5gb", 1, nil)
			require.NoError(t, err)
			require.NoError(t, tc.change(n.machine))
			stop()

			// What cmd/device-plugin carries to the Manager it builds
			// after a rediscovery.
			memory := prev.MIGParents()
			require.Equal(t, n.machine.UUID(0), memory[held[0]], "the memory names the held device's GPU")
			rec := events.NewFakeRecorder(1000)
			mgr, _ := n.run(mixed, func(o *deviceplugin.Options) {
				o.Held, o.Withheld, o.Events = prev.Held(), prev.Withheld(), deviceplugin.NewNodeEvents(rec, "node-1")
				if !tc.lost {
					o.MIGParents = memory
				}
			})
			n.k.waitCounts(tc.want)
			// Told after the read that found it, which may come after
			// the counts (the carried knowledge withholds at once).
			if tc.wantEvent {
				found := false
				require.Eventually(t, func() bool {
					found = found || gotEvent(rec, deviceplugin.ReasonHeldMIGDeviceGone, "default/running")
					return found
				}, 10*time.Second, 5*time.Millisecond)
			}
			if !tc.lost {
				// Carried on while the pod is listed: a reload keeps it.
				require.Equal(t, n.machine.UUID(0), mgr.MIGParents()[held[0]])
				// And offered to the in-use report: the held device is
				// gone, its GPU is named beside it (nodepublish).
				require.Equal(t, n.machine.UUID(0), mgr.GoneMIGParents()[held[0]])
			}

			// The pod ends: its GPU is served again, and the old MIG UUID
			// forgotten.
			n.k.Forget(types.UID("uid-running"))
			require.EventuallyWithT(t, func(c *assertCollect) {
				n.clock.Step(deviceplugin.DefaultResyncPeriod)
				healthy, _ := n.k.counts()
				requireEqualCollect(c, tc.released, healthy)
			}, 10*time.Second, 20*time.Millisecond)
			if !tc.wantEvent {
				require.False(t, gotEvent(rec, deviceplugin.ReasonHeldMIGDeviceGone, ""), "its GPU was known")
			}
			after := mgr.MIGParents()
			require.NotContains(t, after, held[0])
			require.Len(t, after, tc.wantMemory)
		})
	}
}

// gotEvent reports whether rec recorded an event of reason whose message
// contains s (it drains rec).
func gotEvent(rec *events.FakeRecorder, reason, s string) bool {
	found := false
	for {
		select {
		case e := <-rec.Events:
			if strings.Contains(e, " "+reason+" ") && strings.Contains(e, s) {
				found = true
			}
		default:
			return found
		}
	}
}

// A holding of a MIG device gone whose GPU is not known is a Warning
// naming the holder and the GPUs withheld for it.
func TestNodeEventsMIGParentUnknown(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	h := sharing.Holding{Namespace: "default", Pod: "train", Container: "main", Resource: "nvidia.com/mig-1g.5gb", ID: "MIG-1"}
	deviceplugin.NewNodeEvents(rec, "node-1").MIGParentUnknown(h.String(), []string{"GPU-0", "GPU-1"})
	require.Equal(t, []string{"Warning HeldMIGDeviceGone default/train container main holds nvidia.com/mig-1g.5gb MIG-1, " +
		"a MIG device no longer on the node whose GPU is not known (the plugin restarted after a MIG layout change): " +
		"withholding every GPU it may have been on (2: [GPU-0 GPU-1]) until the kubelet no longer lists it; delete the pod to release them"}, drain(rec))
}
