package protocol_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/protocol"
)

func TestInUseRoundTrip(t *testing.T) {
	s, err := protocol.EncodeInUse([]protocol.PodDevices{
		{PodRef: protocol.PodRef{Namespace: "b", Name: "p2", UID: "u2"}, Devices: []string{"GPU-2::1", "GPU-2::0"}},
		{PodRef: protocol.PodRef{Namespace: "a", Name: "p1", UID: "u1"}, Devices: []string{"GPU-1"}, Scheduled: []string{"GPU-3", "GPU-0"}},
	})
	require.NoError(t, err)
	// Sorted by namespace/name/uid, devices sorted; "scheduled" only where
	// a pod did not get its scheduled set.
	require.JSONEq(t, `{"version":"v1","pods":[
		{"namespace":"a","name":"p1","uid":"u1","devices":["GPU-1"],"scheduled":["GPU-0","GPU-3"]},
		{"namespace":"b","name":"p2","uid":"u2","devices":["GPU-2::0","GPU-2::1"]}]}`, s)
	u, err := protocol.DecodeInUse(s)
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"GPU-1": true, "GPU-2::0": true, "GPU-2::1": true}, u.IDs())
}

// ValidateInUseDevice refuses exactly the device IDs the in-use codecs
// refuse (the device plugin leaves those out of its report, so one bad ID
// cannot stop it), in Devices and in Scheduled alike.
func TestValidateInUseDeviceIsTheCodecsRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   string
		ok   bool
	}{
		{"GPU UUID", "GPU-a", true},
		{"replica", "GPU-a::3", true},
		{"MIG UUID", "MIG-a0", true},
		{"another node's GPU", "GPU-z", true},
		{"a space", "gpu 1", false},
		{"empty", "", false},
		{"too long", "GPU-" + strings.Repeat("a", 256), false},
		{"a newline", "GPU-a\n", false},
		{"invalid UTF-8", "GPU-\xff", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := protocol.ValidateInUseDevice(tc.id)
			require.Equal(t, tc.ok, err == nil, "ValidateInUseDevice: %v", err)
			for _, pd := range []protocol.PodDevices{{Devices: []string{"GPU-b", tc.id}}, {Devices: []string{"GPU-b"}, Scheduled: []string{tc.id}}} {
				s, err := protocol.EncodeInUse([]protocol.PodDevices{pd})
				require.Equal(t, tc.ok, err == nil, "EncodeInUse: %v", err)
				if tc.ok {
					_, err = protocol.DecodeInUse(s)
					require.NoError(t, err)
				}
			}
			// The decoder applies the same rule on its own.
			devices, err := json.Marshal([]string{tc.id})
			require.NoError(t, err)
			_, err = protocol.DecodeInUse(`{"version":"v1","pods":[{"namespace":"a","name":"p","uid":"u","devices":` + string(devices) + `}]}`)
			require.Equal(t, tc.ok, err == nil, "DecodeInUse: %v", err)
		})
	}
}

func TestDevicesRoundTrip(t *testing.T) {
	s, err := protocol.EncodeDevices(protocol.Devices{
		Resources:  map[string][]string{"nvidia.com/gpu": {"GPU-a", "GPU-b"}},
		Containers: map[string]map[string][]string{"main": {"nvidia.com/gpu": {"GPU-a", "GPU-b"}}},
	})
	require.NoError(t, err)
	d, err := protocol.DecodeDevices(s)
	require.NoError(t, err)
	require.Equal(t, "v1", d.Version)
	require.Equal(t, []string{"GPU-a", "GPU-b"}, d.Resources["nvidia.com/gpu"])
}

func TestDecodeBadInput(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
		devices           bool
	}{
		{name: "empty", in: "", wantErr: "malformed JSON"},
		{name: "not JSON", in: "{", wantErr: "malformed JSON"},
		{name: "no version", in: `{"pods":[]}`, wantErr: "unsupported payload version"},
		{name: "future version", in: `{"version":"v2","pods":[]}`, wantErr: `unsupported payload version "v2"`},
		{name: "unknown field", in: `{"version":"v1","pods":[],"extra":1}`, wantErr: "unknown field"},
		{name: "wrong type", in: `{"version":"v1","pods":{}}`, wantErr: "cannot unmarshal"},
		{name: "empty device ID", in: `{"version":"v1","pods":[{"namespace":"a","name":"b","uid":"c","devices":[""]}]}`, wantErr: "empty"},
		{name: "empty scheduled ID", in: `{"version":"v1","pods":[{"namespace":"a","name":"b","uid":"c","devices":["x"],"scheduled":[""]}]}`, wantErr: "empty"},
		{name: "control char", in: `{"version":"v1","pods":[{"devices":["GPU\u0001"]}]}`, wantErr: "control"},
		{name: "trailing", in: `{"version":"v1","pods":[]} {}`, wantErr: "malformed JSON"},
		{name: "devices twice", devices: true, in: `{"version":"v1","resources":{"nvidia.com/gpu":["a","a"]}}`, wantErr: "listed twice"},
		{name: "devices empty resource", devices: true, in: `{"version":"v1","resources":{"":["a"]}}`, wantErr: "empty resource"},
		{name: "devices version", devices: true, in: `{"version":"1","resources":{}}`, wantErr: "unsupported payload version"},
		// Keys match as written, once each (encoding/json took the last of
		// two, and any case): a hand-edited or merged value is refused.
		{name: "devices resource map twice", devices: true, in: `{"version":"v1","resources":{"nvidia.com/gpu":["a"]},"resources":{"nvidia.com/gpu":["b"]}}`, wantErr: `duplicate field "resources"`},
		{name: "devices field in other case", devices: true, in: `{"version":"v1","Resources":{"nvidia.com/gpu":["a"]}}`, wantErr: `unknown field "Resources"`},
		{name: "in-use pod field twice", in: `{"version":"v1","pods":[{"namespace":"a","name":"b","uid":"c","uid":"d","devices":["x"]}]}`, wantErr: `duplicate field "pods[0].uid"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.devices {
				_, err = protocol.DecodeDevices(tt.in)
			} else {
				_, err = protocol.DecodeInUse(tt.in)
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func FuzzDecodeInUse(f *testing.F) {
	f.Add(`{"version":"v1","pods":[{"namespace":"a","name":"p","uid":"u","devices":["GPU-1","GPU-2::3"]}]}`)
	f.Add(`{"version":"v2"}`)
	f.Add(`{"version":"v1","pods":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		u, err := protocol.DecodeInUse(s)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same IDs.
		again, err := protocol.EncodeInUse(u.Pods)
		require.NoError(t, err)
		u2, err := protocol.DecodeInUse(again)
		require.NoError(t, err)
		require.Equal(t, u.IDs(), u2.IDs())
	})
}

func FuzzDecodeDevices(f *testing.F) {
	f.Add(`{"version":"v1","resources":{"nvidia.com/gpu":["GPU-1"]},"containers":{"c":{"nvidia.com/gpu":["GPU-1"]}}}`)
	f.Add(`{"version":"v1","resources":{"nvidia.com/gpu":["a","a"]}}`)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := protocol.DecodeDevices(s)
		if err != nil {
			return
		}
		again, err := protocol.EncodeDevices(*d)
		require.NoError(t, err)
		_, err = protocol.DecodeDevices(again)
		require.NoError(t, err)
	})
}

// Every encoder keeps to MaxPayload: 400 pods of 4 device IDs of 200
// bytes are 400 x 4 x 200 = 320,000 bytes of IDs, over the 262,144 cap;
// 100 of them (80,000) fit.
func TestEncodersKeepToMaxPayload(t *testing.T) {
	id := func(i int) string { return fmt.Sprintf("GPU-%06d-%s", i, strings.Repeat("x", 189)) } // 200 bytes
	var pods []protocol.PodDevices
	for i := range 400 {
		pods = append(pods, protocol.PodDevices{PodRef: protocol.PodRef{Namespace: "ns", Name: fmt.Sprintf("p%d", i), UID: fmt.Sprintf("u%d", i)},
			Devices: []string{id(4 * i), id(4*i + 1), id(4*i + 2), id(4*i + 3)}})
	}
	_, err := protocol.EncodeInUse(pods)
	require.ErrorContains(t, err, "more than the 262144 allowed")
	_, err = protocol.EncodeInUse(pods[:100])
	require.NoError(t, err)
	ids := make([]string, 1600)
	for i := range ids {
		ids[i] = id(i)
	}
	_, err = protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids}})
	require.ErrorContains(t, err, "more than the 262144 allowed")
	_, err = protocol.EncodeDevices(protocol.Devices{Resources: map[string][]string{"nvidia.com/gpu": ids[:400]}})
	require.NoError(t, err)
}
