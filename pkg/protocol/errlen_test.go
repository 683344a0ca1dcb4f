package protocol_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// A decoder's error goes into a Node event, the pod's PodScheduled
// condition (Filter's reason, once per node) and the logs: it is at most
// protocol.MaxErrorBytes long whatever the annotation holds. Each input
// below is about 200 kB, under the 256 KiB payload cap, with the bad part
// (a version, a field name, an ID, a kind) quoted or repeated by the
// error; before the cap each error was as long as its input (160-205 kB),
// over the 1 KiB an event's note may have, so the apiserver refused the
// GPUTopologyUnreadable event.
func TestDecodeErrorsAreShort(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	// 3000 MIG devices on a GPU without MIG mode: three problems each
	// (not MIG-enabled, slices 0+9 over 8, and from the second on a
	// duplicate UUID), 3000 x ~50 bytes joined.
	var mig []string
	for range 3000 {
		mig = append(mig, `{"uuid":"MIG-a","parent":0,"profile":"1g.5gb","start":0,"size":9,"healthy":true}`)
	}
	// 64 GPUs of one 244-byte UUID (the longest a UUID may be): 63
	// duplicates, each quoting it.
	uuid := strings.Repeat("u", 244)
	var same []string
	for i := range 64 {
		same = append(same, fmt.Sprintf(`{"index":%d,"uuid":%q,"model":"m","memoryMiB":1,"numa":0,"healthy":true}`, i, uuid))
	}
	gpu := `{"index":0,"uuid":"GPU-0","model":"m","memoryMiB":1,"numa":0,"healthy":true}`
	node := func(gpus, extra string) string {
		return `{"version":"v2","node":{"gpus":[` + gpus + `],"links":[[{"class":0}]],"generation":1` + extra + `}}`
	}
	pod := func(devices string) string {
		return `{"version":"v1","pods":[{"namespace":"a","name":"b","uid":"c","devices":[` + devices + `]}]}`
	}
	tests := []struct {
		name, in, want string
		decode         func(string) error
	}{
		{name: "topology version", decode: decodeTopology, in: `{"version":"` + big + `"}`, want: "unsupported version"},
		{name: "topology unknown field", decode: decodeTopology, in: `{"version":"v2","node":{"` + big + `":1}}`, want: "unknown field"},
		{name: "topology GPU UUID", decode: decodeTopology, in: node(`{"index":0,"uuid":"`+big+`","model":"m","memoryMiB":1,"numa":0,"healthy":true}`, ""), want: "GPU 0"},
		{name: "topology MIG devices", decode: decodeTopology, in: node(gpu, `,"mig":[`+strings.Join(mig, ",")+`]`), want: "MIG device 1 has UUID"},
		{name: "topology GPUs of one UUID", decode: decodeTopology, in: `{"version":"v1","node":{"gpus":[` + strings.Join(same, ",") + `],"links":[],"generation":1}}`, want: "already used by GPU 0"},
		{name: "topology resource kind", decode: decodeTopology, in: node(gpu, `,"resources":[{"name":"nvidia.com/gpu","kind":"`+big+`"}]`), want: "unknown kind"},
		{name: "topology resource name", decode: decodeTopology, in: node(gpu, `,"resources":[{"name":"`+big+`","kind":"gpu"}]`), want: "not an extended resource name"},
		{name: "topology resource profile", decode: decodeTopology, in: node(gpu, `,"resources":[{"name":"nvidia.com/mig-x","kind":"mig","profile":"`+big+`"}]`), want: "MIG profile"},
		{name: "in-use version", decode: decodeInUse, in: `{"version":"` + big + `"}`, want: "unsupported payload version"},
		{name: "in-use unknown field", decode: decodeInUse, in: `{"version":"v1","` + big + `":1}`, want: "unknown field"},
		{name: "in-use device ID", decode: decodeInUse, in: pod(`"` + big + `"`), want: "longer than 256 bytes"},
		{name: "devices version", decode: decodeDevices, in: `{"version":"` + big + `"}`, want: "unsupported payload version"},
		{name: "devices resource with an ID twice", decode: decodeDevices, in: `{"version":"v1","resources":{"` + big + `":["a","a"]}}`, want: "listed twice"},
		{name: "devices container", decode: decodeDevices, in: `{"version":"v1","resources":{},"containers":{"` + big + `":{"r":["a","a"]}}}`, want: "listed twice"},
		{name: "devices multi-byte runes", decode: decodeDevices, in: `{"version":"` + strings.Repeat("é", 100<<10) + `"}`, want: "unsupported payload version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Less(t, len(tt.in), protocol.MaxPayload, "the input must pass the size check to reach the part under test")
			err := tt.decode(tt.in)
			require.ErrorContains(t, err, tt.want)
			msg := err.Error()
			require.LessOrEqual(t, len(msg), protocol.MaxErrorBytes, "error of %d bytes", len(msg))
			require.True(t, utf8.ValidString(msg), "cut inside a rune")
			require.Contains(t, msg, "bytes)", "a cut value or error says how long it was")
		})
	}
	// A short error is left whole, and the cut one still wraps its cause.
	err := decodeInUse(`{"version":"v2"}`)
	require.Equal(t, `gpupack.io/in-use: unsupported payload version "v2" (this build reads "v1")`, err.Error())
	require.ErrorIs(t, decodeInUse(`{"version":"`+big+`"}`), protocol.ErrVersion)
}

func decodeTopology(s string) error { _, err := protocol.DecodeTopology(s); return err }
func decodeInUse(s string) error    { _, err := protocol.DecodeInUse(s); return err }
func decodeDevices(s string) error  { _, err := protocol.DecodeDevices(s); return err }
