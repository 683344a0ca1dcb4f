package deviceid

import "crypto/sha256"

// Held names a device ID as the kubelet's PodResources lists it: under a
// resource name. Both come from the kubelet and may be anything (any
// length, any bytes).
type Held struct {
	Resource, ID string
}

// Reported remembers the odd device IDs (malformed, of no device of the
// node, gone) that a component has reported from the kubelet's
// PodResources answers, so that each is logged and counted once while the
// kubelet keeps listing it, however many answers list it. Its memory is
// bounded: at most its limit of IDs, each kept as a fixed-size digest
// however long the ID. An ID the kubelet stops listing is forgotten, and
// reported again should it come back.
//
// The device plugin's holdings (held.go) and the node publisher's in-use
// report both read PodResources and both use it. Not safe for concurrent
// use: callers hold their own lock.
type Reported struct {
	limit int
	seen  map[[sha256.Size]byte]struct{}
	// over is set while the last listing had more distinct IDs than limit.
	over bool
}

// NewReported returns an empty record of at most limit IDs (limit < 1: 1).
func NewReported(limit int) *Reported {
	return &Reported{limit: max(1, limit), seen: map[[sha256.Size]byte]struct{}{}}
}

// digest is h's key in Reported.seen: fixed size, and no two (resource,
// ID) pairs share one however their strings split.
func (h Held) digest() [sha256.Size]byte {
	return sha256.Sum256([]byte(h.Resource + "\x00" + h.ID))
}

// Listed takes the odd IDs of one whole answer (in its order; repeats
// allowed). It forgets the IDs the answer no longer lists and returns the
// indexes into listed of those to report now: the first listing of each ID
// not already remembered, while fewer than the limit are. overflow is true
// when this answer lists more distinct IDs than the limit and the answer
// before did not: the caller says once that it reports no more of them
// (said again only after a listing within the limit).
func (r *Reported) Listed(listed []Held) (report []int, overflow bool) {
	keys := make([][sha256.Size]byte, len(listed))
	now := make(map[[sha256.Size]byte]struct{}, len(listed))
	for i, h := range listed {
		keys[i] = h.digest()
		now[keys[i]] = struct{}{}
	}
	for k := range r.seen {
		if _, ok := now[k]; !ok {
			delete(r.seen, k)
		}
	}
	for i, k := range keys {
		if _, ok := r.seen[k]; ok || len(r.seen) >= r.limit {
			continue
		}
		r.seen[k] = struct{}{}
		report = append(report, i)
	}
	over := len(now) > r.limit
	overflow, r.over = over && !r.over, over
	return report, overflow
}

// Len is how many IDs r remembers (at most its limit).
func (r *Reported) Len() int { return len(r.seen) }
