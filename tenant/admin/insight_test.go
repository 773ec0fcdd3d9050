package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// seedInsight writes three days of events and orders into tenant's
// database, days ago 2, 1 and 0 (UTC), and rebuilds the rollups from them:
// page views 5, 3, 7 (visitors 2, 1, 3), orders 1 (12.50) and 2 (20.00)
// on the last two days, and link, click and error events.
func seedInsight(f *fixture, tn *directory.Tenant) (days [3]string) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i := range days {
		days[i] = today.AddDate(0, 0, i-2).Format(time.DateOnly)
	}
	f.exec(tn, `INSERT INTO pageview (anonymous_id, url, created_date_time)
SELECT v, u, d::date + time '12:00' AT TIME ZONE 'UTC'
FROM (VALUES
  ($1, 'a', 'http://shop.test/product?name=Mug'), ($1, 'a', 'http://shop.test/product?name=Cup'), ($1, 'b', 'http://shop.test/'),
  ($1, 'b', 'http://shop.test/cart'), ($1, 'a', 'http://shop.test/'),
  ($2, 'c', 'http://shop.test/'), ($2, 'c', 'http://shop.test/cart'), ($2, 'c', 'http://shop.test/checkout/confirm'),
  ($3, 'a', 'http://shop.test/'), ($3, 'd', 'http://shop.test/'), ($3, 'e', 'http://shop.test/product?name=Mug'),
  ($3, 'e', 'http://shop.test/'), ($3, 'd', 'http://shop.test/about'), ($3, 'a', 'http://shop.test/'), ($3, 'e', 'http://shop.test/')
) s(d, v, u)`, days[0], days[1], days[2])
	f.exec(tn, `INSERT INTO button_click (anonymous_id, url, button_id, created_date_time) VALUES
  ('a', 'http://shop.test/cart', 'checkout', $1::date AT TIME ZONE 'UTC'), ('a', 'http://shop.test/', '=HYPERLINK("x")', $1::date AT TIME ZONE 'UTC')`, days[2])
	f.exec(tn, `INSERT INTO ajax_error (anonymous_id, url, error_id, created_date_time) VALUES ('a', 'http://shop.test/account?x=1', 'login-login', $1::date AT TIME ZONE 'UTC')`, days[1])
	f.exec(tn, `INSERT INTO link_event (email_id, url, created_date_time)
SELECT id, 'http://shop.test/', $1::date AT TIME ZONE 'UTC' FROM email WHERE em_cd IS NOT NULL ORDER BY id LIMIT 1`, days[2])
	f.exec(tn, `INSERT INTO customer_order (identifier, order_total, order_date_time) VALUES
  ('INS-1', 12.50, $1::date + time '09:00' AT TIME ZONE 'UTC'), ('INS-2', 8.00, $2::date + time '10:00' AT TIME ZONE 'UTC'),
  ('INS-3', 12.00, $2::date + time '23:59' AT TIME ZONE 'UTC')`, days[1], days[2])
	f.exec(tn, `SELECT insight_rebuild()`)
	return days
}

// TestInsight: the dashboard's figures for a range, from the rollups and
// the orders; the range is checked; each table downloads as CSV with
// formula cells escaped; the other tenant sees none of it.
func TestInsight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	days := seedInsight(f, f.a)
	staff := f.signIn(hostA, f.addStaff(f.signIn(hostA, f.owner[f.a.ID], ownerPassword), "staff"), staffPassword)

	got := staff.must(200, "GET", api+"/insight?from="+days[0]+"&to="+days[2], nil)
	want := [][5]any{{days[0], 5.0, 2.0, 0.0, "0"}, {days[1], 3.0, 1.0, 1.0, "12.5"}, {days[2], 7.0, 3.0, 2.0, "20"}}
	list := got["days"].([]any)
	if len(list) != 3 {
		t.Fatalf("days = %s", staff.raw)
	}
	for i, w := range want {
		d := list[i].(map[string]any)
		if d["day"] != w[0] || d["pageviews"] != w[1] || d["visitors"] != w[2] || d["orders"] != w[3] || d["revenue"] != w[4] {
			t.Errorf("day %d = %v, want %v", i, d, w)
		}
	}
	top := got["top_pages"].([]any)
	if p := top[0].(map[string]any); p["key"] != "/" || p["count"] != 8.0 {
		t.Errorf("top page = %v", top)
	}
	if fn := got["funnel"].(map[string]any); fn["product_views"] != 3.0 || fn["cart_views"] != 2.0 || fn["checkout_views"] != 1.0 || fn["paid_orders"] != 3.0 {
		t.Errorf("funnel = %v", fn)
	}
	if l := got["link_events"].([]any); len(l) != 1 || l[0].(map[string]any)["audience"] != "other" || !strings.HasPrefix(l[0].(map[string]any)["code"].(string), "email:") {
		t.Errorf("links = %v", l)
	}
	if e := got["ajax_errors"].([]any); len(e) != 1 || e[0].(map[string]any)["page"] != "/account" || e[0].(map[string]any)["error"] != "login-login" {
		t.Errorf("ajax errors = %v", e)
	}
	// One day only, and the default range (the last 30 days) holds all three.
	if one := staff.must(200, "GET", api+"/insight?from="+days[1]+"&to="+days[1], nil)["days"].([]any); len(one) != 1 {
		t.Errorf("one day = %v", one)
	}
	if all := staff.must(200, "GET", api+"/insight", nil)["days"].([]any); len(all) != 30 || all[29].(map[string]any)["pageviews"] != 7.0 {
		t.Errorf("default range: %d days", len(all))
	}
	staff.refused(400, "invalid", "to", "GET", api+"/insight?from="+days[2]+"&to="+days[0], nil)
	staff.refused(400, "invalid", "from", "GET", api+"/insight?from=yesterday", nil)
	staff.refused(400, "invalid", "from", "GET", api+"/insight?from=2020-01-01&to=2026-01-01", nil)
	staff.refused(404, "not-found", "report", "GET", api+"/insight/reports/secrets", nil)

	status, csv := staff.get(api + "/insight/reports/buttons?from=" + days[0] + "&to=" + days[2])
	if status != 200 || !strings.HasPrefix(csv, "button,count\n") || !strings.Contains(csv, `"'=HYPERLINK(""x"")",1`) {
		t.Errorf("buttons CSV = %d %q", status, csv)
	}
	if _, csv := staff.get(api + "/insight/reports/days?from=" + days[0] + "&to=" + days[2]); !strings.Contains(csv, days[2]+",7,3,2,20.00\n") {
		t.Errorf("days CSV = %q", csv)
	}
	other := f.signIn(hostB, f.owner[f.b.ID], ownerPassword)
	if d := other.must(200, "GET", api+"/insight?from="+days[0]+"&to="+days[2], nil)["days"].([]any); d[2].(map[string]any)["pageviews"] != 0.0 {
		t.Errorf("tenant b sees tenant a's page views: %v", d)
	}
}

// TestBrowserInsight opens the dashboard in headless Chromium with seeded
// events: the chart draws a point per day at the seeded counts, and the
// page is shot at desktop and phone width.
func TestBrowserInsight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	days := seedInsight(f, f.a)
	base := f.listen(t)
	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 90*time.Second, "admin")
	b.Run("sign in", signInActions(base, f.owner[f.a.ID])...)
	b.Run("insight",
		chromedp.Navigate(base+"/admin/insight?from="+days[0]+"&to="+days[2]),
		chromedp.WaitVisible(chromedp.CSS(`#daily-chart`)),
		b.Shot("50-insight"),
	)
	titles, err := chromedp.Run(b.Ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#daily-chart circle.view-dot title')].map(t => t.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{days[0] + ": 5 page views", days[1] + ": 3 page views", days[2] + ": 7 page views"}
	if strings.Join(titles, "|") != strings.Join(want, "|") {
		t.Errorf("chart points %q, want %q", titles, want)
	}
	box, err := chromedp.Run(b.Ctx, chromedp.Evaluate[map[string]float64](`(() => { const r = document.querySelector('#daily-chart polyline.views').getBoundingClientRect(); return {w: r.width, h: r.height}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if box["w"] < 100 || box["h"] < 20 {
		t.Errorf("the page-view line is not drawn: %v", box)
	}
	b.Run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/insight?from="+days[0]+"&to="+days[2]),
		chromedp.WaitVisible(chromedp.CSS(`#daily-chart`)),
		b.Shot("51-insight-phone"),
	)
}
