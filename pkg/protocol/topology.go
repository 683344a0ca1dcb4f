package protocol

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Formats of the TopologyAnnotation. v2 adds the node's resource table
// (topology.Node.Resources); EncodeTopology writes v1 for a node without
// one, so that a node that publishes no table reads the same to older
// schedulers, and DecodeTopology reads both.
const (
	// TopologyVersion is the newest format, written for nodes with resources.
	TopologyVersion = "v2"
	// TopologyVersionV1 is the format without a resource table.
	TopologyVersionV1 = "v1"
)

// topologyEnvelope is the annotation's JSON: {"version":"v1","node":{...}}.
type topologyEnvelope struct {
	Version string         `json:"version"`
	Node    *topology.Node `json:"node"`
}

// EncodeTopology validates n and returns its TopologyAnnotation value.
func EncodeTopology(n *topology.Node) (string, error) {
	if n == nil {
		return "", errors.New("encoding topology: nil node")
	}
	if err := n.Validate(); err != nil {
		return "", fmt.Errorf("encoding topology: %w", err)
	}
	v := TopologyVersion
	if len(n.Resources) == 0 {
		v = TopologyVersionV1
	}
	return encode(TopologyAnnotation, topologyEnvelope{Version: v, Node: n})
}

// DecodeTopology parses and validates a TopologyAnnotation value written by
// EncodeTopology (format v1 or v2; a v1 node has no Resources). It rejects,
// with an error naming the problem, a value over MaxPayload, malformed JSON,
// trailing data, a version it does not read, unknown fields and a node that
// fails topology.Node.Validate. It never panics; its error is at most
// MaxErrorBytes long.
func DecodeTopology(s string) (*topology.Node, error) {
	n, err := decodeTopology(s)
	return n, shortError(err)
}

func decodeTopology(s string) (*topology.Node, error) {
	if len(s) > MaxPayload {
		return nil, fmt.Errorf("decoding %s: %d bytes, more than the %d allowed", TopologyAnnotation, len(s), MaxPayload)
	}
	// Read the version first, leniently, so that a newer format is reported
	// as such rather than as unknown fields.
	var head struct {
		Version *string `json:"version"`
	}
	if err := json.Unmarshal([]byte(s), &head); err != nil {
		return nil, fmt.Errorf("decoding %s: malformed JSON: %w", TopologyAnnotation, err)
	}
	switch {
	case head.Version == nil:
		return nil, fmt.Errorf("decoding %s: no version field", TopologyAnnotation)
	case *head.Version != TopologyVersion && *head.Version != TopologyVersionV1:
		return nil, fmt.Errorf("decoding %s: unsupported version %s (this build reads %q and %q)", TopologyAnnotation, deviceid.Quote(*head.Version), TopologyVersionV1, TopologyVersion)
	}
	var env topologyEnvelope
	if err := unmarshalStrict(s, &env); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", TopologyAnnotation, err)
	}
	if env.Node == nil {
		return nil, fmt.Errorf("decoding %s: no node", TopologyAnnotation)
	}
	if len(env.Node.Resources) == 0 {
		env.Node.Resources = nil // v2 with an empty table reads as v1
	} else if env.Version == TopologyVersionV1 {
		return nil, fmt.Errorf("decoding %s: format %s has no resources (they came with %s)", TopologyAnnotation, TopologyVersionV1, TopologyVersion)
	}
	if err := env.Node.Validate(); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", TopologyAnnotation, err)
	}
	return env.Node, nil
}
