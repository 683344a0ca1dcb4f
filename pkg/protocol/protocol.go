// Package protocol is everything the scheduler plugin and the device plugin
// exchange through the API server (DESIGN.md section 4): every annotation
// and label key and the one payload cap (keys.go), and the versioned JSON
// payloads with their codecs:
//
//   - node annotation gpupack.io/topology: the node's GPUs, links, MIG
//     devices, replicas, health and resource table (topology.go);
//   - node annotation gpupack.io/in-use: the device IDs in use on the node
//     and by which pod, written by the device plugin (protocol.go);
//   - pod annotation gpupack.io/devices: resource -> device IDs chosen by the
//     scheduler, with gpupack.io/assumed-at (protocol.go);
//
// and the one reader of what a pod asks: its device counts per resource and
// its hints gpupack.io/topology and gpupack.io/replica-policy (pod.go).
//
// Decoders reject what they do not understand (unknown version, unknown
// field, malformed IDs) with a clear error and never panic.
package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	kjson "sigs.k8s.io/json"

	"github.com/gpupack/gpupack/pkg/deviceid"
)

// Version is the payload version these codecs read and write.
const Version = "v1"

// ErrVersion is wrapped by errors about a payload of another version.
var ErrVersion = errors.New("unsupported payload version")

// PodRef names a pod.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// PodDevices are the devices one pod holds.
type PodDevices struct {
	PodRef
	Devices []string `json:"devices"`
	// Scheduled is the set the scheduler chose for the pod (its
	// gpupack.io/devices), present only when the pod holds a device outside
	// it: the handoff did not give the pod its scheduled set.
	Scheduled []string `json:"scheduled,omitempty"`
}

// InUse is the payload of the gpupack.io/in-use node annotation.
type InUse struct {
	Version string       `json:"version"`
	Pods    []PodDevices `json:"pods"`
}

// IDs returns every device ID in use.
func (u *InUse) IDs() map[string]bool {
	ids := map[string]bool{}
	for _, p := range u.Pods {
		for _, id := range p.Devices {
			ids[id] = true
		}
	}
	return ids
}

// EncodeInUse renders pods as an annotation value (sorted, reproducible).
func EncodeInUse(pods []PodDevices) (string, error) {
	u := InUse{Version: Version, Pods: make([]PodDevices, 0, len(pods))}
	for _, p := range pods {
		if err := validatePod(p); err != nil {
			return "", err
		}
		p.Devices = slices.Sorted(slices.Values(p.Devices))
		if len(p.Scheduled) > 0 {
			p.Scheduled = slices.Sorted(slices.Values(p.Scheduled))
		}
		u.Pods = append(u.Pods, p)
	}
	slices.SortFunc(u.Pods, func(a, b PodDevices) int {
		return strings.Compare(a.Namespace+"/"+a.Name+"/"+a.UID, b.Namespace+"/"+b.Name+"/"+b.UID)
	})
	return encode(InUseAnnotation, u)
}

// DecodeInUse parses a gpupack.io/in-use annotation value. Its error is at
// most MaxErrorBytes long.
func DecodeInUse(s string) (*InUse, error) {
	u, err := decodeInUse(s)
	return u, shortError(err)
}

func decodeInUse(s string) (*InUse, error) {
	var u InUse
	if err := decode(s, InUseAnnotation, &u); err != nil {
		return nil, err
	}
	for i, p := range u.Pods {
		if err := validatePod(p); err != nil {
			return nil, fmt.Errorf("%s: pods[%d]: %w", InUseAnnotation, i, err)
		}
	}
	return &u, nil
}

// ValidateInUseDevice checks one device ID (of Devices or Scheduled) as
// EncodeInUse and DecodeInUse check every one (deviceid.Validate); the
// payload's pod refs are not checked. The device plugin leaves an ID it
// refuses out of its report, so that one ID cannot stop the whole report.
func ValidateInUseDevice(id string) error { return deviceid.Validate(id) }

func validatePod(p PodDevices) error {
	for _, id := range slices.Concat(p.Devices, p.Scheduled) {
		if err := ValidateInUseDevice(id); err != nil {
			return err
		}
	}
	return nil
}

// Devices is the payload of the gpupack.io/devices pod annotation: the
// scheduler's device choice per resource, and per container.
type Devices struct {
	Version string `json:"version"`
	// Resources maps a resource name to the device IDs of the whole pod.
	Resources map[string][]string `json:"resources"`
	// Containers maps a container name to its resources' device IDs.
	Containers map[string]map[string][]string `json:"containers,omitempty"`
}

// EncodeDevices renders d (Version is set) as an annotation value.
func EncodeDevices(d Devices) (string, error) {
	d.Version = Version
	if err := validateDevices(&d); err != nil {
		return "", err
	}
	return encode(DevicesAnnotation, d)
}

// DecodeDevices parses a gpupack.io/devices annotation value. Its error is
// at most MaxErrorBytes long.
func DecodeDevices(s string) (*Devices, error) {
	d, err := decodeDevices(s)
	return d, shortError(err)
}

func decodeDevices(s string) (*Devices, error) {
	var d Devices
	if err := decode(s, DevicesAnnotation, &d); err != nil {
		return nil, err
	}
	if err := validateDevices(&d); err != nil {
		return nil, err
	}
	return &d, nil
}

func validateDevices(d *Devices) error {
	check := func(where string, m map[string][]string) error {
		for res, ids := range m {
			if res == "" {
				return fmt.Errorf("%s: %sempty resource name", DevicesAnnotation, where)
			}
			seen := map[string]bool{}
			for _, id := range ids {
				if err := deviceid.Validate(id); err != nil {
					return fmt.Errorf("%s: %s%s: %w", DevicesAnnotation, where, deviceid.Shorten(res), err)
				}
				if seen[id] {
					return fmt.Errorf("%s: %s%s: device %s listed twice", DevicesAnnotation, where, deviceid.Shorten(res), deviceid.Quote(id))
				}
				seen[id] = true
			}
		}
		return nil
	}
	if err := check("", d.Resources); err != nil {
		return err
	}
	for c, m := range d.Containers {
		if err := check("container "+deviceid.Shorten(c)+": ", m); err != nil {
			return err
		}
	}
	return nil
}

// FormatAssumedAt renders t for gpupack.io/assumed-at (RFC 3339 nano, UTC).
func FormatAssumedAt(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseAssumedAt parses gpupack.io/assumed-at.
func ParseAssumedAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", AssumedAtAnnotation, err)
	}
	return t, nil
}

// encode renders v as the JSON value of annotation what, at most MaxPayload
// bytes (a larger value could not be stored).
func encode(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	if len(b) > MaxPayload {
		return "", fmt.Errorf("encode %s: %d bytes, more than the %d allowed", what, len(b), MaxPayload)
	}
	return string(b), nil
}

// decode reads a versioned JSON object strictly: size bound, the version
// first, then unknown fields rejected.
func decode(s, what string, into any) error {
	if len(s) > MaxPayload {
		return fmt.Errorf("%s: payload of %d bytes is over %d", what, len(s), MaxPayload)
	}
	var head struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal([]byte(s), &head); err != nil {
		return fmt.Errorf("%s: malformed JSON: %w", what, err)
	}
	if head.Version != Version {
		return fmt.Errorf("%s: %w %s (this build reads %q)", what, ErrVersion, deviceid.Quote(head.Version), Version)
	}
	if err := unmarshalStrict(s, into); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// unmarshalStrict decodes the JSON value s into v as the apiserver reads
// objects (sigs.k8s.io/json): field names match case-sensitively, and an
// unknown or repeated field is an error, as is anything after the value.
// encoding/json took "Generation" for "generation" and the last of two
// "generation" keys, so a hand-edited annotation could mean something
// other than it reads.
func unmarshalStrict(s string, v any) error {
	strict, err := kjson.UnmarshalStrict([]byte(s), v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
