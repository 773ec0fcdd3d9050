package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/logtest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/server"
)

// probe is a test app that reports what the server told it.
type probe struct{}

func (probe) Mount(r fiber.Router) {
	r.Get("/whoami", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{
			"tenant":     server.Tenant(c).Slug,
			"client_ip":  server.ClientIP(c),
			"https":      server.IsHTTPS(c),
			"request_id": server.RequestID(c),
		})
	})
	r.Get("/items/:id", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"id": c.Params("id")}) })
	r.Post("/items", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"ok": true}) })
	r.Get("/forbidden", func(c *fiber.Ctx) error { return server.Fail(c, http.StatusForbidden, "forbidden", "no") })
	r.Get("/panic", func(c *fiber.Ctx) error { panic("secret detail") })
	r.Get("/error", func(c *fiber.Ctx) error { return errors.New("db password=hunter2 rejected") })
}

type fixture struct {
	dir  *directory.Directory
	logs *logtest.Buffer
	reg  *prometheus.Registry
}

// newFixture loads a registry with tenants of every status.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	db := pgtest.NewPool(t, migrations.Platform)
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme", Domains: []string{"shop.acme.test"},
		Origins: []string{"https://www.acme.test", "http://localhost:8080", "https://*.acme-shops.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "beta", Domains: []string{"beta.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "sleepy", Status: "suspended", Domains: []string{"sleepy.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "gone", Status: "deleted", Domains: []string{"gone.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "newbie", Status: "provisioning"})
	d := directory.New(directory.Options{DB: db, BaseDomain: "swa.test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: d, logs: &logtest.Buffer{}, reg: prometheus.NewRegistry()}
}

func (f *fixture) app(trusted []string, mw ...fiber.Handler) *fiber.App {
	return server.New(server.Options{
		Directory:      f.dir,
		Log:            slog.New(slog.NewJSONHandler(f.logs, nil)),
		Metrics:        f.reg,
		TrustedProxies: trusted,
		Env:            "production",
		Middleware:     mw,
		Apps:           []server.App{probe{}},
	})
}

// with is a server on the fixture's directory and log with the options o
// sets besides.
func (f *fixture) with(o server.Options) *fiber.App {
	o.Directory = f.dir
	o.Log = slog.New(slog.NewJSONHandler(f.logs, nil))
	return server.New(o)
}

// serve runs app on a loopback listener, so requests come from 127.0.0.1.
func serve(t *testing.T, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String()
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, base, method, path string, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return a
}

func test(t *testing.T, app *fiber.App, req *http.Request) answer {
	t.Helper()
	resp, err := app.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("body is not JSON: %q", raw)
		}
	}
	return a
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The same loopback peer is a trusted proxy for one server and a
	// stranger for the other.
	trusting := serve(t, f.app([]string{"127.0.0.1", "10.0.0.0/8"}))
	distrusting := serve(t, f.app([]string{"10.0.0.0/8", "::1"}))

	tests := []struct {
		name    string
		base    string
		host    string
		fwdHost string
		status  int
		tenant  string
		code    string
	}{
		{"custom domain", distrusting, "shop.acme.test", "", 200, "acme", ""},
		{"slug subdomain", distrusting, "beta.swa.test", "", 200, "beta", ""},
		{"host with port", distrusting, "shop.acme.test:8443", "", 200, "acme", ""},
		{"uppercase host", distrusting, "SHOP.ACME.Test", "", 200, "acme", ""},
		{"unknown host", distrusting, "nobody.test", "", 404, "", "not-found"},
		{"unknown slug", distrusting, "nobody.swa.test", "", 404, "", "not-found"},
		{"suspended", distrusting, "sleepy.test", "", 503, "", "tenant-suspended"},
		{"suspended slug host", distrusting, "sleepy.swa.test", "", 503, "", "tenant-suspended"},
		{"deleted", distrusting, "gone.test", "", 404, "", "not-found"},
		{"provisioning", distrusting, "newbie.swa.test", "", 404, "", "not-found"},
		{"bare address", distrusting, "127.0.0.1", "", 404, "", "not-found"},
		{"spoofed forwarded host from untrusted peer", distrusting, "beta.test", "shop.acme.test", 200, "beta", ""},
		{"spoofed forwarded host to a suspended tenant", distrusting, "beta.test", "sleepy.test", 200, "beta", ""},
		{"spoofed forwarded host on unknown host", distrusting, "nobody.test", "shop.acme.test", 404, "", "not-found"},
		{"forwarded host from trusted proxy", trusting, "internal-lb", "shop.acme.test", 200, "acme", ""},
		{"forwarded host list from trusted proxy", trusting, "internal-lb", "beta.test, shop.acme.test", 200, "beta", ""},
		{"forwarded host from trusted proxy to suspended", trusting, "shop.acme.test", "sleepy.test", 503, "", "tenant-suspended"},
		{"trusted proxy without forwarded host", trusting, "beta.swa.test", "", 200, "beta", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := map[string]string{"Host": tc.host}
			if tc.fwdHost != "" {
				h["X-Forwarded-Host"] = tc.fwdHost
			}
			a := do(t, tc.base, "GET", "/whoami", h)
			if a.status != tc.status {
				t.Fatalf("status = %d, want %d (%s)", a.status, tc.status, a.raw)
			}
			if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			if tc.tenant != "" && a.body["tenant"] != tc.tenant {
				t.Errorf("served by %v, want %s", a.body["tenant"], tc.tenant)
			}
			if tc.code != "" && (a.body["error"] != tc.code || a.body["detail"] == "") {
				t.Errorf("body = %s, want error %q with a detail", a.raw, tc.code)
			}
		})
	}
}

func TestClientIPAndHTTPS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	trusting := serve(t, f.app([]string{"127.0.0.1", "10.0.0.0/8"}))
	distrusting := serve(t, f.app(nil))
	tests := []struct {
		name  string
		base  string
		xff   string
		proto string
		ip    string
		https bool
	}{
		{"untrusted peer ignores forwarded for", distrusting, "1.2.3.4", "https", "127.0.0.1", false},
		{"trusted peer without header", trusting, "", "", "127.0.0.1", false},
		{"trusted peer one hop", trusting, "1.2.3.4", "https", "1.2.3.4", true},
		{"client-supplied hops left of the proxy are ignored", trusting, "6.6.6.6, 1.2.3.4", "", "1.2.3.4", false},
		{"trusted inner proxies are skipped", trusting, "6.6.6.6, 1.2.3.4, 10.1.2.3, 10.0.0.9", "http", "1.2.3.4", false},
		{"garbled hop stops the walk", trusting, "1.2.3.4, nonsense, 10.0.0.9", "", "10.0.0.9", false},
		{"ipv6 client", trusting, "2001:db8::1", "", "2001:db8::1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := map[string]string{"Host": "beta.test"}
			if tc.xff != "" {
				h["X-Forwarded-For"] = tc.xff
			}
			if tc.proto != "" {
				h["X-Forwarded-Proto"] = tc.proto
			}
			a := do(t, tc.base, "GET", "/whoami", h)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			if a.body["client_ip"] != tc.ip {
				t.Errorf("ClientIP = %v, want %s", a.body["client_ip"], tc.ip)
			}
			if a.body["https"] != tc.https {
				t.Errorf("IsHTTPS = %v, want %v", a.body["https"], tc.https)
			}
			if hsts := a.header.Get("Strict-Transport-Security"); (hsts != "") != tc.https {
				t.Errorf("HSTS = %q with https=%v", hsts, tc.https)
			} else if tc.https && hsts != "max-age=31536000; includeSubDomains; preload" {
				t.Errorf("HSTS = %q", hsts)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	forbidder := func(c *fiber.Ctx) error {
		if c.Get("X-Forbid") != "" {
			return server.Fail(c, http.StatusForbidden, "csrf", "CSRF check failed")
		}
		return c.Next()
	}
	app := f.app(nil, forbidder)
	const allowed = "https://www.acme.test"
	tests := []struct {
		name   string
		method string
		path   string
		origin string
		extra  map[string]string
		status int
		cors   bool
	}{
		{"ok", "GET", "/whoami", allowed, nil, 200, true},
		{"second origin", "GET", "/whoami", "http://localhost:8080", nil, 200, true},
		{"unknown path", "GET", "/nothing", allowed, nil, 404, true},
		{"trailing slash", "GET", "/whoami/", allowed, nil, 404, true},
		{"wrong method", "DELETE", "/whoami", allowed, nil, 405, true},
		{"middleware 403", "POST", "/items", allowed, map[string]string{"X-Forbid": "1"}, 403, true},
		{"handler 403", "GET", "/forbidden", allowed, nil, 403, true},
		{"panic 500", "GET", "/panic", allowed, nil, 500, true},
		{"error 500", "GET", "/error", allowed, nil, 500, true},
		{"disallowed origin", "GET", "/whoami", "https://evil.test", nil, 200, false},
		{"origin of another tenant", "GET", "/whoami", "https://beta.test", nil, 200, false},
		{"origin differing in scheme", "GET", "/whoami", "http://www.acme.test", nil, 200, false},
		{"disallowed origin on 500", "GET", "/panic", "https://evil.test", nil, 500, false},
		{"no origin", "GET", "/whoami", "", nil, 200, false},
		{"wildcard origin, subdomain", "GET", "/whoami", "https://eu.acme-shops.test", nil, 200, true},
		{"wildcard origin, deeper subdomain", "GET", "/whoami", "https://a.eu.acme-shops.test", nil, 200, true},
		{"wildcard origin on 403", "POST", "/items", "https://eu.acme-shops.test", map[string]string{"X-Forbid": "1"}, 403, true},
		{"wildcard origin, bare domain", "GET", "/whoami", "https://acme-shops.test", nil, 200, false},
		{"wildcard origin, suffix trick", "GET", "/whoami", "https://evilacme-shops.test", nil, 200, false},
		{"wildcard origin, other scheme", "GET", "/whoami", "http://eu.acme-shops.test", nil, 200, false},
		{"wildcard origin, other port", "GET", "/whoami", "https://eu.acme-shops.test:8443", nil, 200, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, "http://shop.acme.test"+tc.path, nil)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			for k, v := range tc.extra {
				req.Header.Set(k, v)
			}
			a := test(t, app, req)
			if a.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", a.status, tc.status, a.raw)
			}
			acao, acac := a.header.Get("Access-Control-Allow-Origin"), a.header.Get("Access-Control-Allow-Credentials")
			if tc.cors && (acao != tc.origin || acac != "true") {
				t.Errorf("ACAO=%q ACAC=%q, want %q and true", acao, acac, tc.origin)
			}
			if !tc.cors && (acao != "" || acac != "") {
				t.Errorf("ACAO=%q ACAC=%q for a disallowed origin", acao, acac)
			}
			if v := a.header.Get("Vary"); v != "Origin" {
				t.Errorf("Vary = %q", v)
			}
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
				"Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin",
			} {
				if got := a.header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if a.header.Get("Strict-Transport-Security") != "" {
				t.Errorf("HSTS on plain HTTP")
			}
			if tc.status >= 400 && (a.body["error"] == nil || a.body["detail"] == nil) {
				t.Errorf("error body = %s", a.raw)
			}
			if strings.Contains(a.raw, "secret detail") || strings.Contains(a.raw, "hunter2") || strings.Contains(a.raw, "goroutine") {
				t.Errorf("internal detail leaked: %s", a.raw)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reached := false
	app := f.app(nil, func(c *fiber.Ctx) error { reached = true; return c.Next() })
	tests := []struct {
		name   string
		path   string
		origin string
		cors   bool
	}{
		{"allowed origin, routed path", "/items", "https://www.acme.test", true},
		{"allowed origin, unknown path", "/user/login", "https://www.acme.test", true},
		{"disallowed origin", "/items", "https://evil.test", false},
		{"wildcard origin", "/items", "https://eu.acme-shops.test", true},
		{"wildcard pattern, bare domain", "/items", "https://acme-shops.test", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("OPTIONS", "http://shop.acme.test"+tc.path, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "x-csrftoken")
			a := test(t, app, req)
			if a.status != 200 || a.raw != "" || a.header.Get("Content-Length") != "0" {
				t.Fatalf("status %d, Content-Length %q, body %q", a.status, a.header.Get("Content-Length"), a.raw)
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      tc.origin,
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Headers":     "accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with",
				"Access-Control-Allow-Methods":     "DELETE, GET, OPTIONS, PATCH, POST, PUT",
				"Access-Control-Max-Age":           "86400",
				"Vary":                             "Origin",
			}
			for k, v := range want {
				got := a.header.Get(k)
				if !tc.cors && k != "Vary" {
					v = ""
				}
				if got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if reached {
		t.Errorf("a preflight reached the session/CSRF middleware")
	}
	// An OPTIONS without Access-Control-Request-Method is not a preflight.
	req := httptest.NewRequest("OPTIONS", "http://shop.acme.test/items", nil)
	if a := test(t, app, req); a.status != 405 {
		t.Errorf("plain OPTIONS status = %d, want 405", a.status)
	}
}

func TestAccessLogAndMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var seen *directory.Tenant
	app := f.app(nil, func(c *fiber.Ctx) error { seen = server.Tenant(c); return c.Next() })

	for _, r := range []struct{ host, path string }{
		{"shop.acme.test", "/items/42"}, {"shop.acme.test", "/items/43"}, {"shop.acme.test", "/nowhere"},
		{"shop.acme.test", "/panic"}, {"nobody.test", "/items/1"},
	} {
		test(t, app, httptest.NewRequest("GET", "http://"+r.host+r.path, nil))
	}
	if seen == nil || seen.Slug != "acme" {
		t.Fatalf("middleware saw tenant %v", seen)
	}

	var access []map[string]any
	var panics []map[string]any
	for _, rec := range f.logs.Records(t) {
		switch rec["msg"] {
		case "request":
			access = append(access, rec)
		case "request failed":
			panics = append(panics, rec)
		}
	}
	type line struct {
		tenant, route string
		status        float64
	}
	want := []line{{"acme", "/items/:id", 200}, {"acme", "/items/:id", 200}, {"acme", "unmatched", 404},
		{"acme", "/panic", 500}, {"", "unmatched", 404}}
	if len(access) != len(want) {
		t.Fatalf("%d access records, want %d: %v", len(access), len(want), access)
	}
	ids := map[any]bool{}
	for i, rec := range access {
		got := line{rec["tenant"].(string), rec["route"].(string), rec["status"].(float64)}
		if got != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, got, want[i])
		}
		for _, k := range []string{"request_id", "method", "duration_ms", "bytes"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("record %d lacks %s", i, k)
			}
		}
		ids[rec["request_id"]] = true
	}
	if len(ids) != len(access) {
		t.Errorf("request ids not unique: %v", ids)
	}
	if len(panics) != 1 || panics[0]["tenant"] != "acme" || panics[0]["request_id"] != access[3]["request_id"] ||
		!strings.Contains(panics[0]["stack"].(string), "server_test") {
		t.Errorf("panic record = %v", panics)
	}

	if got := counter(t, f.reg, "swa_http_requests_total", map[string]string{"resolved": "true", "route": "/items/:id", "status": "200"}); got != 2 {
		t.Errorf("requests{/items/:id,200} = %v, want 2", got)
	}
	if got := counter(t, f.reg, "swa_http_requests_total", map[string]string{"resolved": "false", "route": "unmatched", "status": "404"}); got != 1 {
		t.Errorf("requests{unmatched,404} = %v, want 1", got)
	}
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "swa_http_request_duration_seconds" && len(mf.GetMetric()) != 3 {
			t.Errorf("latency series = %d, want 3 routes", len(mf.GetMetric()))
		}
	}
}

// counter returns the value of the series of name with exactly labels.
func counter(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
