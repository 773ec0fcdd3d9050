package csrf_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
)

const (
	hostA = "a.csrf.test"
	hostB = "b.csrf.test"
)

type mount func(r fiber.Router)

func (m mount) Mount(r fiber.Router) { m(r) }

func routes(r fiber.Router) {
	r.Get("/token", func(c *fiber.Ctx) error { return c.SendString(csrf.Ensure(c)) })
	r.Get("/rotate", func(c *fiber.Ctx) error { return c.SendString(csrf.Rotate(c)) })
	for _, p := range []string{"/action", "/order/stripe-webhook", "/admin/api/v1/session", "/admin"} {
		r.All(p, func(c *fiber.Ctx) error { return c.SendString("done") })
	}
}

// newApp serves two tenants with their own session keys from a real
// secrets store; the app trusts the test peer as a proxy.
func newApp(t *testing.T) *fiber.App {
	t.Helper()
	ctx := context.Background()
	reg := pgtest.NewPool(t, migrations.Platform)
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "ca", Domains: []string{hostA},
		Origins: []string{"http://front.a.test", "https://*.trusted.test"}})
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "cb", Domains: []string{hostB},
		Settings: directory.Settings{CookieDomain: ".csrf.test"}})
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "example.invalid"})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	store, err := secrets.NewLocal(reg, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	for i, slug := range []string{"ca", "cb"} {
		key := make([]byte, 32)
		key[0] = byte(i + 1)
		b := secrets.TenantBundle{DBPassword: "x", SessionKey: base64.StdEncoding.EncodeToString(key)}
		if _, err := secrets.SaveBundle(ctx, store, secrets.TenantSecretName(slug), b); err != nil {
			t.Fatal(err)
		}
	}
	mw := csrf.Middleware(csrf.Options{Key: csrf.BundleKey(store, 0), Exempt: []string{"/order/stripe-webhook"},
		ExemptPrefixes: []string{"/admin/"}})
	return server.New(server.Options{Directory: dir, TrustedProxies: []string{"0.0.0.0"},
		Middleware: []fiber.Handler{mw}, Apps: []server.App{mount(routes)}})
}

type req struct {
	method, host, path string
	cookie             string // csrftoken cookie value
	header             map[string]string
	form               url.Values
}

type resp struct {
	status int
	body   string
	cookie *http.Cookie
	raw    string
}

func send(t *testing.T, app *fiber.App, r req) resp {
	t.Helper()
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	hr := httptest.NewRequest(r.method, "http://"+r.host+r.path, body)
	if r.form != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: csrf.CookieName, Value: r.cookie})
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := app.Test(hr, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, body: string(b)}
	for _, raw := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(raw, csrf.CookieName+"=") {
			out.raw = raw
			out.cookie, _ = http.ParseSetCookie(raw)
		}
	}
	return out
}

func token(t *testing.T, app *fiber.App, host string) string {
	t.Helper()
	r := send(t, app, req{method: http.MethodGet, host: host, path: "/token"})
	if r.status != 200 || r.cookie == nil || r.cookie.Value != r.body {
		t.Fatalf("GET /token: %d %q cookie %q", r.status, r.body, r.raw)
	}
	return r.body
}

func TestCheck(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	tokA := token(t, app, hostA)
	tokA2 := token(t, app, hostA)
	tokB := token(t, app, hostB)
	h := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	https := "X-Forwarded-Proto"
	tests := []struct {
		name string
		r    req
		want int
	}{
		{"GET is not checked", req{method: "GET", path: "/action"}, 200},
		{"HEAD is not checked", req{method: "HEAD", path: "/action"}, 200},
		{"missing cookie", req{method: "POST", path: "/action", header: h(csrf.HeaderName, tokA)}, 403},
		{"missing header", req{method: "POST", path: "/action", cookie: tokA}, 403},
		{"header and cookie differ", req{method: "POST", path: "/action", cookie: tokA, header: h(csrf.HeaderName, tokA2)}, 403},
		{"valid double submit", req{method: "POST", path: "/action", cookie: tokA, header: h(csrf.HeaderName, tokA)}, 200},
		{"PUT is checked", req{method: "PUT", path: "/action", cookie: tokA}, 403},
		{"PATCH is checked", req{method: "PATCH", path: "/action"}, 403},
		{"DELETE is checked", req{method: "DELETE", path: "/action"}, 403},
		{"valid DELETE", req{method: "DELETE", path: "/action", cookie: tokA, header: h(csrf.HeaderName, tokA)}, 200},
		{"form field instead of header", req{method: "POST", path: "/action", cookie: tokA,
			form: url.Values{csrf.FormField: {tokA}}}, 200},
		{"wrong form field", req{method: "POST", path: "/action", cookie: tokA,
			form: url.Values{csrf.FormField: {tokA2}}}, 403},
		{"foreign Origin", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "http://evil.test")}, 403},
		{"Origin null", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "null")}, 403},
		{"trusted Origin", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "http://front.a.test")}, 200},
		{"trusted Origin, wrong scheme", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://front.a.test")}, 403},
		{"wildcard trusted Origin", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://shop.trusted.test")}, 200},
		{"wildcard does not match the bare domain", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://trusted.test")}, 403},
		{"wildcard does not match a suffix lookalike", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://eviltrusted.test")}, 403},
		{"wildcard deeper subdomain", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://a.b.trusted.test")}, 200},
		{"wildcard, other scheme", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "http://shop.trusted.test")}, 403},
		{"wildcard, other port", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://shop.trusted.test:8443")}, 403},
		{"wildcard, domain under another", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://trusted.test.evil.test")}, 403},
		{"HTTPS wildcard Referer, bare domain", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, https, "https", "Referer", "https://trusted.test/cart")}, 403},
		{"own origin", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "http://"+hostA)}, 200},
		{"own origin over HTTPS", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "https://"+hostA, https, "https")}, 200},
		{"http origin on an HTTPS request", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, "Origin", "http://"+hostA, https, "https")}, 403},
		{"valid token, no Origin, plain HTTP: no Referer needed", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA)}, 200},
		{"HTTPS without Origin or Referer", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, https, "https")}, 403},
		{"HTTPS same-origin Referer", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, https, "https", "Referer", "https://"+hostA+"/account")}, 200},
		{"HTTPS trusted Referer", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, https, "https", "Referer", "https://www.trusted.test/cart?x=1")}, 200},
		{"HTTPS insecure Referer", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, https, "https", "Referer", "http://"+hostA+"/account")}, 403},
		{"HTTPS foreign Referer", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, https, "https", "Referer", "https://evil.test/")}, 403},
		{"HTTPS garbage Referer", req{method: "POST", path: "/action", cookie: tokA,
			header: h(csrf.HeaderName, tokA, https, "https", "Referer", "::not a url")}, 403},
		{"exempt path", req{method: "POST", path: "/order/stripe-webhook"}, 200},
		{"exempt means exact path", req{method: "POST", path: "/order/stripe-webhook/x"}, 403},
		{"exempt prefix", req{method: "POST", path: "/admin/api/v1/session"}, 200},
		{"exempt prefix means the whole prefix", req{method: "POST", path: "/admin"}, 403},
		{"token of tenant B on tenant A", req{method: "POST", path: "/action", cookie: tokB,
			header: h(csrf.HeaderName, tokB)}, 403},
		{"well-formed token never issued", req{method: "POST", path: "/action", cookie: strings.Repeat("Ab1", 10) + "xy",
			header: h(csrf.HeaderName, strings.Repeat("Ab1", 10)+"xy")}, 403},
		{"token of tenant A on tenant B", req{method: "POST", host: hostB, path: "/action",
			cookie: tokA, header: h(csrf.HeaderName, tokA)}, 403},
		{"tenant B's own token", req{method: "POST", host: hostB, path: "/action",
			cookie: tokB, header: h(csrf.HeaderName, tokB)}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.r.host == "" {
				tc.r.host = hostA
			}
			r := send(t, app, tc.r)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.want, r.body)
			}
			if tc.want == 403 {
				var e struct{ Error, Detail string }
				if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error != "csrf_failed" {
					t.Errorf("403 body %q: want error csrf_failed", r.body)
				}
			}
		})
	}
}

func TestEnsureAndRotate(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	first := send(t, app, req{method: "GET", host: hostA, path: "/token"})
	tok := first.body
	c := first.cookie
	if c == nil {
		t.Fatal("no cookie")
	}
	if len(tok) != 32 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("token %q: want 32 chars [A-Za-z0-9]", tok)
	}
	if c.HttpOnly || c.MaxAge != csrf.CookieMaxAge || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.Domain != "" {
		t.Errorf("cookie %q: want not HttpOnly, Max-Age=31449600, SameSite=Lax, Path=/, not Secure, host-only", first.raw)
	}

	tests := []struct {
		name   string
		r      req
		sameAs string // "" means: must differ from the presented cookie
		secure bool
		domain string
	}{
		{"valid cookie is kept and re-sent", req{method: "GET", host: hostA, path: "/token", cookie: tok}, tok, false, ""},
		{"rotate mints a new one", req{method: "GET", host: hostA, path: "/rotate", cookie: tok}, "", false, ""},
		{"foreign cookie is replaced", req{method: "GET", host: hostB, path: "/token", cookie: tok}, "", false, "csrf.test"},
		{"garbage cookie is replaced", req{method: "GET", host: hostA, path: "/token", cookie: "x"}, "", false, ""},
		{"Secure over HTTPS", req{method: "GET", host: hostA, path: "/token", cookie: tok,
			header: map[string]string{"X-Forwarded-Proto": "https"}}, tok, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, app, tc.r)
			if r.cookie == nil || r.cookie.Value != r.body || len(r.body) != 32 {
				t.Fatalf("body %q cookie %q", r.body, r.raw)
			}
			if tc.sameAs != "" && r.body != tc.sameAs {
				t.Errorf("token changed: %q -> %q", tc.sameAs, r.body)
			}
			if tc.sameAs == "" && r.body == tc.r.cookie {
				t.Errorf("token kept: %q", r.body)
			}
			if r.cookie.Secure != tc.secure || strings.TrimPrefix(r.cookie.Domain, ".") != tc.domain {
				t.Errorf("cookie %q: want Secure=%v Domain=%q", r.raw, tc.secure, tc.domain)
			}
			if r.cookie.MaxAge != csrf.CookieMaxAge {
				t.Errorf("cookie %q: expiry not refreshed", r.raw)
			}
		})
	}

	// A rotated token works, and so does the previous one for the pages still
	// holding it (double submit only compares cookie and header).
	rot := send(t, app, req{method: "GET", host: hostA, path: "/rotate"}).body
	if r := send(t, app, req{method: "POST", host: hostA, path: "/action", cookie: rot,
		header: map[string]string{csrf.HeaderName: rot}}); r.status != 200 {
		t.Errorf("rotated token refused: %d %s", r.status, r.body)
	}
}
