package analytics_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/tenant/analytics"
)

// rollups reads insight_daily as metric/key -> count (days summed) and
// metric/day -> count for the visitors.
func rollups(t *testing.T, db *pgxpool.Pool) map[string]int64 {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT metric || '|' || CASE WHEN metric = 'visitor' THEN day::text ELSE key END, sum(count)
FROM insight_daily GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRollupsFollowTheEvents: the batch writer keeps the insight rollups in
// step with the events it inserts, across several batches (a visitor seen
// in two batches of one day counts once), and they equal what
// insight_rebuild() computes from the event tables.
func TestRollupsFollowTheEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{FlushInterval: time.Hour, BatchSize: 3})
	s := f.seed
	id := strconv.FormatInt(s.accountID, 10)
	page := func(p string) string { return url.QueryEscape("http://localhost:8080" + p) }
	var targets []string
	for i := 0; i < 4; i++ {
		targets = append(targets, "/clientevent/pageview?client_event_id="+id+"&url="+page("/product?name=Mug&i="+strconv.Itoa(i)))
	}
	for i := 0; i < 3; i++ {
		targets = append(targets, "/clientevent/pageview?client_event_id=null&anonymous_id=visitor-"+strconv.Itoa(i%2)+"&url="+page("/cart#top"))
	}
	targets = append(targets,
		"/clientevent/pageview?client_event_id=null&url="+page(""),
		"/clientevent/buttonclick?client_event_id="+id+"&url="+page("/cart")+"&button_id=checkout",
		"/clientevent/buttonclick?client_event_id=null&anonymous_id=x&url="+page("/cart")+"&button_id=checkout",
		"/clientevent/ajaxerror?client_event_id=null&url="+page("/account?x=1")+"&error_id=login-login",
		"/clientevent/linkevent?mb_cd="+s.mbCd+"&em_cd="+s.emCd+"&url="+page("/"),
		"/clientevent/linkevent?pr_cd="+s.prCd+"&em_cd="+s.emCd+"&url="+page("/"),
		"/clientevent/linkevent?ad_cd="+s.adCd+"&url="+page("/"),
	)
	for _, target := range targets {
		if status, _, _ := f.get(t, "GET", hostOn, target); status != 200 {
			t.Fatalf("GET %s = %d", target, status)
		}
	}
	f.close(t)

	got := rollups(t, f.on)
	today := time.Now().UTC().Format("2006-01-02")
	want := map[string]int64{
		"pageview|/product": 4, "pageview|/cart": 3, "pageview|/": 1,
		"visitor|" + today:                3, // the account and two anonymous visitors; the pageview with neither is no visitor
		"button_click|checkout":           2,
		"ajax_error|/account login-login": 1,
		"link_member|email:" + s.emCd:     1, "link_prospect|email:" + s.emCd: 1, "link_other|ad:" + s.adCd: 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("rollup %s = %d, want %d", k, got[k], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rollups %v, want %v", got, want)
	}
	if _, err := f.on.Exec(context.Background(), `SELECT insight_rebuild()`); err != nil {
		t.Fatal(err)
	}
	rebuilt := rollups(t, f.on)
	for k, n := range got {
		if rebuilt[k] != n {
			t.Errorf("rebuilt %s = %d, the batch writer's %d", k, rebuilt[k], n)
		}
	}
	if len(rebuilt) != len(got) {
		t.Errorf("rebuilt %v, batch writer %v", rebuilt, got)
	}
}
