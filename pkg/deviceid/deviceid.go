// Package deviceid is the one place that builds and parses kubelet device
// IDs of gpupack's resources. A whole GPU's ID is its UUID ("GPU-..."), a
// MIG device's its MIG UUID ("MIG-..."), and replica n of a time-shared
// device "<UUID>::<n>" (n from 0). The device plugin advertises them, the
// scheduler writes them into gpupack.io/devices, the kubelet reports them
// back in PodResources and the in-use report carries them: every package
// that reads or writes one goes through here. Reported (reported.go) is
// the one record of odd IDs read from the kubelet that were logged.
package deviceid

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Separator separates a device's UUID from the replica number in the ID of
// a time-shared replica.
const Separator = "::"

// ErrNotReplica is wrapped by ParseReplica's error for an ID without a
// Separator.
var ErrNotReplica = errors.New("not a replica ID <UUID>::<n>")

// Replica is replica N (from 0) of the device with UUID UUID.
type Replica struct {
	UUID string
	N    int
}

// MaxLen is the longest device ID gpupack reads or writes, in bytes.
const MaxLen = 256

// maxReplicaSuffix is the longest replica suffix of an ID: the Separator
// and a replica number of up to 10 digits.
const maxReplicaSuffix = len(Separator) + 10

// Validate checks that id is a plausible kubelet device ID: non-empty, at
// most MaxLen bytes, valid UTF-8 with no space or control character (the
// kubelet and the annotations carry IDs verbatim; a blank would split
// them in logs and lists).
func Validate(id string) error {
	if id == "" || len(id) > MaxLen {
		return fmt.Errorf("device ID %s: empty or longer than %d bytes", Quote(id), MaxLen)
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return fmt.Errorf("device ID %s: contains a space, control or invalid character", Quote(id))
		}
	}
	return nil
}

// ValidateUUID checks that uuid can name a GPU or MIG device: a valid ID
// (Validate) short enough for every replica ID built on it (at most
// MaxLen - 12 bytes), and without the Separator, which would make its
// replica IDs ambiguous.
func ValidateUUID(uuid string) error {
	if err := Validate(uuid); err != nil {
		return err
	}
	if len(uuid) > MaxLen-maxReplicaSuffix {
		return fmt.Errorf("UUID %s: longer than %d bytes (its replica IDs would exceed %d)", Quote(uuid), MaxLen-maxReplicaSuffix, MaxLen)
	}
	if strings.Contains(uuid, Separator) {
		return fmt.Errorf("UUID %s: contains the replica separator %q", Quote(uuid), Separator)
	}
	return nil
}

// ReplicaID is Replica{uuid, n}.String(): the device ID of replica n.
func ReplicaID(uuid string, n int) string { return Replica{UUID: uuid, N: n}.String() }

// String is the replica's device ID "<UUID>::<N>".
func (r Replica) String() string { return r.UUID + Separator + strconv.Itoa(r.N) }

// UUIDOf is the UUID part of a device ID: before the first Separator, and
// whether there is one (false: the ID is the UUID itself). It does not
// check the replica number; ParseReplica does.
func UUIDOf(id string) (uuid string, replica bool) {
	uuid, _, replica = strings.Cut(id, Separator)
	return uuid, replica
}

// ParseReplica parses a replica ID "<UUID>::<n>": the UUID is what stands
// before the first Separator and must not be empty, n a decimal number >= 0.
// An ID without a Separator is an error wrapping ErrNotReplica.
func ParseReplica(id string) (Replica, error) {
	uuid, num, found := strings.Cut(id, Separator)
	if !found {
		return Replica{}, fmt.Errorf("device ID %s: %w", Quote(id), ErrNotReplica)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || uuid == "" {
		return Replica{}, fmt.Errorf("device ID %s: want <UUID>%s<replica number >= 0>", Quote(id), Separator)
	}
	return Replica{UUID: uuid, N: n}, nil
}

// Split splits a device ID into its UUID and replica number; replica is -1
// for an ID that is not a replica (a GPU or MIG UUID). A malformed replica
// ID is an error.
func Split(id string) (uuid string, replica int, err error) {
	if _, ok := UUIDOf(id); !ok {
		return id, -1, nil
	}
	r, err := ParseReplica(id)
	if err != nil {
		return "", 0, err
	}
	return r.UUID, r.N, nil
}

// MaxQuoted is the most bytes of a bad value an error quotes (Quote).
// Device IDs, UUIDs and the other strings of gpupack's annotations reach
// pod conditions, events and logs through errors, where a long one would
// be copied in full; a GPU or MIG UUID (40 bytes) and its replica IDs fit.
const MaxQuoted = 64

// Quote quotes s as %q does, cut to its first MaxQuoted bytes (on a rune
// boundary) with its length when longer: for errors that name a value read
// from an annotation, whatever its length.
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", Prefix(s, MaxQuoted), len(s))
}

// Prefix is s cut to at most n bytes on a rune boundary (s itself when
// not longer): the cut of Quote, of the decoders' errors and of event
// notes, which must stay valid UTF-8.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Shorten is s itself when at most MaxQuoted bytes long, else Quote(s): for
// errors that name a value unquoted (a resource or container name).
func Shorten(s string) string {
	if len(s) <= MaxQuoted {
		return s
	}
	return Quote(s)
}
