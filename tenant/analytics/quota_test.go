package analytics_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/analytics"
)

func droppedFor(t testing.TB, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "swa_clientevent_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// Over the plan's events_per_month, beacons answer exactly as before and
// are dropped, counted as over_quota; no rows are written past the quota.
// The month's count is seeded from the rollups (two events already this
// month), so the first batch keeps only the three that fit, and beacons
// after it are dropped as they arrive.
func TestEventQuotaOfPlan(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{FlushInterval: time.Hour, BatchSize: 1000, QuotaRefresh: time.Hour})
	ctx := context.Background()
	plan := pgtest.RandomName("ev")
	if _, err := f.reg.Exec(ctx, `INSERT INTO plans (name, display_name, events_per_month) VALUES ($1, 'Ev', 5)`, plan); err != nil {
		t.Fatal(err)
	}
	directorytest.SetPlan(t, f.reg, f.tenantOn.ID, plan)
	if err := f.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Two events this month, one last month (not counted), and visitors
	// (not events).
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if _, err := f.on.Exec(ctx, `INSERT INTO insight_daily (metric, day, key, count) VALUES
		('pageview', $1, '/', 2), ('pageview', $2, '/', 50), ('visitor', $1, '', 9)`, month, month.AddDate(0, 0, -1)); err != nil {
		t.Fatal(err)
	}

	beacon := func(i int) {
		t.Helper()
		status, ctype, body := f.get(t, "GET", hostOn, "/clientevent/pageview?url=q"+strconv.Itoa(i))
		if status != 200 || ctype != "application/json" || body != `"thank you"` {
			t.Fatalf("beacon over quota = %d %q %q, want the usual answer", status, ctype, body)
		}
	}
	for i := range 8 {
		beacon(i)
	}
	// Written by the flusher as Close would: one batch, trimmed on seeding.
	f.an.FlushNow(ctx)
	if got := count(t, f.on, "pageview"); got != 3 {
		t.Fatalf("rows %d, want the 3 that fit under 5 with 2 already this month", got)
	}
	if got := droppedFor(t, f.metrics, "over_quota"); got != 5 {
		t.Errorf("over_quota %v after the first batch, want 5", got)
	}
	for i := range 4 {
		beacon(100 + i)
	}
	if got := droppedFor(t, f.metrics, "over_quota"); got != 9 {
		t.Errorf("over_quota %v, want 9: beacons past the seeded count are dropped as they arrive", got)
	}
	// A tenant without a limit is not counted.
	for i := range 3 {
		if status, _, _ := f.get(t, "GET", hostOff, "/clientevent/pageview?url=x"+strconv.Itoa(i)); status != 200 {
			t.Fatal(status)
		}
	}
	if got := droppedFor(t, f.metrics, "over_quota"); got != 9 {
		t.Errorf("over_quota %v, want 9", got)
	}
	f.close(t)
	if got := count(t, f.on, "pageview"); got != 3 {
		t.Errorf("rows %d after close, want 3", got)
	}
}
