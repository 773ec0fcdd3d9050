package admin_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkInsightMillionEvents seeds 1,000,000 client events in one tenant
// over 90 days (900,000 page views from 60,000 visitors on 200 pages,
// 50,000 button clicks, 30,000 link events, 20,000 ajax errors) and 20,000
// orders, rebuilds the rollups from them (the time is logged), then times
// the dashboard's API answer for the last 30 and the whole 90 days,
// reporting p50 and p95 of each, and, as the reference, the p50 of reading
// only the 30 days' page views and visitors from the event table:
//
//	go test -run '^$' -bench BenchmarkInsightMillionEvents -benchtime 40x -timeout 20m ./tenant/admin/
func BenchmarkInsightMillionEvents(b *testing.B) {
	f := newFixture(b, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	start := time.Now()
	f.exec(f.a, `INSERT INTO pageview (anonymous_id, url, created_date_time)
SELECT 'v' || (g % 60000), 'https://shop.test/page-' || (g % 200) || '?q=' || g, now() - (g % 90) * interval '1 day' - (g % 86400) * interval '1 second'
FROM generate_series(1, 900000) g`)
	f.exec(f.a, `INSERT INTO button_click (anonymous_id, url, button_id, created_date_time)
SELECT 'v' || (g % 60000), 'https://shop.test/cart', 'button-' || (g % 12), now() - (g % 90) * interval '1 day' FROM generate_series(1, 50000) g`)
	f.exec(f.a, `INSERT INTO link_event (anonymous_id, email_id, url, created_date_time)
SELECT 'v' || (g % 60000), (SELECT min(id) FROM email), 'https://shop.test/', now() - (g % 90) * interval '1 day' FROM generate_series(1, 30000) g`)
	f.exec(f.a, `INSERT INTO ajax_error (anonymous_id, url, error_id, created_date_time)
SELECT 'v' || (g % 60000), 'https://shop.test/account', 'error-' || (g % 8), now() - (g % 90) * interval '1 day' FROM generate_series(1, 20000) g`)
	f.exec(f.a, `INSERT INTO customer_order (identifier, order_total, order_date_time)
SELECT 'BENCH-' || g, 10 + g % 90, now() - (g % 90) * interval '1 day' FROM generate_series(1, 20000) g`)
	seeded := time.Since(start)
	start = time.Now()
	f.exec(f.a, `SELECT insight_rebuild()`)
	f.exec(f.a, `ANALYZE`)
	b.Logf("seeded 1,000,000 events and 20,000 orders in %s; insight_rebuild() took %s", seeded.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	from30 := time.Now().UTC().AddDate(0, 0, -29).Format(time.DateOnly)
	from90 := time.Now().UTC().AddDate(0, 0, -89).Format(time.DateOnly)
	// The reference, measured in the same run: the days' page views and
	// distinct visitors read from the event table itself.
	raw := func() {
		rows, err := f.dbs[f.a.ID].Query(context.Background(), `SELECT (created_date_time AT TIME ZONE 'UTC')::date, count(*), count(DISTINCT anonymous_id)
FROM pageview WHERE created_date_time >= $1::date GROUP BY 1`, from30)
		if err != nil {
			b.Fatal(err)
		}
		rows.Close()
	}
	var t30, t90, tRaw []time.Duration
	for b.Loop() {
		t0 := time.Now()
		raw()
		tRaw = append(tRaw, time.Since(t0))
		for _, q := range []struct {
			from string
			into *[]time.Duration
		}{{from30, &t30}, {from90, &t90}} {
			t0 := time.Now()
			out := owner.must(200, "GET", api+"/insight?from="+q.from, nil)
			*q.into = append(*q.into, time.Since(t0))
			if len(out["days"].([]any)) == 0 {
				b.Fatal("no days")
			}
		}
	}
	pct := func(ds []time.Duration, p int) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[(len(s)-1)*p/100]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(t30, 50), "p50-30d-ms")
	b.ReportMetric(pct(t30, 95), "p95-30d-ms")
	b.ReportMetric(pct(t90, 50), "p50-90d-ms")
	b.ReportMetric(pct(t90, 95), "p95-90d-ms")
	b.ReportMetric(pct(tRaw, 50), "p50-raw-30d-ms")
}
