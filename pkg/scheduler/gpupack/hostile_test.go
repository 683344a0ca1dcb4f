package gpupack

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/apis/core/validation"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
)

// A node annotation of about 200 kB (under the 256 KiB cap) whose bad
// part the decoder quotes: Filter's reason, which kube-scheduler copies
// into the pod's PodScheduled condition once per distinct reason, and the
// Node event must stay short (the apiserver refuses an event whose note
// is over 1 KiB, so the old 200 kB note was never recorded). Old: reason
// and note as long as the annotation.
func TestHostileNodeAnnotationsGiveShortReasons(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	good := fixture.DGX1V100("g")
	good.Resources = []topology.Resource{{Name: "nvidia.com/gpu", Kind: topology.KindGPU}}
	goodTopo := gpuNode(t, "g", good).Annotations[protocol.TopologyAnnotation]
	tests := []struct {
		name         string
		topo, inUse  string
		want, reason string
	}{
		{name: "topology version", topo: `{"version":"` + big + `"}`, want: "unsupported version", reason: "GPUTopologyUnreadable"},
		{name: "topology unknown field", topo: `{"version":"v2","node":{"` + big + `":1}}`, want: "unknown field", reason: "GPUTopologyUnreadable"},
		{name: "topology resource kind", topo: strings.Replace(goodTopo, `"kind":"gpu"`, `"kind":"`+big+`"`, 1), want: "unknown kind", reason: "GPUTopologyUnreadable"},
		{name: "in-use version", topo: goodTopo, inUse: `{"version":"` + big + `"}`, want: "unsupported payload version", reason: "GPUInUseUnreadable"},
		{name: "in-use device ID", topo: goodTopo, inUse: `{"version":"v1","pods":[{"namespace":"a","name":"b","uid":"c","devices":["` + big + `"]}]}`, want: "longer than 256 bytes", reason: "GPUInUseUnreadable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, tc.topo+tc.inUse, big, "the case must carry the long value")
			n := fixture.MakeNode().Name("bad").Annotations(protocol.TopologyAnnotation, tc.topo)
			if tc.inUse != "" {
				n.Annotations(protocol.InUseAnnotation, tc.inUse)
			}
			rec := events.NewFakeRecorder(10)
			h := newHarnessWith(t, harnessOptions{options: []frameworkruntime.Option{frameworkruntime.WithEventRecorder(rec)}}, nil, []*v1.Node{n.Obj()})
			var note string
			select {
			case note = <-rec.Events:
			case <-time.After(5 * time.Second):
				t.Fatal("no Node event for the unreadable annotation")
			}
			require.Contains(t, note, tc.reason)
			require.Contains(t, note, tc.want)
			require.LessOrEqual(t, len(note), len("Warning "+tc.reason+" ")+validation.NoteLengthLimit)

			_, st := h.filterOn(gpuPod("p", "nvidia.com/gpu", 1), "bad")
			require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
			require.Contains(t, st.Message(), tc.want)
			// The decoder's cap (512) and the plugin's words around it.
			require.LessOrEqual(t, len(st.Message()), protocol.MaxErrorBytes+200, "reason of %d bytes", len(st.Message()))
		})
	}
}

// warn keeps a Node event's note within what the apiserver stores, for
// any error: "GPUPack: " and 2500 two-byte runes, 5009 bytes -> 1023 (1020
// falls inside a rune: 1019 bytes and " ...").
func TestWarnCutsTheNote(t *testing.T) {
	rec := events.NewFakeRecorder(1)
	h := newHarnessWith(t, harnessOptions{options: []frameworkruntime.Option{frameworkruntime.WithEventRecorder(rec)}}, nil, nil)
	h.pl.warn(fixture.MakeNode().Name("n").Obj(), "GPUTopologyUnreadable", errors.New(strings.Repeat("é", 2500)))
	note := strings.TrimPrefix(<-rec.Events, "Warning GPUTopologyUnreadable ")
	require.Len(t, note, validation.NoteLengthLimit-1)
	require.True(t, strings.HasSuffix(note, "é ..."))
	require.True(t, utf8.ValidString(note))
}
