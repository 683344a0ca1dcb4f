package topology

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// AnnotationKey is the node annotation that carries a Node, written by the
// device plugin and read by the scheduler plugin.
const AnnotationKey = "gpupack.io/topology"

// Annotation formats. v2 adds the node's resource table (Node.Resources);
// Encode writes v1 for a node without one, so that a node that publishes
// no table reads the same to older schedulers, and Decode reads both.
const (
	// Version is the newest format, written for nodes with resources.
	Version = "v2"
	// VersionV1 is the format without a resource table.
	VersionV1 = "v1"
)

// MaxAnnotationBytes is the largest annotation Decode accepts (256 KiB, the
// Kubernetes limit for all of an object's annotations together).
const MaxAnnotationBytes = 256 << 10

// envelope is the annotation's JSON: {"version":"v1","node":{...}}.
type envelope struct {
	Version string `json:"version"`
	Node    *Node  `json:"node"`
}

// Encode validates n and returns its annotation value.
func Encode(n *Node) (string, error) {
	if n == nil {
		return "", errors.New("encoding topology: nil node")
	}
	if err := n.Validate(); err != nil {
		return "", fmt.Errorf("encoding topology: %w", err)
	}
	v := Version
	if len(n.Resources) == 0 {
		v = VersionV1
	}
	b, err := json.Marshal(envelope{Version: v, Node: n})
	if err != nil {
		return "", fmt.Errorf("encoding topology: %w", err)
	}
	if len(b) > MaxAnnotationBytes {
		return "", fmt.Errorf("encoding topology: %d bytes, more than the %d allowed", len(b), MaxAnnotationBytes)
	}
	return string(b), nil
}

// Decode parses and validates an annotation value written by Encode (format
// v1 or v2; a v1 node has no Resources). It
// rejects, with an error naming the problem, a value over MaxAnnotationBytes,
// malformed JSON, trailing data, a version other than Version, unknown fields
// and a node that fails Validate. It never panics.
func Decode(s string) (*Node, error) {
	if len(s) > MaxAnnotationBytes {
		return nil, fmt.Errorf("decoding %s: %d bytes, more than the %d allowed", AnnotationKey, len(s), MaxAnnotationBytes)
	}
	// Read the version first, leniently, so that a newer format is reported
	// as such rather than as unknown fields.
	var head struct {
		Version *string `json:"version"`
	}
	if err := json.Unmarshal([]byte(s), &head); err != nil {
		return nil, fmt.Errorf("decoding %s: malformed JSON: %w", AnnotationKey, err)
	}
	switch {
	case head.Version == nil:
		return nil, fmt.Errorf("decoding %s: no version field", AnnotationKey)
	case *head.Version != Version && *head.Version != VersionV1:
		return nil, fmt.Errorf("decoding %s: unsupported version %q (this build reads %q and %q)", AnnotationKey, *head.Version, VersionV1, Version)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	var env envelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", AnnotationKey, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding %s: trailing data after the JSON object", AnnotationKey)
	}
	if env.Node == nil {
		return nil, fmt.Errorf("decoding %s: no node", AnnotationKey)
	}
	if len(env.Node.Resources) == 0 {
		env.Node.Resources = nil // v2 with an empty table reads as v1
	} else if env.Version == VersionV1 {
		return nil, fmt.Errorf("decoding %s: format %s has no resources (they came with %s)", AnnotationKey, VersionV1, Version)
	}
	if err := env.Node.Validate(); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", AnnotationKey, err)
	}
	return env.Node, nil
}
