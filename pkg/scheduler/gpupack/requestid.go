package gpupack

import (
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
}

const maxRequestIDs = 1 << 10

func (r *requestIDs) id(c containerRequest) uint64 {
	k := requestKey{c.req, c.resource, c.podPolicy}
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
