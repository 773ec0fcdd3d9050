package analytics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/tenant/analytics"
)

// The pool manager is what the app gets in production.
var _ analytics.DB = (*pools.Manager)(nil)

// tenantDBs hands each tenant its own real database, keyed by tenant id;
// it stands in for the pool manager, which opens them from secrets.
type tenantDBs map[int64]*pgxpool.Pool

func (d tenantDBs) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	conn, err := d[t.ID].Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
}

type seed struct {
	accountID, prospectID, emailID, adID int64
	mbCd, prCd, emCd, adCd               string
}

// seedRows creates an account with its member, a prospect and an ad, and
// picks a seeded e-mail template.
func seedRows(t testing.TB, db *pgxpool.Pool) seed {
	t.Helper()
	ctx := context.Background()
	s := seed{mbCd: "MBcode00000000000001", prCd: "PRcode00000000000001", adCd: "ADcode00000000000001"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.QueryRow(ctx, `INSERT INTO account (username, password_hash) VALUES ('ann', 'x') RETURNING id`).Scan(&s.accountID))
	_, err := db.Exec(ctx, `INSERT INTO member (account_id, mb_cd) VALUES ($1, $2)`, s.accountID, s.mbCd)
	must(err)
	must(db.QueryRow(ctx, `INSERT INTO prospect (email, pr_cd) VALUES ('p@example.com', $1) RETURNING id`, s.prCd).Scan(&s.prospectID))
	must(db.QueryRow(ctx, `INSERT INTO ad (ad_type_id, ad_status_id, ad_cd) VALUES (1, 1, $1) RETURNING id`, s.adCd).Scan(&s.adID))
	must(db.QueryRow(ctx, `SELECT id, em_cd FROM email WHERE em_cd IS NOT NULL ORDER BY id LIMIT 1`).Scan(&s.emailID, &s.emCd))
	return s
}

type fixture struct {
	app      *fiber.App
	an       *analytics.App
	on, off  *pgxpool.Pool // tenant databases: logging on, logging off
	seed     seed
	metrics  *prometheus.Registry
	tenantOn *directory.Tenant
	reg      *pgxpool.Pool
	dir      *directory.Directory
}

const (
	hostOn  = "on.analytics.test"
	hostOff = "off.analytics.test"
)

// newFixture builds the app over two real tenant databases; wrap, if
// given, wraps the DB the app gets.
func newFixture(t testing.TB, opts analytics.Options, wrap ...func(analytics.DB) analytics.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	reg := pgtest.NewPool(t, migrations.Platform)
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "anon", Domains: []string{hostOn}})
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "anoff", Domains: []string{hostOff}})
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "example.invalid"})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{on: pgtest.NewPool(t, migrations.Tenant), off: pgtest.NewPool(t, migrations.Tenant),
		metrics: prometheus.NewRegistry(), tenantOn: dir.BySlug("anon"), reg: reg, dir: dir}
	if _, err := f.off.Exec(ctx, `UPDATE clientevent_configuration SET log_client_events = false WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	f.seed = seedRows(t, f.on)
	opts.Pools = tenantDBs{dir.BySlug("anon").ID: f.on, dir.BySlug("anoff").ID: f.off}
	for _, w := range wrap {
		opts.Pools = w(opts.Pools)
	}
	opts.Metrics = f.metrics
	f.an = analytics.New(opts)
	t.Cleanup(func() { f.an.Close(context.Background()) })
	// The access log is not what is measured here.
	f.app = server.New(server.Options{Directory: dir, Log: slog.New(slog.DiscardHandler), Apps: []server.App{f.an}})
	return f
}

func (f *fixture) get(t testing.TB, method, host, target string, hdr ...string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest(method, "http://"+host+target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := f.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), string(b)
}

func (f *fixture) close(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.an.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func count(t testing.TB, db *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEndpointsWriteResolvedRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{FlushInterval: time.Hour})
	s := f.seed
	page := url.QueryEscape("http://localhost:8080/index.html?x=1&y=2")
	id := strconv.FormatInt(s.accountID, 10)

	requests := []struct {
		target string
		hdr    []string
	}{
		{"/clientevent/pageview?client_event_id=" + id + "&anonymous_id=anon:1&url=" + page + "&pageWidth=1280",
			[]string{"X-Forwarded-For", "203.0.113.7, 10.0.0.1", "User-Agent", "TestAgent/1.0"}},
		{"/clientevent/pageview?client_event_id=null&anonymous_id=undefined&url=" + page + "&pageWidth=wide", nil},
		{"/clientevent/pageview?client_event_id=999999&url=" + page + "&pageWidth=12.5", nil},
		{"/clientevent/ajaxerror?client_event_id=" + id + "&anonymous_id=a2&url=" + page + "&error_id=login-login", nil},
		{"/clientevent/ajaxerror?client_event_id=undefined&url=" + page, nil}, // no error_id: recorded as ""
		{"/clientevent/buttonclick?client_event_id=" + id + "&url=" + page + "&button_id=chat-icon", nil},
		{"/clientevent/linkevent?mb_cd=" + s.mbCd + "&pr_cd=" + s.prCd + "&em_cd=" + s.emCd + "&ad_cd=" + s.adCd +
			"&anonymous_id=a3&url=" + page, nil},
		{"/clientevent/linkevent?mb_cd=nope&pr_cd=null&em_cd=undefined&ad_cd=" + strings.Repeat("z", 80) + "&url=" + page, nil},
		// No url: no row.
		{"/clientevent/pageview?client_event_id=" + id + "&pageWidth=1", nil},
		{"/clientevent/buttonclick?button_id=x", nil},
	}
	for _, r := range requests {
		status, ctype, body := f.get(t, "GET", hostOn, r.target, r.hdr...)
		if status != 200 || body != `"thank you"` || ctype != "application/json" {
			t.Fatalf("GET %s: %d %q %q", r.target, status, ctype, body)
		}
	}
	// Other methods answer the same and record nothing.
	for _, m := range []string{"HEAD", "POST", "PUT", "DELETE"} {
		if status, _, _ := f.get(t, m, hostOn, "/clientevent/pageview?url=x"); status != 200 {
			t.Fatalf("%s pageview: %d", m, status)
		}
	}
	f.close(t)

	ctx := context.Background()
	wantURL := "http://localhost:8080/index.html?x=1&y=2"
	type pv struct {
		acc    *int64
		anon   *string
		url    string
		width  *int32
		remote *string
		ua     *string
	}
	rows, err := f.on.Query(ctx, `SELECT account_id, anonymous_id, url, page_width, remote_addr, http_user_agent FROM pageview ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var pvs []pv
	for rows.Next() {
		var p pv
		if err := rows.Scan(&p.acc, &p.anon, &p.url, &p.width, &p.remote, &p.ua); err != nil {
			t.Fatal(err)
		}
		pvs = append(pvs, p)
	}
	if len(pvs) != 3 {
		t.Fatalf("pageview rows = %d, want 3", len(pvs))
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	t.Run("pageview of a member", func(t *testing.T) {
		p := pvs[0]
		if p.acc == nil || *p.acc != s.accountID || str(p.anon) != "anon:1" || p.url != wantURL ||
			p.width == nil || *p.width != 1280 || str(p.remote) != "203.0.113.7, 10.0.0.1" || str(p.ua) != "TestAgent/1.0" {
			t.Errorf("%+v", p)
		}
	})
	t.Run("pageview with null id and odd width", func(t *testing.T) {
		p := pvs[1]
		if p.acc != nil || str(p.anon) != "undefined" || p.width != nil || str(p.remote) != "0.0.0.0" {
			t.Errorf("account %v anon %q width %v remote %q", p.acc, str(p.anon), p.width, str(p.remote))
		}
	})
	t.Run("pageview with unknown user id", func(t *testing.T) {
		if p := pvs[2]; p.acc != nil || p.width != nil {
			t.Errorf("account %v width %v: want NULLs", p.acc, p.width)
		}
	})
	t.Run("ajax errors", func(t *testing.T) {
		var got []string
		rows, _ := f.on.Query(ctx, `SELECT coalesce(account_id::text, 'NULL') || '|' || error_id || '|' || url FROM ajax_error ORDER BY id`)
		for rows.Next() {
			var s string
			rows.Scan(&s)
			got = append(got, s)
		}
		want := []string{id + "|login-login|" + wantURL, "NULL||" + wantURL}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("button click", func(t *testing.T) {
		var acc int64
		var button string
		if err := f.on.QueryRow(ctx, `SELECT account_id, button_id FROM button_click`).Scan(&acc, &button); err != nil ||
			acc != s.accountID || button != "chat-icon" {
			t.Errorf("%d %q %v", acc, button, err)
		}
	})
	t.Run("link events", func(t *testing.T) {
		rows, _ := f.on.Query(ctx, `SELECT account_id, prospect_id, email_id, ad_id, anonymous_id FROM link_event ORDER BY id`)
		var got [][5]any
		for rows.Next() {
			var a, p, e, d *int64
			var anon *string
			rows.Scan(&a, &p, &e, &d, &anon)
			got = append(got, [5]any{a, p, e, d, anon})
		}
		if len(got) != 2 {
			t.Fatalf("rows %d, want 2", len(got))
		}
		r := got[0]
		if *r[0].(*int64) != s.accountID || *r[1].(*int64) != s.prospectID || *r[2].(*int64) != s.emailID ||
			*r[3].(*int64) != s.adID || *r[4].(*string) != "a3" {
			t.Errorf("resolved ids wrong")
		}
		for i, v := range got[1][:4] {
			if v.(*int64) != nil {
				t.Errorf("unknown code %d resolved to %d", i, *v.(*int64))
			}
		}
	})
}

func TestRoot(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{})
	status, _, body := f.get(t, "GET", hostOn, "/clientevent/")
	if status != 200 || body != analytics.RootText {
		t.Errorf("GET /clientevent/: %d %q", status, body)
	}
	if status, _, _ := f.get(t, "GET", hostOn, "/clientevent/pageview/"); status != 404 {
		t.Errorf("trailing slash on a leaf: %d, want 404", status)
	}
}

func TestLoggingOffWritesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{FlushInterval: time.Hour})
	for _, ep := range []string{"pageview", "ajaxerror", "buttonclick", "linkevent"} {
		if status, _, body := f.get(t, "GET", hostOff, "/clientevent/"+ep+"?url=x&error_id=e&button_id=b"); status != 200 || body != `"thank you"` {
			t.Fatalf("%s: %d %q", ep, status, body)
		}
	}
	f.close(t)
	for _, table := range []string{"pageview", "ajax_error", "button_click", "link_event"} {
		if n := count(t, f.off, table); n != 0 {
			t.Errorf("%s has %d rows with logging off", table, n)
		}
	}
}

func TestOddInputNeverFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{FlushInterval: time.Hour})
	// Multi-byte, so a cut by bytes would break UTF-8; sized to stay within
	// the server's header buffer.
	long := strings.Repeat("é", 1001)
	anon := strings.Repeat("é", 101)
	tests := []struct {
		name, target string
		hdr          []string
	}{
		{"over-long everything", "/clientevent/pageview?url=" + url.QueryEscape(long) + "&anonymous_id=" + url.QueryEscape(anon) +
			"&pageWidth=99999999999999&client_event_id=99999999999999999999999",
			[]string{"User-Agent", long, "X-Forwarded-For", strings.Repeat("1.2.3.4, ", 50)}},
		{"invalid UTF-8 and NUL", "/clientevent/ajaxerror?url=%FF%FEabc%00def&error_id=%C3%28&anonymous_id=%00", nil},
		{"raw colons and empty values", "/clientevent/buttonclick?url=&button_id=&anonymous_id=a:b:c:d&client_event_id=", nil},
		{"over-long label", "/clientevent/buttonclick?url=x&button_id=" + strings.Repeat("b", 500), nil},
		{"negative width and id", "/clientevent/pageview?url=x&pageWidth=-5&client_event_id=-1", nil},
		{"repeated parameters", "/clientevent/linkevent?url=a&url=b&mb_cd=1&mb_cd=2", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := f.get(t, "GET", hostOn, tc.target, tc.hdr...)
			if status != 200 || body != `"thank you"` {
				t.Fatalf("%d %q", status, body)
			}
		})
	}
	f.close(t)
	ctx := context.Background()
	var urlLen, anonLen, uaLen, remoteLen int
	var width *int32
	if err := f.on.QueryRow(ctx, `SELECT char_length(url), char_length(anonymous_id), char_length(http_user_agent),
		char_length(remote_addr), page_width FROM pageview WHERE page_width IS NULL`).Scan(&urlLen, &anonLen, &uaLen, &remoteLen, &width); err != nil {
		t.Fatal(err)
	}
	if urlLen != 1000 || anonLen != 100 || uaLen != 1000 || remoteLen != 100 {
		t.Errorf("lengths url %d anon %d ua %d remote %d: want cut to 1000/100/1000/100", urlLen, anonLen, uaLen, remoteLen)
	}
	want := map[string]int{"pageview": 2, "ajax_error": 1, "button_click": 2, "link_event": 1}
	for table, n := range want {
		if got := count(t, f.on, table); got != n {
			t.Errorf("%s: %d rows, want %d", table, got, n)
		}
	}
	var label string
	if err := f.on.QueryRow(ctx, `SELECT error_id FROM ajax_error`).Scan(&label); err != nil || label != "\uFFFD(" {
		t.Errorf("error_id %q, %v", label, err)
	}
}

func TestCloseFlushesEverything(t *testing.T) {
	t.Parallel()
	// Nothing would flush before Close: hour-long interval, huge batches.
	f := newFixture(t, analytics.Options{FlushInterval: time.Hour, BatchSize: 100000})
	const n = 750
	for i := range n {
		f.get(t, "GET", hostOn, "/clientevent/buttonclick?button_id=b&url=u"+strconv.Itoa(i))
	}
	if got := count(t, f.on, "button_click"); got != 0 {
		t.Fatalf("%d rows before Close: the test would not show Close flushing", got)
	}
	f.close(t)
	if got := count(t, f.on, "button_click"); got != n {
		t.Errorf("after Close: %d rows, want %d", got, n)
	}
	// After Close nothing is accepted, and nothing fails.
	if status, _, _ := f.get(t, "GET", hostOn, "/clientevent/buttonclick?button_id=b&url=late"); status != 200 {
		t.Errorf("beacon after Close: %d", status)
	}
}

func TestBatchesFlushWithoutClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{FlushInterval: 10 * time.Millisecond, BatchSize: 50})
	for i := range 120 {
		f.get(t, "GET", hostOn, "/clientevent/pageview?url=u"+strconv.Itoa(i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for count(t, f.on, "pageview") < 120 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 120 rows written by the background flusher", count(t, f.on, "pageview"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFullBufferDrops(t *testing.T) {
	t.Parallel()
	f := newFixture(t, analytics.Options{FlushInterval: time.Hour, BatchSize: 1000, BufferSize: 10})
	for i := range 25 {
		status, _, _ := f.get(t, "GET", hostOn, "/clientevent/pageview?url=u"+strconv.Itoa(i))
		if status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	f.close(t)
	if got := count(t, f.on, "pageview"); got != 10 {
		t.Errorf("rows %d, want the 10 that fitted", got)
	}
	if got := counter(t, f.metrics, "swa_clientevent_dropped_total"); got != 15 {
		t.Errorf("dropped metric %v, want 15", got)
	}
}

func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
