package deviceid_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/deviceid"
)

func TestReplicaRoundTrip(t *testing.T) {
	for _, r := range []deviceid.Replica{{"GPU-1", 0}, {"GPU-1", 7}, {"MIG-a-b", 255}} {
		id := r.String()
		require.Equal(t, deviceid.ReplicaID(r.UUID, r.N), id)
		got, err := deviceid.ParseReplica(id)
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	require.Equal(t, "GPU-1::7", deviceid.ReplicaID("GPU-1", 7))
}

func TestSplit(t *testing.T) {
	tests := []struct {
		id      string
		uuid    string
		replica int
		bad     bool
	}{
		{"GPU-1", "GPU-1", -1, false},
		{"MIG-1", "MIG-1", -1, false},
		{"GPU-1::7", "GPU-1", 7, false},
		{"GPU-1::", "", 0, true},
		{"GPU-1::x", "", 0, true},
		{"::3", "", 0, true},
		{"GPU-1::-2", "", 0, true},
		{"GPU-1::+2", "GPU-1", 2, false}, // strconv.Atoi accepts a sign
		// The UUID is what stands before the FIRST separator: a second one
		// makes the number part malformed.
		{"GPU-1::2::3", "", 0, true},
	}
	for _, tt := range tests {
		u, r, err := deviceid.Split(tt.id)
		if tt.bad {
			require.Error(t, err, tt.id)
			continue
		}
		require.NoError(t, err, tt.id)
		require.Equal(t, tt.uuid, u, tt.id)
		require.Equal(t, tt.replica, r, tt.id)
	}
}

func TestParseReplicaNotReplica(t *testing.T) {
	_, err := deviceid.ParseReplica("GPU-1")
	require.ErrorIs(t, err, deviceid.ErrNotReplica)
}

func TestUUIDOf(t *testing.T) {
	u, ok := deviceid.UUIDOf("GPU-1::x")
	require.True(t, ok)
	require.Equal(t, "GPU-1", u)
	u, ok = deviceid.UUIDOf("GPU-1")
	require.False(t, ok)
	require.Equal(t, "GPU-1", u)
}

func FuzzParseReplica(f *testing.F) {
	for _, s := range []string{"GPU-1::0", "GPU-1", "::", "a::b::1", "x::-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		r, err := deviceid.ParseReplica(id)
		if err != nil {
			return
		}
		again, err := deviceid.ParseReplica(r.String())
		require.NoError(t, err)
		require.Equal(t, r, again)
	})
}

// TestValidate: IDs the kubelet and the annotations carry verbatim, and
// UUIDs whose every replica ID is such an ID.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		id         string
		idOK       bool // Validate
		uuidOK     bool // ValidateUUID
		wantSubstr string
	}{
		{"GPU-8f6d1c2e-0b1a-4c3d-9e8f-7a6b5c4d3e2f", true, true, ""},
		{"MIG-1::7", true, false, "replica separator"},
		{"", false, false, "empty"},
		{"GPU a", false, false, "contains a space"},
		{"GPU-\x7f", false, false, "control"},
		{"GPU-\xff", false, false, "invalid character"},
		{strings.Repeat("g", 244), true, true, ""},
		{strings.Repeat("g", 245), true, false, "longer than 244 bytes"}, // 245 + 2 + 10 > 256
		{strings.Repeat("g", 256), true, false, "longer than 244 bytes"},
		{strings.Repeat("g", 257), false, false, "longer than 256 bytes"},
	} {
		err := deviceid.Validate(tc.id)
		require.Equal(t, tc.idOK, err == nil, "Validate(%q): %v", tc.id, err)
		err = deviceid.ValidateUUID(tc.id)
		require.Equal(t, tc.uuidOK, err == nil, "ValidateUUID(%q): %v", tc.id, err)
		if tc.wantSubstr != "" {
			require.ErrorContains(t, err, tc.wantSubstr)
		}
	}
}

func TestPrefixAndQuote(t *testing.T) {
	long := strings.Repeat("a", 63) + "é" + "bc" // é is 2 bytes: 63 + 2 + 2 = 67
	tests := []struct {
		name, s string
		n       int
		prefix  string
		quoted  string
	}{
		{name: "short", s: "GPU-1", n: 8, prefix: "GPU-1", quoted: `"GPU-1"`},
		{name: "exactly n", s: "abcd", n: 4, prefix: "abcd", quoted: `"abcd"`},
		// Byte 64 is é's second byte: the cut goes back to 63.
		{name: "cut inside a rune", s: long, n: 64, prefix: strings.Repeat("a", 63), quoted: `"` + strings.Repeat("a", 63) + `"... (67 bytes)`},
		{name: "cut after the rune", s: long, n: 65, prefix: strings.Repeat("a", 63) + "é", quoted: `"` + strings.Repeat("a", 63) + `"... (67 bytes)`},
		{name: "n 0", s: "xyz", n: 0, prefix: "", quoted: `"xyz"`},
		{name: "n negative", s: "xyz", n: -1, prefix: "", quoted: `"xyz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deviceid.Prefix(tt.s, tt.n)
			require.Equal(t, tt.prefix, got)
			require.True(t, utf8.ValidString(got))
			require.Equal(t, tt.quoted, deviceid.Quote(tt.s)) // Quote cuts at MaxQuoted (64)
		})
	}
}
