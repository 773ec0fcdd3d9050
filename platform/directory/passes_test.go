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
