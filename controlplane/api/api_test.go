package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/controlplane/signup"
	"github.com/startupwebapp/platform/platform/tenancy"
	"github.com/startupwebapp/platform/platform/usage"
)

// bareServer has the routes but no database: enough to compare routes.
func bareServer() *Server {
	s := &Server{log: slog.New(slog.DiscardHandler), opts: Options{BodyLimit: 1 << 20}}
	s.mount()
	return s
}

var fiberParamRE = regexp.MustCompile(`:([a-zA-Z_]+)`)

// mountedRoutes lists "METHOD /path" with OpenAPI-style {params}.
func mountedRoutes(app *fiber.App) []string {
	var out []string
	for _, r := range app.GetRoutes(true) {
		if r.Method == http.MethodHead {
			continue // Fiber adds HEAD to every GET
		}
		out = append(out, r.Method+" "+fiberParamRE.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q, want 3.1.x", doc.OpenAPI)
	}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}
	var documented []string
	for path, item := range doc.Paths {
		for m := range item {
			if methods[m] {
				documented = append(documented, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(documented)
	mounted := mountedRoutes(bareServer().App())
	if len(mounted) < 25 {
		t.Fatalf("only %d routes mounted: %v", len(mounted), mounted)
	}
	for _, r := range mounted {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is mounted but not in openapi.json", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(mounted, r) {
			t.Errorf("openapi.json documents %s, which is not mounted", r)
		}
	}
}

// concrete fills a route's parameters with plausible values.
func concrete(route string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	r := strings.NewReplacer("{slug}", "acme", "{hostname}", "shop.example.com",
		"{origin}", url.PathEscape("http://localhost:8080"), "{id}", "1")
	path = r.Replace(path)
	if strings.HasPrefix(path, "/v1/operations/") {
		path = "/v1/operations/5b0b0a0e-5d8c-4a8e-9b43-7d2d3c3e1f00"
	}
	return method, path
}

func TestAuthRequiredOnEveryRoute(t *testing.T) {
	t.Parallel()
	// Every wrong token below comes from its own address, through a trusted
	// proxy (Fiber's test connection is 0.0.0.0), so none is throttled.
	h := newHarnessAPI(t, nil, func(o *Options) { o.TrustedProxies = []string{"0.0.0.0"} })
	client := 0
	// A token that worked, then was revoked.
	var created tokenCreated
	h.must(http.StatusCreated, "POST", "/v1/tokens", `{"name":"soon revoked"}`).decode(t, &created)
	h.must(http.StatusOK, "GET", "/v1/tenants", "")
	h.must(http.StatusNoContent, "DELETE", "/v1/tokens/"+strconv.FormatInt(created.ID, 10), "")

	routes := mountedRoutes(h.srv.App())
	tokens := []struct{ name, header string }{
		{"no token", ""},
		{"wrong token", "Bearer swa_not-a-real-token-at-all"},
		{"revoked token", "Bearer " + created.Token},
		{"basic scheme", "Basic " + h.token},
		{"empty bearer", "Bearer "},
	}
	for _, route := range routes {
		if route == "GET /healthz" {
			continue
		}
		for _, tok := range tokens {
			t.Run(route+"/"+tok.name, func(t *testing.T) {
				method, path := concrete(route)
				req, _ := http.NewRequest(method, path, strings.NewReader(`{}`))
				client++
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.18.%d.%d", client/256, client%256))
				if tok.header != "" {
					req.Header.Set("Authorization", tok.header)
				}
				res, err := h.srv.App().Test(req, 10_000)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if res.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", res.StatusCode)
				}
				if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate %q, want Bearer ...", got)
				}
				var b errorBody
				if err := json.NewDecoder(res.Body).Decode(&b); err != nil || b.Error.Code != "unauthorized" {
					t.Errorf("body code %q (%v), want unauthorized", b.Error.Code, err)
				}
			})
		}
	}
	t.Run("healthz needs no token", func(t *testing.T) {
		if r := h.on(t).doAs("", "GET", "/healthz", ""); r.Status != http.StatusOK {
			t.Fatalf("status %d", r.Status)
		}
	})
	t.Run("openapi with token", func(t *testing.T) {
		r := h.on(t).must(http.StatusOK, "GET", "/v1/openapi.json", "")
		if !json.Valid(r.Body) {
			t.Fatal("not JSON")
		}
	})
	if strings.Contains(h.logs.String(), h.token) || strings.Contains(h.logs.String(), created.Token) {
		t.Error("a token appears in the log")
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var created tokenCreated
	r := h.must(http.StatusCreated, "POST", "/v1/tokens", `{"name":"ci"}`)
	r.decode(t, &created)
	if created.Token == "" || created.ID == 0 || created.Name != "ci" {
		t.Fatalf("created %+v", created.TokenInfo)
	}
	if got := h.doAs(created.Token, "GET", "/v1/tenants", ""); got.Status != http.StatusOK {
		t.Fatalf("new token: status %d", got.Status)
	}
	list := h.must(http.StatusOK, "GET", "/v1/tokens", "")
	if strings.Contains(string(list.Body), created.Token) || strings.Contains(string(list.Body), h.token) {
		t.Fatal("token list shows a token value")
	}
	var tl struct {
		Tokens []registry.TokenInfo `json:"tokens"`
	}
	list.decode(t, &tl)
	names := []string{}
	for _, tk := range tl.Tokens {
		names = append(names, tk.Name)
	}
	if !slices.Contains(names, "ci") || !slices.Contains(names, "bootstrap") {
		t.Fatalf("tokens %v, want ci and bootstrap", names)
	}
	h.must(http.StatusNoContent, "DELETE", fmt.Sprintf("/v1/tokens/%d", created.ID), "")
	if got := h.doAs(created.Token, "GET", "/v1/tenants", ""); got.Status != http.StatusUnauthorized {
		t.Fatalf("revoked token: status %d", got.Status)
	}
	// The audit names who made and revoked the token, never its value.
	audit := h.must(http.StatusOK, "GET", "/v1/audit", "")
	if !strings.Contains(string(audit.Body), "token.create") || !strings.Contains(string(audit.Body), "token.revoke") {
		t.Errorf("audit lacks token entries: %s", audit.Body)
	}
	if strings.Contains(string(audit.Body), created.Token) {
		t.Error("audit shows a token value")
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("acme", `,"domains":["shop.acme.test"]`)
	cases := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"bad slug", "POST", "/v1/tenants", `{"slug":"Bad Slug"}`, 400, "invalid", "slug"},
		{"missing slug", "POST", "/v1/tenants", `{"display_name":"x"}`, 400, "invalid", "slug"},
		{"malformed JSON", "POST", "/v1/tenants", `{"slug":`, 400, "invalid", ""},
		{"empty body", "POST", "/v1/tenants", ``, 400, "invalid", ""},
		{"unknown field", "POST", "/v1/tenants", `{"slug":"ok-slug","colour":"red"}`, 400, "invalid", "colour"},
		{"wrong type", "POST", "/v1/tenants", `{"slug":"ok-slug","domains":"a.example.com"}`, 400, "invalid", "domains"},
		{"wrong nested type", "POST", "/v1/tenants", `{"slug":"ok-slug","secrets":{"smtp_port":"25"}}`, 400, "invalid", "secrets.smtp_port"},
		{"bad domain", "POST", "/v1/tenants", `{"slug":"ok-slug","domains":["not a host"]}`, 400, "invalid", "domains"},
		{"bad setting", "POST", "/v1/tenants", `{"slug":"ok-slug","settings":{"frontend_origin":"nope"}}`, 400, "invalid", "settings.frontend_origin"},
		{"bad secret", "POST", "/v1/tenants", `{"slug":"ok-slug","secrets":{"stripe_secret_key":"oops"}}`, 400, "invalid", "secrets.stripe_secret_key"},
		{"fork of nothing", "POST", "/v1/tenants", `{"slug":"ok-slug","fork_of":"nobody"}`, 400, "invalid", "fork_of"},
		{"duplicate slug", "POST", "/v1/tenants", `{"slug":"acme"}`, 409, "conflict", ""},
		{"duplicate domain on create", "POST", "/v1/tenants", `{"slug":"other","domains":["shop.acme.test"]}`, 409, "conflict", ""},
		{"unknown tenant", "GET", "/v1/tenants/nobody", "", 404, "not_found", ""},
		{"unknown tenant patch", "PATCH", "/v1/tenants/nobody", `{"settings":{"from_address":"a@b.test"}}`, 404, "not_found", ""},
		{"unknown tenant delete", "DELETE", "/v1/tenants/nobody", "", 404, "not_found", ""},
		{"unknown tenant suspend", "POST", "/v1/tenants/nobody/suspend", "", 404, "not_found", ""},
		{"unknown tenant secrets", "GET", "/v1/tenants/nobody/secrets", "", 404, "not_found", ""},
		{"unknown fork source", "POST", "/v1/tenants/nobody/fork", `{"slug":"copy"}`, 404, "not_found", ""},
		{"patch blank name", "PATCH", "/v1/tenants/acme", `{"display_name":"  "}`, 400, "invalid", "display_name"},
		{"patch two-line name", "PATCH", "/v1/tenants/acme", `{"display_name":"a\nb"}`, 400, "invalid", "display_name"},
		{"patch bad plan", "PATCH", "/v1/tenants/acme", `{"plan":"Gold Plan"}`, 400, "invalid", "plan"},
		{"patch wrong type", "PATCH", "/v1/tenants/acme", `{"plan":3}`, 400, "invalid", "plan"},
		{"patch unknown field", "PATCH", "/v1/tenants/acme", `{"status":"active"}`, 400, "invalid", "status"},
		{"patch nothing", "PATCH", "/v1/tenants/acme", `{}`, 400, "invalid", ""},
		{"patch bad rate limit", "PATCH", "/v1/tenants/acme", `{"settings":{"rate_limits":{"login":"lots"}}}`, 400, "invalid", "settings.rate_limits.login"},
		{"bad secret put", "PUT", "/v1/tenants/acme/secrets", `{"stripe_secret_key":"nope"}`, 400, "invalid", "stripe_secret_key"},
		{"secret put unknown field", "PUT", "/v1/tenants/acme/secrets", `{"db_password":"x"}`, 400, "invalid", "db_password"},
		{"bad hostname", "POST", "/v1/tenants/acme/domains", `{"hostname":"http://x"}`, 400, "invalid", "hostname"},
		{"bad origin", "POST", "/v1/tenants/acme/origins", `{"origin":"not-an-origin"}`, 400, "invalid", "origin"},
		{"remove default domain", "DELETE", "/v1/tenants/acme/domains/acme.example.test", "", 409, "conflict", ""},
		{"remove unknown domain", "DELETE", "/v1/tenants/acme/domains/nope.example.test", "", 404, "not_found", ""},
		{"resume active", "POST", "/v1/tenants/acme/resume", "", 409, "conflict", ""},
		{"retry active", "POST", "/v1/tenants/acme/retry", "", 409, "conflict", ""},
		{"bad limit", "GET", "/v1/tenants?limit=0", "", 400, "invalid", "limit"},
		{"huge limit", "GET", "/v1/tenants?limit=100000", "", 400, "invalid", "limit"},
		{"bad status filter", "GET", "/v1/tenants?status=sleeping", "", 400, "invalid", "status"},
		{"bad audit before", "GET", "/v1/audit?before=x", "", 400, "invalid", "before"},
		{"audit unknown tenant", "GET", "/v1/audit?tenant=nobody", "", 404, "not_found", ""},
		{"bad operation id", "GET", "/v1/operations/not-a-uuid", "", 400, "invalid", "id"},
		{"unknown operation", "GET", "/v1/operations/5b0b0a0e-5d8c-4a8e-9b43-7d2d3c3e1f00", "", 404, "not_found", ""},
		{"bad token id", "DELETE", "/v1/tokens/abc", "", 400, "invalid", "id"},
		{"unknown token", "DELETE", "/v1/tokens/999999", "", 404, "not_found", ""},
		{"empty token name", "POST", "/v1/tokens", `{"name":""}`, 400, "invalid", "name"},
		{"unknown route", "GET", "/v1/nothing-here", "", 404, "not_found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.on(t).do(tc.method, tc.path, tc.body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			e := r.errorOf(t)
			if e.Code != tc.code || e.Field != tc.field {
				t.Errorf("error %+v, want code %q field %q", e, tc.code, tc.field)
			}
			if e.Message == "" {
				t.Error("empty message")
			}
		})
	}
	// None of the refused creates left a tenant behind.
	var page tenantPage
	h.must(http.StatusOK, "GET", "/v1/tenants?status="+strings.Join(names(tenancy.Statuses()), ","), "").decode(t, &page)
	if len(page.Tenants) != 1 || page.Tenants[0].Slug != "acme" {
		t.Errorf("tenants after refused creates: %v", slugs(page.Tenants))
	}
}

func slugs(ts []registry.Tenant) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.Slug)
	}
	return out
}

func TestCreateForkAndDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.must(http.StatusAccepted, "POST", "/v1/tenants",
		`{"slug":"shop","display_name":"The Shop","domains":["Shop.Example.COM"],"origins":["http://localhost:8080"],
		  "settings":{"frontend_origin":"http://localhost:8080","from_address":"hi@shop.test"}}`)
	var acc acceptedBody
	r.decode(t, &acc)
	if acc.Tenant == nil || acc.Tenant.Slug != "shop" || acc.Operation.Kind != "create" {
		t.Fatalf("accepted body %s", r.Body)
	}
	if r.Header.Get("Location") != acc.Operation.URL {
		t.Errorf("Location %q, operation url %q", r.Header.Get("Location"), acc.Operation.URL)
	}
	if acc.Operation.TenantSlug == nil || *acc.Operation.TenantSlug != "shop" {
		t.Errorf("operation tenant %v", acc.Operation.TenantSlug)
	}
	op := h.wait(r)
	if op.Status != "succeeded" || op.Error != nil || op.FinishedAt == nil {
		t.Fatalf("operation %+v", op)
	}
	var shop registry.Tenant
	h.must(http.StatusOK, "GET", "/v1/tenants/shop", "").decode(t, &shop)
	if shop.Status != "active" || shop.DisplayName != "The Shop" || !slices.Contains(shop.Domains, "shop.example.com") ||
		shop.Domains[0] != "shop.example.test" || !slices.Equal(shop.Origins, []string{"http://localhost:8080"}) ||
		shop.Settings.FromAddress != "hi@shop.test" {
		t.Fatalf("tenant %+v", shop)
	}

	t.Run("fork endpoint", func(t *testing.T) {
		h := h.on(t)
		r := h.must(http.StatusAccepted, "POST", "/v1/tenants/shop/fork", `{"slug":"shop-two","display_name":"Second"}`)
		if op := h.wait(r); op.Status != "succeeded" || op.Kind != "fork" {
			t.Fatalf("fork operation %+v (%s)", op, deref(op.Error))
		}
		var two registry.Tenant
		h.must(http.StatusOK, "GET", "/v1/tenants/shop-two", "").decode(t, &two)
		if two.Status != "active" || two.ForkOf == nil || *two.ForkOf != "shop" || two.Settings.FromAddress != "hi@shop.test" {
			t.Fatalf("fork %+v", two)
		}
		// The source's frontend may not call the fork with credentials.
		if len(two.Origins) != 0 {
			t.Errorf("fork origins %v, want none of the source's", two.Origins)
		}
	})
	t.Run("fork_of in create", func(t *testing.T) {
		h := h.on(t)
		r := h.must(http.StatusAccepted, "POST", "/v1/tenants", `{"slug":"shop-three","fork_of":"shop"}`)
		if op := h.wait(r); op.Status != "succeeded" || op.Kind != "fork" {
			t.Fatalf("fork operation %+v", op)
		}
	})
	t.Run("list pages", func(t *testing.T) {
		h := h.on(t)
		var seen []string
		path := "/v1/tenants?limit=2"
		for range 5 {
			var page tenantPage
			h.must(http.StatusOK, "GET", path, "").decode(t, &page)
			seen = append(seen, slugs(page.Tenants)...)
			if page.NextAfter == nil {
				break
			}
			path = "/v1/tenants?limit=2&after=" + url.QueryEscape(*page.NextAfter)
		}
		if !slices.Equal(seen, []string{"shop", "shop-three", "shop-two"}) {
			t.Fatalf("pages gave %v", seen)
		}
		var active tenantPage
		h.must(http.StatusOK, "GET", "/v1/tenants?status=suspended", "").decode(t, &active)
		if len(active.Tenants) != 0 {
			t.Fatalf("suspended filter gave %v", slugs(active.Tenants))
		}
	})
	t.Run("delete", func(t *testing.T) {
		h := h.on(t)
		r := h.must(http.StatusAccepted, "DELETE", "/v1/tenants/shop-three", "")
		if op := h.wait(r); op.Status != "succeeded" || op.Kind != "delete" {
			t.Fatalf("delete operation %+v (%s)", op, deref(op.Error))
		}
		var gone registry.Tenant
		h.must(http.StatusOK, "GET", "/v1/tenants/shop-three", "").decode(t, &gone)
		if gone.Status != "deleted" {
			t.Fatalf("status %s after delete", gone.Status)
		}
		if r := h.do("DELETE", "/v1/tenants/shop-three", ""); r.Status != http.StatusConflict {
			t.Fatalf("second delete: %d", r.Status)
		}
	})
}

func TestSecretsAreWriteOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	values := map[string]string{
		"stripe_secret_key":      "sk_test_" + strings.Repeat("S3cr3tK3y", 3),
		"stripe_publishable_key": "pk_test_" + strings.Repeat("PubL1sh", 3),
		"stripe_webhook_secret":  "whsec_" + strings.Repeat("W3bH00k", 3),
		"smtp_host":              "smtp.secret-relay.test",
		"smtp_username":          "mailer-user-q7z9",
		"smtp_password":          "smtp-pass-" + strings.Repeat("Zx9", 5),
	}
	createSecrets, _ := json.Marshal(map[string]string{"smtp_password": "create-time-pass-K4v8"})
	h.create("vault", `,"secrets":`+string(createSecrets))

	var before map[string]any
	h.must(http.StatusOK, "GET", "/v1/tenants/vault/secrets", "").decode(t, &before)
	if before["smtp_password"] != true || before["stripe_webhook_secret"] != false {
		t.Fatalf("status after create %v", before)
	}

	body := map[string]any{"smtp_port": 2525}
	for k, v := range values {
		body[k] = v
	}
	raw, _ := json.Marshal(body)
	put := h.must(http.StatusOK, "PUT", "/v1/tenants/vault/secrets", string(raw))
	var status map[string]any
	put.decode(t, &status)
	get := h.must(http.StatusOK, "GET", "/v1/tenants/vault/secrets", "")
	var got map[string]any
	get.decode(t, &got)
	for _, st := range []map[string]any{status, got} {
		for k, v := range st {
			if k == "version" {
				continue
			}
			if v != true {
				t.Errorf("%s = %v, want true", k, v)
			}
		}
	}
	// Some other fields flow through the API: a change, a rotation, the audit.
	h.must(http.StatusOK, "PATCH", "/v1/tenants/vault", `{"settings":{"from_address":"shop@vault.test"}}`)
	if op := h.wait(h.must(http.StatusAccepted, "POST", "/v1/tenants/vault/rotate-secrets", "")); op.Status != "succeeded" {
		t.Fatalf("rotate: %+v %s", op, deref(op.Error))
	}
	auditBody := string(h.must(http.StatusOK, "GET", "/v1/audit?tenant=vault&limit=500", "").Body)
	if !strings.Contains(auditBody, "secrets.set") {
		t.Errorf("audit lacks secrets.set: %s", auditBody)
	}
	h.must(http.StatusOK, "GET", "/v1/audit?limit=500", "")
	h.must(http.StatusOK, "GET", "/v1/tenants/vault", "")

	values["create"] = "create-time-pass-K4v8"
	responses, logs := h.allResponses(), h.logs.String()
	for name, v := range values {
		if strings.Contains(responses, v) {
			t.Errorf("%s value appears in a response", name)
		}
		if strings.Contains(logs, v) {
			t.Errorf("%s value appears in the log", name)
		}
	}
	if strings.Contains(logs, h.token) {
		t.Error("the admin token appears in the log")
	}
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("pause", "")
	var tn registry.Tenant
	h.must(http.StatusOK, "POST", "/v1/tenants/pause/suspend", "").decode(t, &tn)
	if tn.Status != "suspended" {
		t.Fatalf("after suspend: %s", tn.Status)
	}
	if e := h.must(http.StatusConflict, "POST", "/v1/tenants/pause/suspend", "").errorOf(t); e.Code != "conflict" {
		t.Errorf("second suspend: %+v", e)
	}
	var page tenantPage
	h.must(http.StatusOK, "GET", "/v1/tenants?status=suspended", "").decode(t, &page)
	if !slices.Equal(slugs(page.Tenants), []string{"pause"}) {
		t.Errorf("suspended filter: %v", slugs(page.Tenants))
	}
	h.must(http.StatusOK, "POST", "/v1/tenants/pause/resume", "").decode(t, &tn)
	if tn.Status != "active" {
		t.Fatalf("after resume: %s", tn.Status)
	}
	audit := string(h.must(http.StatusOK, "GET", "/v1/audit?tenant=pause", "").Body)
	for _, a := range []string{"tenant.suspend", "tenant.resume"} {
		if !strings.Contains(audit, a) {
			t.Errorf("audit lacks %s", a)
		}
	}
}

func TestDomainsAndOrigins(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("one", "")
	h.create("two", "")
	var list struct {
		Domains []string `json:"domains"`
		Origins []string `json:"origins"`
	}
	h.must(http.StatusCreated, "POST", "/v1/tenants/one/domains", `{"hostname":"WWW.One.Test"}`).decode(t, &list)
	if !slices.Equal(list.Domains, []string{"one.example.test", "www.one.test"}) {
		t.Fatalf("domains %v", list.Domains)
	}
	if e := h.must(http.StatusConflict, "POST", "/v1/tenants/two/domains", `{"hostname":"www.one.test"}`).errorOf(t); e.Code != "conflict" {
		t.Errorf("taken domain: %+v", e)
	}
	h.must(http.StatusOK, "GET", "/v1/tenants/one/domains", "").decode(t, &list)
	if len(list.Domains) != 2 {
		t.Fatalf("domains %v", list.Domains)
	}
	h.must(http.StatusNoContent, "DELETE", "/v1/tenants/one/domains/www.one.test", "")
	h.must(http.StatusNotFound, "DELETE", "/v1/tenants/one/domains/www.one.test", "")
	h.must(http.StatusOK, "GET", "/v1/tenants/one/domains", "").decode(t, &list)
	if !slices.Equal(list.Domains, []string{"one.example.test"}) {
		t.Fatalf("domains after remove %v", list.Domains)
	}
	// Released, the hostname can go to another tenant.
	h.must(http.StatusCreated, "POST", "/v1/tenants/two/domains", `{"hostname":"www.one.test"}`)

	origin := "http://localhost:8080"
	h.must(http.StatusCreated, "POST", "/v1/tenants/one/origins", `{"origin":"`+origin+`"}`).decode(t, &list)
	if !slices.Equal(list.Origins, []string{origin}) {
		t.Fatalf("origins %v", list.Origins)
	}
	h.must(http.StatusNoContent, "DELETE", "/v1/tenants/one/origins/"+url.PathEscape(origin), "")
	h.must(http.StatusOK, "GET", "/v1/tenants/one/origins", "").decode(t, &list)
	if len(list.Origins) != 0 {
		t.Fatalf("origins after remove %v", list.Origins)
	}
	h.must(http.StatusNotFound, "DELETE", "/v1/tenants/one/origins/"+url.PathEscape(origin), "")
}

func TestAuditPaging(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("pager", "")
	for i := range 4 {
		host := fmt.Sprintf("h%d.pager.test", i)
		h.must(http.StatusCreated, "POST", "/v1/tenants/pager/domains", `{"hostname":"`+host+`"}`)
		h.must(http.StatusNoContent, "DELETE", "/v1/tenants/pager/domains/"+host, "")
	}
	var all auditPage
	h.must(http.StatusOK, "GET", "/v1/audit?tenant=pager&limit=500", "").decode(t, &all)
	if len(all.Entries) < 9 || all.NextBefore != nil {
		t.Fatalf("%d entries, next %v", len(all.Entries), all.NextBefore)
	}
	var paged []int64
	path := "/v1/audit?tenant=pager&limit=3"
	for range 20 {
		var page auditPage
		h.must(http.StatusOK, "GET", path, "").decode(t, &page)
		if len(page.Entries) > 3 {
			t.Fatalf("page of %d", len(page.Entries))
		}
		for _, e := range page.Entries {
			paged = append(paged, e.ID)
			if e.TenantSlug == nil || *e.TenantSlug != "pager" || !strings.HasPrefix(e.Actor, "token:") {
				t.Errorf("entry %+v", e)
			}
		}
		if page.NextBefore == nil {
			break
		}
		path = fmt.Sprintf("/v1/audit?tenant=pager&limit=3&before=%d", *page.NextBefore)
	}
	var want []int64
	for _, e := range all.Entries {
		want = append(want, e.ID)
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged ids %v, want %v", paged, want)
	}
	if !slices.IsSortedFunc(paged, func(a, b int64) int { return int(b - a) }) {
		t.Errorf("not newest first: %v", paged)
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("mig-a", "")
	h.create("mig-b", "")
	var st struct {
		Latest  int64           `json:"latest"`
		Tenants []tenantVersion `json:"tenants"`
	}
	h.must(http.StatusOK, "GET", "/v1/migrations", "").decode(t, &st)
	if st.Latest < 1 || len(st.Tenants) != 2 {
		t.Fatalf("status %+v", st)
	}
	for _, tv := range st.Tenants {
		if tv.SchemaVersion != st.Latest || !tv.Current {
			t.Errorf("tenant %+v, latest %d", tv, st.Latest)
		}
	}
	r := h.must(http.StatusAccepted, "POST", "/v1/migrations/run", "")
	if op := h.wait(r); op.Status != "succeeded" || op.Kind != "migrate-all" {
		t.Fatalf("migrate all: %+v %s", op, deref(op.Error))
	}
	r = h.must(http.StatusAccepted, "POST", "/v1/tenants/mig-a/migrate", "")
	if op := h.wait(r); op.Status != "succeeded" {
		t.Fatalf("migrate one: %+v %s", op, deref(op.Error))
	}
	h.must(http.StatusOK, "GET", "/v1/migrations", "").decode(t, &st)
	for _, tv := range st.Tenants {
		if tv.LastMigrationStatus == nil || *tv.LastMigrationStatus != "ok" {
			t.Errorf("tenant %s last migration %v", tv.Slug, tv.LastMigrationStatus)
		}
	}
}

// TestUnresumableOperationFailsAtStart: an operation record that names no
// tenant to work on cannot be run again after a restart, and is failed.
func TestUnresumableOperationFailsAtStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	reg := h.prov.Registry()
	id, err := reg.QueueOperation(ctx, "create", 0, "ops")
	if err != nil {
		t.Fatal(err)
	}
	// A second server on the same registry, as after a crash and restart.
	srv, err := New(ctx, Options{Provision: h.prov})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx) //nolint:errcheck
	op, err := reg.GetOperation(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != registry.OperationFailed || op.Error == nil || !strings.Contains(*op.Error, "cannot resume") {
		t.Fatalf("operation after restart %+v", op)
	}
}

func TestRetryAfterFailedCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// A tenant whose create stopped after reserving, as a crash would leave it.
	ctx := context.Background()
	h.create("base", "")
	if _, err := h.pool.Exec(ctx, `UPDATE tenants SET status = 'failed' WHERE slug = 'base'`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(ctx, `DELETE FROM provisioning_steps WHERE step = 'activate'`); err != nil {
		t.Fatal(err)
	}
	r := h.must(http.StatusAccepted, "POST", "/v1/tenants/base/retry", "")
	if op := h.wait(r); op.Status != "succeeded" || op.Kind != "retry" {
		t.Fatalf("retry: %+v %s", op, deref(op.Error))
	}
	var tn registry.Tenant
	h.must(http.StatusOK, "GET", "/v1/tenants/base", "").decode(t, &tn)
	if tn.Status != "active" {
		t.Fatalf("after retry: %s", tn.Status)
	}
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.must(http.StatusNotFound, "GET", "/v1/tenants/ghost", "")
	rid := r.Header.Get("X-Request-ID")
	if rid == "" {
		t.Fatal("no X-Request-ID")
	}
	var line map[string]any
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, rid) && strings.Contains(l, `"msg":"request"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no request line for %s in %s", rid, h.logs.String())
	}
	if line["method"] != "GET" || line["route"] != "/v1/tenants/:slug" || line["status"] != float64(404) || line["duration_ms"] == nil {
		t.Errorf("request line %v", line)
	}
	if strings.Contains(h.logs.String(), "Bearer") || strings.Contains(h.logs.String(), h.token) {
		t.Error("the log holds the Authorization header")
	}
}

func TestPublicMessageRemovesCredentials(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, leak string }{
		{"connect postgres://admin:hunter2@db:5432/x failed", "hunter2"},
		{"dial: host=db user=a password=hunter3 dbname=x", "hunter3"},
		{"dial: password = 'hunter 4' host=db", "hunter 4"},
	}
	for _, tc := range cases {
		t.Run(tc.leak, func(t *testing.T) {
			got := publicMessage(fmt.Errorf("%s", tc.in))
			if strings.Contains(got, tc.leak) {
				t.Fatalf("%q keeps the password", got)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := h.listen()
	// Only the head is sent: the server refuses on the Content-Length, and a
	// client still writing the body would see the connection reset before
	// it could read the 413.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	head := "POST /v1/tenants HTTP/1.1\r\nHost: controlplane.test\r\nAuthorization: Bearer " + h.token +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(70<<10) + "\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", res.StatusCode)
	}
	var b errorBody
	if err := json.NewDecoder(res.Body).Decode(&b); err != nil || b.Error.Code != "invalid" {
		t.Fatalf("body %+v (%v)", b, err)
	}
}

// TestCreateAnswersOnReservation holds creates and forks after their
// database step and checks that the 202 came already, with the tenant
// reserved and its operation running; each then finishes in the background.
func TestCreateAnswersOnReservation(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		gate chan struct{} // while set, the database step waits on it
	)
	h := newHarnessWith(t, func(o *provision.Options) {
		o.AfterStep = func(_, step string) error {
			mu.Lock()
			g := gate
			mu.Unlock()
			if step == provision.StepDatabase && g != nil {
				<-g
			}
			return nil
		}
	})
	h.create("source", "")
	cases := []struct{ name, path, body, kind string }{
		{"create", "/v1/tenants", `{"slug":"early"}`, "create"},
		{"fork", "/v1/tenants/source/fork", `{"slug":"early-fork"}`, "fork"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			g := make(chan struct{})
			mu.Lock()
			gate = g
			mu.Unlock()
			defer func() {
				mu.Lock()
				gate = nil
				mu.Unlock()
				close(g)
			}()
			done := make(chan response, 1)
			go func() { done <- h.do("POST", tc.path, tc.body) }()
			var r response
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("no answer while the workflow is held after its database step")
			}
			if r.Status != http.StatusAccepted {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			var acc acceptedBody
			r.decode(t, &acc)
			if acc.Tenant == nil || acc.Tenant.Status != registry.StatusProvisioning ||
				(acc.Operation.Status != registry.OperationQueued && acc.Operation.Status != registry.OperationRunning) ||
				acc.Operation.Kind != tc.kind {
				t.Fatalf("accepted body %s", r.Body)
			}
			mu.Lock()
			gate = nil
			mu.Unlock()
			close(g)
			g = make(chan struct{}) // the deferred close has its own channel
			if op := h.wait(r); op.Status != "succeeded" {
				t.Fatalf("operation %+v (%s)", op, deref(op.Error))
			}
		})
	}
}

func TestUpdateTenant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("renamed", `,"display_name":"Old Name","settings":{"from_address":"a@renamed.test"}`)
	cases := []struct {
		name, body         string
		wantName, wantPlan string
		wantFrom           string
	}{
		{"name", `{"display_name":"  New Name  "}`, "New Name", "standard", "a@renamed.test"},
		{"plan", `{"plan":"pro"}`, "New Name", "pro", "a@renamed.test"},
		{"settings only", `{"settings":{"from_address":"b@renamed.test"}}`, "New Name", "pro", "b@renamed.test"},
		{"all three", `{"display_name":"Third","plan":"business","settings":{"from_address":"c@renamed.test"}}`, "Third", "business", "c@renamed.test"},
	}
	for _, tc := range cases { // in order: each starts from the one before
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			var got registry.Tenant
			h.must(http.StatusOK, "PATCH", "/v1/tenants/renamed", tc.body).decode(t, &got)
			var shown registry.Tenant
			h.must(http.StatusOK, "GET", "/v1/tenants/renamed", "").decode(t, &shown)
			for _, tn := range []registry.Tenant{got, shown} {
				if tn.DisplayName != tc.wantName || tn.Plan != tc.wantPlan || tn.Settings.FromAddress != tc.wantFrom {
					t.Errorf("tenant name %q plan %q from %q, want %q %q %q", tn.DisplayName, tn.Plan, tn.Settings.FromAddress,
						tc.wantName, tc.wantPlan, tc.wantFrom)
				}
			}
		})
	}
	var audit auditPage
	h.must(http.StatusOK, "GET", "/v1/audit?tenant=renamed&limit=500", "").decode(t, &audit)
	updates := 0
	for _, e := range audit.Entries {
		if e.Action == "tenant.update" {
			updates++
			if !strings.HasPrefix(e.Actor, "token:") || len(e.Before) == 0 || len(e.After) == 0 {
				t.Errorf("audit entry %+v", e)
			}
		}
	}
	if updates != len(cases) {
		t.Errorf("%d tenant.update audit entries, want %d", updates, len(cases))
	}
	// A deleted tenant cannot be changed.
	h.wait(h.must(http.StatusAccepted, "DELETE", "/v1/tenants/renamed", ""))
	if e := h.must(http.StatusConflict, "PATCH", "/v1/tenants/renamed", `{"plan":"free"}`).errorOf(t); e.Code != "conflict" {
		t.Errorf("patch of a deleted tenant: %+v", e)
	}
}

// jsonFields lists the JSON names of a struct's fields (embedded ones inlined).
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case f.Anonymous && name == "":
			out = append(out, jsonFields(f.Type)...)
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPISchemasMatchTypes keeps the documented request and response
// bodies in step with the Go types the handlers decode and encode.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		schema string
		typ    reflect.Type
	}{
		{"PatchTenant", reflect.TypeFor[provision.TenantPatch]()},
		{"SettingsPatch", reflect.TypeFor[provision.SettingsPatch]()},
		{"CreateTenant", reflect.TypeFor[provision.CreateRequest]()},
		{"ForkTenant", reflect.TypeFor[forkRequest]()},
		{"SecretsInput", reflect.TypeFor[provision.SecretsInput]()},
		{"SecretsStatus", reflect.TypeFor[provision.SecretsStatus]()},
		{"Tenant", reflect.TypeFor[registry.Tenant]()},
		{"TenantPage", reflect.TypeFor[tenantPage]()},
		{"Operation", reflect.TypeFor[operationView]()},
		{"AuditEntry", reflect.TypeFor[registry.AuditEntry]()},
		{"Token", reflect.TypeFor[registry.TokenInfo]()},
		{"CreateOwner", reflect.TypeFor[ownerRequest]()},
		{"Owner", reflect.TypeFor[ownerResponse]()},
		{"DBServer", reflect.TypeFor[registry.DBServer]()},
		{"DBServerList", reflect.TypeFor[dbServerList]()},
		{"RegisterDBServer", reflect.TypeFor[registry.DBServerSpec]()},
		{"MoveRequest", reflect.TypeFor[moveRequest]()},
		{"Move", reflect.TypeFor[registry.Move]()},
		{"Signup", reflect.TypeFor[signup.Summary]()},
		{"SignupPage", reflect.TypeFor[signupPage]()},
		{"SuspendTenant", reflect.TypeFor[suspendRequest]()},
		{"UsageHour", reflect.TypeFor[usage.Hour]()},
		{"UsageTotals", reflect.TypeFor[usage.Totals]()},
		{"UsageRevenue", reflect.TypeFor[usage.Revenue]()},
	}
	for _, tc := range cases {
		t.Run(tc.schema, func(t *testing.T) {
			s, ok := doc.Components.Schemas[tc.schema]
			if !ok {
				t.Fatalf("openapi.json has no schema %s", tc.schema)
			}
			var documented []string
			for p := range s.Properties {
				documented = append(documented, p)
			}
			sort.Strings(documented)
			if want := jsonFields(tc.typ); !slices.Equal(documented, want) {
				t.Errorf("properties %v, want %v (from %s)", documented, want, tc.typ)
			}
		})
	}
}

// TestDomainDetails: GET /domains shows each hostname's verification state:
// an owner-added domain pending with its TXT challenge and last check, an
// operator-added one verified with none; an operator adding the pending
// one vouches for it.
func TestDomainDetails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tn := h.create("det", "")
	ctx := context.Background()
	h.must(http.StatusCreated, "POST", "/v1/tenants/det/domains", `{"hostname":"ops.det.test"}`)
	if _, err := h.pool.Exec(ctx, `SELECT backoffice_add_domain($1, 'staff:1 o@det.test', 'shop.det.test', 'tokentokentokentoken42')`, tn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(ctx, `UPDATE domains SET checked_at = now(), check_error = 'no TXT record _swa-challenge.shop.det.test'
		WHERE hostname = 'shop.det.test'`); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Domains []string          `json:"domains"`
		Details []registry.Domain `json:"details"`
	}
	h.must(http.StatusOK, "GET", "/v1/tenants/det/domains", "").decode(t, &list)
	if !slices.Equal(list.Domains, []string{"det.example.test", "ops.det.test", "shop.det.test"}) || len(list.Details) != 3 {
		t.Fatalf("domains %v details %+v", list.Domains, list.Details)
	}
	def, ops, shop := list.Details[0], list.Details[1], list.Details[2]
	if !def.Default || def.Status != "verified" || def.Challenge != nil || ops.Status != "verified" || ops.Challenge != nil {
		t.Errorf("default %+v, operator-added %+v", def, ops)
	}
	if shop.Status != "pending" || shop.Challenge == nil || shop.Challenge.Name != "_swa-challenge.shop.det.test" ||
		shop.Challenge.Value != "swa-verify=tokentokentokentoken42" || shop.CheckedAt == nil || shop.CheckError == nil {
		t.Errorf("owner-added %+v %+v", shop, shop.Challenge)
	}
	h.must(http.StatusCreated, "POST", "/v1/tenants/det/domains", `{"hostname":"shop.det.test"}`)
	list.Details = nil // decoding into the old elements would keep their challenges
	h.must(http.StatusOK, "GET", "/v1/tenants/det/domains", "").decode(t, &list)
	if s := list.Details[2]; s.Status != "verified" || s.Challenge != nil || s.CheckError != nil {
		t.Errorf("after an operator added it: %+v", s)
	}
}
