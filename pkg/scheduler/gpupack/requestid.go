package gpupack

import (
	"strconv"
	"sync"

	"github.com/gpupack/gpupack/pkg/score"
)

// requestIDs numbers the distinct requests of one-request pods (what a
// plan depends on: the score.Request and, for its error, the resource name)
// so that a node's lastPlans compare one number. IDs are never reused;
// past maxRequestIDs the table starts over (older IDs then simply miss).
type requestIDs struct {
	mu   sync.Mutex
	ids  map[requestKey]uint64
	next uint64
}

type requestKey struct {
	req       score.Request
	resource  string
	podPolicy bool
	// uses are the request's per-container uses (count and keep, in
	// order): a pooled request (init containers reusing devices) is
	// planned apart from one container asking the same total.
	uses string
}

// usesKey encodes uses for requestKey: "count+" for a container that keeps
// its devices, "count-" for one whose devices are reused after it.
func usesKey(uses []containerUse) string {
	b := make([]byte, 0, 4*len(uses))
	for _, u := range uses {
		b = strconv.AppendInt(b, int64(u.count), 10)
		if u.keep {
			b = append(b, '+')
		} else {
			b = append(b, '-')
		}
	}
	return string(b)
}

const maxRequestIDs = 1 << 10

func (r *requestIDs) id(c containerRequest) uint64 {
	k := requestKey{c.req, c.resource, c.podPolicy, usesKey(c.uses)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[k]; ok {
		return id
	}
	if r.ids == nil || len(r.ids) >= maxRequestIDs {
		r.ids = make(map[requestKey]uint64)
	}
	r.next++
	r.ids[k] = r.next
	return r.next
}
