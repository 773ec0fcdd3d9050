package pools

import (
	"math"
	"sync/atomic"
	"time"
)

// heatHalfLife is how fast a connection's heat fades: a use counts half as
// much this long after it happened. Long enough that a tenant's rate over
// the last minute or so decides, short enough that a tenant gone quiet
// cools within minutes and a shift in traffic is followed.
const heatHalfLife = 30 * time.Second

// heat is an exponentially decayed count of uses, safe for concurrent use
// without a lock. It is kept as log2 of the count plus the time of the last
// use in half-lives: decay then moves every heat alike, so two heats
// compare as stored, with no clock read, and a use only adds to one.
// The zero heat is -Inf (never used).
type heat struct{ bits atomic.Uint64 }

var coldBits = math.Float64bits(math.Inf(-1))

func newHeats(n int32) []heat {
	h := make([]heat, n)
	for i := range h {
		h[i].bits.Store(coldBits)
	}
	return h
}

// add counts one use at now, in half-lives since an epoch common to every
// heat compared.
func (h *heat) add(now float64) {
	for {
		old := h.bits.Load()
		s := math.Float64frombits(old)
		// The count decayed to now is 2^(s-now); one more use adds 1.
		next := now + math.Log2(math.Exp2(s-now)+1)
		if h.bits.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// score orders heats: the lower, the colder.
func (h *heat) score() float64 { return math.Float64frombits(h.bits.Load()) }
