package protocol

import (
	"fmt"
	"strings"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// ParseReplicaPolicy reads a replica policy as written in the
// gpupack.io/replica-policy annotation and the node's resource table:
// topology.PolicyPacked or topology.PolicySpread, spaces trimmed.
func ParseReplicaPolicy(s string) (score.ReplicaPolicy, error) {
	switch strings.TrimSpace(s) {
	case topology.PolicyPacked:
		return score.Packed, nil
	case topology.PolicySpread:
		return score.Spread, nil
	}
	return score.Packed, fmt.Errorf("replica policy %s: want %s or %s", deviceid.Quote(s), topology.PolicyPacked, topology.PolicySpread)
}

// ParseTopologyHint reads the value of the gpupack.io/topology pod
// annotation: required, preferred or none (score.TopologyHint's names);
// "" means preferred.
func ParseTopologyHint(s string) (score.TopologyHint, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return score.HintPreferred, nil
	}
	for _, h := range []score.TopologyHint{score.HintPreferred, score.HintRequired, score.HintNone} {
		if v == h.String() {
			return h, nil
		}
	}
	return score.HintPreferred, fmt.Errorf("topology hint %s: want required, preferred or none", deviceid.Quote(s))
}
