package baseline

// Picker keeps the best-scored node of one decision, breaking ties by its
// TieBreak. One Picker serves a whole run (its node order is drawn once);
// Reset it before each decision.
type Picker struct {
	tie   TieBreak
	rng   Rand
	order []int32 // TieFirst: rank of each node

	node  int
	score int64
	ties  int
}

// NewPicker is a Picker over nodes 0..nodes-1. For TieFirst it draws the
// node order from rng now (a uniform permutation); for TieRandom it draws
// from rng at each tie.
func NewPicker(tie TieBreak, nodes int, rng Rand) *Picker {
	p := &Picker{tie: tie, rng: rng, node: -1}
	if tie == TieFirst {
		p.order = make([]int32, nodes)
		for i := range p.order {
			p.order[i] = int32(i)
		}
		// Fisher-Yates: order[i] is node i's rank.
		for i := nodes - 1; i > 0; i-- {
			j := rng.IntN(i + 1)
			p.order[i], p.order[j] = p.order[j], p.order[i]
		}
	}
	return p
}

// NewOrderedPicker is a TieFirst Picker with the given ranks (rank[i] is
// node i's place in the order, lower first), for tests and callers with an
// order of their own.
func NewOrderedPicker(rank []int32) *Picker {
	return &Picker{tie: TieFirst, order: rank, node: -1}
}

// Reset starts a new decision.
func (p *Picker) Reset() { p.node, p.score, p.ties = -1, 0, 0 }

// Offer considers node with score.
func (p *Picker) Offer(node int, score int64) {
	switch {
	case p.node < 0 || score > p.score:
		p.node, p.score, p.ties = node, score, 1
	case score < p.score:
	case p.tie == TieFirst:
		if p.order[node] < p.order[p.node] {
			p.node = node
		}
	default: // reservoir sampling: each of the k tied nodes kept with 1/k
		p.ties++
		if p.rng.IntN(p.ties) == 0 {
			p.node = node
		}
	}
}

// Best is the chosen node and its score; node is -1 when none was offered.
func (p *Picker) Best() (node int, score int64) { return p.node, p.score }
