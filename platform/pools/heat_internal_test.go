package pools

import (
	"math"
	"sync"
	"testing"
)

// A heat used often long ago is colder than one used a little lately, and
// hotter than one used as little a little later; a never used heat is the
// coldest of all.
func TestHeatDecays(t *testing.T) {
	hs := newHeats(4)
	for range 16 {
		hs[0].add(0) // 16 uses at 0
	}
	hs[1].add(5) // one use 5 half-lives later: 16 decayed to 0.5
	hs[2].add(1) // one use 1 half-life later: 16 decayed to 8
	if !(hs[0].score() < hs[1].score()) {
		t.Errorf("16 uses 5 half-lives ago (%v) not colder than one now (%v)", hs[0].score(), hs[1].score())
	}
	if !(hs[2].score() < hs[0].score()) {
		t.Errorf("one use a half-life later (%v) not colder than 16 before (%v)", hs[2].score(), hs[0].score())
	}
	if !math.IsInf(hs[3].score(), -1) || !(hs[3].score() < hs[0].score()) {
		t.Errorf("unused heat scores %v", hs[3].score())
	}
	if got := hs[0].score(); math.Abs(got-4) > 1e-9 { // log2(16) at 0
		t.Errorf("16 uses at 0 score %v, want 4", got)
	}
}

// Uses added at once are all counted.
func TestHeatConcurrentAdds(t *testing.T) {
	var h heat
	h.bits.Store(coldBits)
	const n = 64
	var start, done sync.WaitGroup
	start.Add(1)
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			h.add(10)
		}()
	}
	start.Done()
	done.Wait()
	if got := math.Exp2(h.score() - 10); math.Abs(got-n) > 1e-6 {
		t.Errorf("%d concurrent uses count %v", n, got)
	}
}
