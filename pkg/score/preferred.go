package score

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/topology"
)

// ErrNoFit is returned by Preferred when no device set of the requested
// size fits.
var ErrNoFit = errors.New("no device set fits")

// Preferred serves the kubelet's GetPreferredAllocation for one resource
// of node: it returns req.Count IDs out of available that include
// mustInclude, chosen as Choose would (choose.go). Every device of req's kind on the
// node that is not in available counts as in use (for KindMIG: every device
// of that profile). Unknown IDs, an impossible size or a mustInclude outside
// available are errors; an ID repeated in mustInclude counts once.
func Preferred(node *topology.Node, req Request, available, mustInclude []string, w *Workload) ([]string, error) {
	if node == nil {
		return nil, errors.New("preferred allocation: no node topology")
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	// A device named twice is named once: the answer must not name one
	// twice (a replica listed twice was given twice).
	mustInclude = distinct(mustInclude)
	if len(mustInclude) > req.Count {
		return nil, fmt.Errorf("%w: %d devices must be included but only %d requested", ErrInvalidRequest, len(mustInclude), req.Count)
	}
	avail := make(map[string]bool, len(available))
	for _, id := range available {
		avail[id] = true
	}
	for _, id := range mustInclude {
		if !avail[id] {
			return nil, fmt.Errorf("%w: must-include device %q is not available", ErrInvalidRequest, id)
		}
	}
	if len(avail) < req.Count {
		return nil, fmt.Errorf("%w: %d available, %d requested", ErrNoFit, len(avail), req.Count)
	}
	universe := universeOf(node, req)
	for id := range avail {
		if !universe[id] {
			return nil, fmt.Errorf("%w: %q is not a %s device of this node", ErrUnknownDevice, id, req.Kind)
		}
	}
	used := make(map[string]bool, len(universe))
	for id := range universe {
		if !avail[id] {
			used[id] = true
		}
	}
	s, _ := StateOf(node, used)
	m, err := mustOf(node, req, mustInclude)
	if err != nil {
		return nil, err
	}
	d, _ := prepare(s, req, w.Distribution()) // req is valid
	c, ok := choose(s, req, d, m)
	if !ok {
		return nil, fmt.Errorf("%w: %d %s devices out of %d available", ErrNoFit, req.Count, req.Kind, len(avail))
	}
	if req.Kind == KindShared {
		c.DeviceIDs = preferredReplicaIDs(node, c.Shares, used, mustInclude)
	}
	return c.DeviceIDs, nil
}

// distinct is ids without repeats, in their first order (ids itself when
// it has none).
func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if len(out) == len(ids) {
		return ids
	}
	return out
}

// universeOf is every device ID of req's kind on node.
func universeOf(node *topology.Node, req Request) map[string]bool {
	u := map[string]bool{}
	switch req.Kind {
	case KindWhole:
		for _, g := range node.GPUs {
			u[g.UUID] = true
		}
	case KindShared:
		for _, g := range node.GPUs {
			if g.Replicas > 1 {
				for n := range g.Replicas {
					u[deviceid.ReplicaID(g.UUID, n)] = true
				}
			}
		}
	case KindMIG:
		for _, m := range node.MIG {
			if m.Profile == req.MIGProfile {
				u[m.UUID] = true
			}
		}
	}
	return u
}

func mustOf(node *topology.Node, req Request, ids []string) (must, error) {
	var m must
	idx := node.DeviceIndex()
	for _, id := range ids {
		switch req.Kind {
		case KindWhole:
			m.gpus |= topology.SetOf(idx[id])
		case KindMIG:
			m.mig = append(m.mig, -1-idx[id])
		case KindShared:
			r, err := deviceid.ParseReplica(id)
			if err != nil {
				return must{}, err
			}
			m.shares = append(m.shares, Share{GPU: idx[r.UUID], Replicas: 1})
		}
	}
	m.shares = mergeShares(m.shares)
	return m, nil
}

// preferredReplicaIDs names replicas for the shares: the must-include ones
// first, then free numbers, lowest first.
func preferredReplicaIDs(node *topology.Node, shares []Share, used map[string]bool, mustInclude []string) []string {
	taken := map[string]bool{}
	for id := range used {
		taken[id] = true
	}
	ids := append([]string(nil), mustInclude...)
	count := map[int]int{}
	for _, id := range mustInclude {
		taken[id] = true
		uuid, _ := deviceid.UUIDOf(id)
		for i, g := range node.GPUs {
			if g.UUID == uuid {
				count[i]++
			}
		}
	}
	var rest []Share
	for _, sh := range shares {
		if n := sh.Replicas - count[sh.GPU]; n > 0 {
			rest = append(rest, Share{sh.GPU, n})
		}
	}
	ids = append(ids, ReplicaIDs(node, rest, taken)...)
	slices.Sort(ids)
	return ids
}
