package analytics_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/startupwebapp/platform/tenant/analytics"
)

// warmDBs adds the pool manager's Warm to the test databases, answering
// what the test sets.
type warmDBs struct {
	analytics.DB
	warm atomic.Bool
}

func (d *warmDBs) Warm(int64) bool { return d.warm.Load() }

func coldFixture(t *testing.T, opts analytics.Options) (*fixture, *warmDBs) {
	t.Helper()
	var w *warmDBs
	f := newFixture(t, opts, func(db analytics.DB) analytics.DB {
		w = &warmDBs{DB: db}
		return w
	})
	return f, w
}

func waitRows(t *testing.T, f *fixture, table string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, f.on, table) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rows written", count(t, f.on, table), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A tenant without a warm connection keeps its rows past FlushInterval;
// they go out as soon as a request warms it.
func TestColdTenantWaitsForWarmConnection(t *testing.T) {
	t.Parallel()
	f, w := coldFixture(t, analytics.Options{FlushInterval: 5 * time.Millisecond, ColdFlushInterval: time.Hour})
	for i := range 5 {
		f.get(t, "GET", hostOn, "/clientevent/pageview?url=u"+strconv.Itoa(i))
	}
	// Forty flush intervals: a warm tenant's rows would be written by now.
	time.Sleep(200 * time.Millisecond)
	if got := count(t, f.on, "pageview"); got != 0 {
		t.Fatalf("cold tenant: %d rows written before it was warm", got)
	}
	w.warm.Store(true)
	waitRows(t, f, "pageview", 5)
}

// A cold tenant's rows still go out after ColdFlushInterval, or at once
// when they fill a batch, and Close writes them all.
func TestColdTenantFlushesLater(t *testing.T) {
	t.Parallel()
	t.Run("interval", func(t *testing.T) {
		t.Parallel()
		f, _ := coldFixture(t, analytics.Options{FlushInterval: 5 * time.Millisecond, ColdFlushInterval: 300 * time.Millisecond})
		start := time.Now()
		f.get(t, "GET", hostOn, "/clientevent/pageview?url=a")
		waitRows(t, f, "pageview", 1)
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("written after %v, before ColdFlushInterval", d)
		}
	})
	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		f, _ := coldFixture(t, analytics.Options{FlushInterval: 5 * time.Millisecond, ColdFlushInterval: time.Hour, BatchSize: 3})
		for i := range 3 {
			f.get(t, "GET", hostOn, "/clientevent/pageview?url=b"+strconv.Itoa(i))
		}
		waitRows(t, f, "pageview", 3)
	})
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		f, _ := coldFixture(t, analytics.Options{FlushInterval: 5 * time.Millisecond, ColdFlushInterval: time.Hour})
		for i := range 4 {
			f.get(t, "GET", hostOn, "/clientevent/pageview?url=c"+strconv.Itoa(i))
		}
		f.close(t)
		if got := count(t, f.on, "pageview"); got != 4 {
			t.Errorf("after Close: %d rows, want 4", got)
		}
	})
}
