package directory_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/directory"
)

// TestEachTenant: every tenant is served once, never more than the bound at
// a time, and the bound is reached (two tenants wait for each other).
func TestEachTenant(t *testing.T) {
	t.Parallel()
	ts := make([]*directory.Tenant, 6)
	for i := range ts {
		ts[i] = &directory.Tenant{ID: int64(i + 1)}
	}
	var inFlight, most atomic.Int32
	seen := make([]atomic.Int32, len(ts))
	both := make(chan struct{}, 2)
	directory.EachTenant(context.Background(), ts, 2, func(_ context.Context, tn *directory.Tenant) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if tn.ID <= 2 { // the first two meet: both run at once
			both <- struct{}{}
			for len(both) < 2 {
				time.Sleep(time.Millisecond)
			}
		}
		seen[tn.ID-1].Add(1)
		inFlight.Add(-1)
	})
	if most.Load() != 2 {
		t.Errorf("at most %d at a time, want the bound 2 reached and kept", most.Load())
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Errorf("tenant %d served %d times", i+1, seen[i].Load())
		}
	}
}

func ids(ts []*directory.Tenant) map[int64]bool {
	out := map[int64]bool{}
	for _, t := range ts {
		out[t.ID] = true
	}
	return out
}

// TestVisits: a pass takes the active tenants, those whose asked-for visit
// or sweep is due, and nobody else; first sweeps spread over the sweep.
func TestVisits(t *testing.T) {
	t.Parallel()
	const n = 400
	ts := make([]*directory.Tenant, n)
	for i := range ts {
		ts[i] = &directory.Tenant{ID: int64(i + 1)}
	}
	active := map[int64]bool{7: true}
	v := directory.NewVisits(func(id int64) bool { return active[id] }, time.Hour)
	now := time.Now()

	// First sight: the active tenant, and the few whose first sweep fell
	// in the first minute.
	got := ids(v.Select(ts, now))
	if !got[7] {
		t.Fatal("the active tenant was not visited")
	}
	if len(got) > n/10 {
		t.Fatalf("%d of %d tenants visited at first sight; first sweeps are not spread", len(got), n)
	}
	// An hour on, every sweep has come due.
	if got := v.Select(ts, now.Add(time.Hour)); len(got) != n {
		t.Fatalf("%d of %d tenants due after a whole sweep", len(got), n)
	}
	for _, tn := range ts {
		v.Visited(tn.ID, now, time.Time{})
	}
	v.Visited(3, now, now.Add(time.Minute)) // work due in a minute
	v.Visited(4, now, now.Add(2*time.Hour)) // later than the sweep: the sweep wins

	if got := ids(v.Select(ts, now.Add(30*time.Second))); len(got) != 1 || !got[7] {
		t.Errorf("before anything is due, visited %v, want only the active tenant", got)
	}
	if got := ids(v.Select(ts, now.Add(time.Minute))); len(got) != 2 || !got[3] || !got[7] {
		t.Errorf("when tenant 3's work is due, visited %v, want 3 and 7", got)
	}
	if got := v.Select(ts, now.Add(time.Hour)); len(got) != n {
		t.Errorf("a sweep after the visits, %d of %d tenants due", len(got), n)
	}
	var none *directory.Visits
	if got := none.Select(ts, now); len(got) != n {
		t.Errorf("nil Visits selected %d of %d tenants", len(got), n)
	}
}
