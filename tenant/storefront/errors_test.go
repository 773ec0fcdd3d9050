package storefront_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A refused CSRF check and a failure past every check answer the shop's
// own error page on its pages, status kept and the cause not told, while
// the API's paths keep their JSON error exactly.
func TestErrorPagesOnPages(t *testing.T) {
	e := newEnv(t)
	a, b := e.client(t, hostA), e.client(t, hostB)
	a.get("/login") // the csrftoken cookie

	panicking := func(c *client, method, path string) page {
		t.Helper()
		form := url.Values{"csrfmiddlewaretoken": {c.cookie("csrftoken")}}
		req, _ := http.NewRequest(method, c.url(path), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(panicHeader, "secret-internal-detail")
		return c.do(req)
	}
	forged := url.Values{"csrfmiddlewaretoken": {"forged"}, "username": {"x"}, "password": {"y"}}
	for _, tc := range []struct {
		name   string
		p      page
		status int
		want   []string
	}{
		{"csrf refused on a form", a.post("/login", forged), http.StatusForbidden, []string{brandA.ShopName, "Please try again"}},
		{"panic on a page", panicking(a, http.MethodGet, "/cart"), http.StatusInternalServerError, []string{brandA.ShopName, "Something went wrong"}},
		{"panic on another tenant's page", panicking(b, http.MethodGet, "/products"), http.StatusInternalServerError, []string{"Beta &lt;Binders&gt;", "Something went wrong"}},
		{"panic on a form", panicking(a, http.MethodPost, "/contact"), http.StatusInternalServerError, []string{brandA.ShopName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.p.status != tc.status {
				t.Fatalf("status %d, want %d: %s", tc.p.status, tc.status, snippet(tc.p.body))
			}
			if ct := tc.p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("Content-Type %q, want HTML: %s", ct, snippet(tc.p.body))
			}
			mustContain(t, tc.p, tc.want...)
			for _, leak := range []string{"secret-internal-detail", "panic", "csrf_failed", "CSRF verification", "goroutine", `"error"`} {
				if strings.Contains(tc.p.body, leak) {
					t.Errorf("page tells %q", leak)
				}
			}
			if csp := tc.p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("CSP %q", csp)
			}
			if cc := tc.p.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}

	// A browser asking for a page nobody serves gets the shop's not-found
	// page; a client asking for JSON, and the API's paths, keep the JSON 404.
	browse := func(c *client, path, accept string) page {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, c.url(path), nil)
		req.Header.Set("Accept", accept)
		return c.do(req)
	}
	const html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	if p := browse(b, "/no-such-page", html); p.status != http.StatusNotFound || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(p.body, "Beta &lt;Binders&gt;") {
		t.Errorf("unknown page for a browser: %d %s %s", p.status, p.header.Get("Content-Type"), snippet(p.body))
	}
	for _, tc := range []struct{ path, accept string }{
		{"/no-such-page", "application/json"}, {"/user/no-such-endpoint", html}, {"/admin/api/v1/nope", html},
	} {
		if p := browse(a, tc.path, tc.accept); p.status != http.StatusNotFound || !strings.HasPrefix(p.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s (Accept %s): %d %s, want the JSON 404", tc.path, tc.accept, p.status, p.header.Get("Content-Type"))
		}
	}

	// The API keeps its JSON contract on the same failures.
	for _, tc := range []struct {
		name   string
		p      page
		status int
		code   string
	}{
		{"csrf refused on the API", a.post("/user/login", forged), http.StatusForbidden, "csrf_failed"},
		{"panic on the API", panicking(a, http.MethodGet, "/user/logged-in"), http.StatusInternalServerError, "server-error"},
		{"panic on the back office", panicking(a, http.MethodGet, "/admin/api/v1/dashboard"), http.StatusInternalServerError, "server-error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out map[string]any
			if err := json.Unmarshal([]byte(tc.p.body), &out); err != nil || tc.p.status != tc.status || out["error"] != tc.code {
				t.Fatalf("%d %s, want %d with error %q", tc.p.status, snippet(tc.p.body), tc.status, tc.code)
			}
			if ct := tc.p.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
}
