package nodepublish

// MaxMalformed is maxMalformed, for the tests of the bound.
const MaxMalformed = maxMalformed

// MalformedTracked is how many malformed device IDs p remembers.
func (p *Publisher) MalformedTracked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.malformed.Len()
}
