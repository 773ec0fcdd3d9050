package storefront_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/analytics"
	"github.com/startupwebapp/platform/tenant/shop"
	"github.com/startupwebapp/platform/tenant/storefront"
)

// The two test tenants live under .localhost, which Chromium resolves to
// loopback by itself; the Go client dials the listener for every host.
const (
	hostA = "alpha.localhost"
	hostB = "beta.localhost"
)

var brandA = directory.Branding{ShopName: "Alpha Paper Co", Tagline: "Paper goods for every desk.", PrimaryColor: "#0b7a5c",
	AccentColor: "#f2b705", ContactEmail: "hello@alpha.test", ContactPhone: "1-800-555-0101",
	FooterLinks: []directory.FooterLink{{Label: "Wholesale", URL: "/contact"}}}

var brandB = directory.Branding{ShopName: "Beta <Binders>", Tagline: "Binders & bands.", PrimaryColor: "#4b2a86",
	AccentColor: "#ff8a3d", ContactEmail: "desk@beta.test"}

// env is a data plane with the API apps and the storefront for two
// tenants, each with its own database, secrets and branding, a mail
// worker delivering to Mailpit and a Stripe double.
type env struct {
	port   string
	dbA    *pgxpool.Pool
	dbB    *pgxpool.Pool
	mail   *mail.Worker
	mp     *mailpit.Client
	stripe *stripeDouble
}

func (e *env) origin(host string) string { return "http://" + host + ":" + e.port }

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	smtpPort, _ := strconv.Atoi(pgtest.Require(t, "SWA_SMTP_PORT"))
	relay := mail.SMTPSettings{Host: pgtest.Require(t, "SWA_SMTP_HOST"), Port: smtpPort}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	e := &env{port: port, mp: mp, stripe: newStripeDouble(t)}

	reg := pgtest.NewPool(t, migrations.Platform)
	admin, err := url.Parse(pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	dbPort, _ := strconv.Atoi(admin.Port())
	srv := directorytest.AddServer(t, reg, pgtest.RandomName("srv"), admin.Hostname(), dbPort)
	key, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	store, err := secrets.NewLocal(reg, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range []struct {
		slug, name, host string
		brand            directory.Branding
		db               **pgxpool.Pool
	}{{"alpha", "Alpha", hostA, brandA, &e.dbA}, {"beta", "Beta", hostB, brandB, &e.dbB}} {
		dsn := pgtest.NewDatabase(t, migrations.Tenant)
		u, _ := url.Parse(dsn)
		role, rolePW := pgtest.RandomName("sftest_"), pgtest.RandomName("pw")
		if _, err := reg.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+rolePW+"' IN ROLE "+admin.User.Username()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c, err := pgxpool.New(context.Background(), pgtest.AdminURL(t))
			if err == nil {
				_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
				c.Close()
			}
		})
		b := tn.brand
		directorytest.AddTenant(t, reg, directorytest.Tenant{
			Slug: tn.slug, Domains: []string{tn.host}, Origins: []string{e.origin(tn.host)},
			Server: srv, DBName: strings.TrimPrefix(u.Path, "/"), DBRole: role,
			Settings: directory.Settings{FrontendOrigin: e.origin(tn.host), FromAddress: tn.name + " <shop@" + tn.slug + ".test>", Branding: &b},
		})
		sk := base64.StdEncoding.EncodeToString([]byte("session-key-of-" + tn.slug + "-0123456789abcdef"))
		if _, err := secrets.SaveBundle(ctx, store, secrets.TenantSecretName(tn.slug), secrets.TenantBundle{
			DBPassword: rolePW, SessionKey: sk, StripeSecretKey: "sk_test_" + tn.slug, StripePublishableKey: "pk_test_" + tn.slug,
		}); err != nil {
			t.Fatal(err)
		}
		p, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		*tn.db = p
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "swa.test", Log: log})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	pm, err := pools.New(pools.Options{Secrets: store, ConnParams: "sslmode=disable", MaxConns: 8, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.CloseAll)
	rdb, prefix := pgtest.Redis(t)
	keyFn := csrf.BundleKey(store, time.Minute)
	sess := sessions.New(sessions.Options{Redis: rdb, Prefix: prefix, Log: log})
	limiter := ratelimit.New(ratelimit.Options{Redis: rdb, Prefix: prefix, Timeout: time.Second, Log: log,
		Defaults: map[string]ratelimit.Rate{"login": {N: 20, Window: time.Hour}, "create_account": {N: 20, Window: time.Hour},
			"reset_password": {N: 5, Window: time.Hour}, "chat": {N: 3, Window: time.Hour}, "notify_me": {N: 5, Window: time.Hour}}})
	an := analytics.New(analytics.Options{Pools: pm, Log: log})
	t.Cleanup(func() { _ = an.Close(context.Background()) })
	acct := account.New(account.Options{DB: pm, Key: account.KeyFunc(keyFn), Sessions: sess, Limiter: limiter, Log: log,
		Hasher: account.NewHasher(account.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})})
	sh := shop.New(shop.Options{Pools: pm, Payments: payments.New(payments.Options{Secrets: store, APIBase: e.stripe.srv.URL, Log: log}),
		Key: shop.KeyFunc(keyFn), Account: acct.SessionClaim, Log: log})
	site, err := storefront.New(storefront.Options{Account: acct, Shop: sh, Analytics: an, Log: log,
		CheckoutOrigins: []string{e.stripe.srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	app := server.New(server.Options{
		Directory: dir, Pools: pm, Log: log, Env: "dev",
		Middleware: []fiber.Handler{sess.Handler(), csrf.New(csrf.Options{Key: keyFn, Exempt: []string{"/order/stripe-webhook"}, Log: log}).Handler(), injectPanic},
		Apps:       []server.App{an, acct, sh, site},
	})
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	e.mail, err = mail.NewWorker(mail.Options{
		Tenants: func(context.Context) []*directory.Tenant { return servingTenants(dir) },
		Conn:    pm.Do,
		Relay:   func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) { return relay, nil },
		Log:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// panicHeader makes injectPanic panic on the request that carries it: the
// failure of a page past every check, as a bug would be.
const panicHeader = "X-Test-Panic"

func injectPanic(c *fiber.Ctx) error {
	if v := c.Get(panicHeader); v != "" {
		panic("injected failure: " + v)
	}
	return c.Next()
}

func servingTenants(dir *directory.Directory) []*directory.Tenant {
	var out []*directory.Tenant
	for _, t := range dir.All() {
		if t.Serving() {
			out = append(out, t)
		}
	}
	return out
}

// deliver runs the mail worker and waits for n messages matching query.
func (e *env) deliver(t testing.TB, query string, n int) []mailpit.Message {
	t.Helper()
	e.mail.RunOnce(context.Background())
	return e.mp.Wait(t, query, n, 15*time.Second)
}

// client is one browser without script: a cookie jar, no redirects
// followed unless asked.
type client struct {
	t    testing.TB
	e    *env
	host string
	http *http.Client
}

func (e *env) client(t testing.TB, host string) *client {
	jar, _ := cookiejar.New(nil)
	addr := "127.0.0.1:" + e.port
	tr := &http.Transport{DialContext: func(ctx context.Context, network, target string) (net.Conn, error) {
		if h, _, _ := net.SplitHostPort(target); strings.HasSuffix(h, ".localhost") {
			target = addr
		}
		return (&net.Dialer{}).DialContext(ctx, network, target)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, e: e, host: host, http: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location() string { return p.header.Get("Location") }

func (c *client) do(req *http.Request) page {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *client) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return c.e.origin(c.host) + path
}

func (c *client) get(path string) page {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url(path), nil)
	return c.do(req)
}

// post sends a form with the page's CSRF token (the csrftoken cookie as
// csrfmiddlewaretoken), as the storefront's forms do.
func (c *client) post(path string, form url.Values) page {
	c.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if f.Get("csrfmiddlewaretoken") == "" {
		f.Set("csrfmiddlewaretoken", c.cookie("csrftoken"))
	}
	req, _ := http.NewRequest(http.MethodPost, c.url(path), strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// follow GETs a redirect's target (on this client's host when relative).
func (c *client) follow(p page) page {
	c.t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound && p.status != http.StatusMovedPermanently {
		c.t.Fatalf("want a redirect, got %d: %s", p.status, snippet(p.body))
	}
	return c.get(p.location())
}

func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.e.origin(c.host))
	for _, k := range c.http.Jar.Cookies(u) {
		if k.Name == name {
			return k.Value
		}
	}
	return ""
}

// api calls a JSON endpoint of the API with the client's cookies.
func (c *client) api(path string) map[string]any {
	c.t.Helper()
	p := c.get(path)
	var out map[string]any
	if err := json.Unmarshal([]byte(p.body), &out); err != nil {
		c.t.Fatalf("GET %s: %d %s", path, p.status, snippet(p.body))
	}
	return out
}

func snippet(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

func mustContain(t testing.TB, p page, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(p.body, w) {
			t.Fatalf("page (status %d) lacks %q:\n%s", p.status, w, snippet(mainOf(p.body)))
		}
	}
}

func mainOf(body string) string {
	if i := strings.Index(body, "<main"); i >= 0 {
		body = body[i:]
	}
	return body
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+`)

// mailLink finds the first link in a message's text that contains part.
func mailLink(t testing.TB, m mailpit.Message, part string) string {
	t.Helper()
	for _, l := range linkRE.FindAllString(m.Text, -1) {
		if strings.Contains(l, part) {
			return l
		}
	}
	t.Fatalf("no link with %q in mail %q:\n%s", part, m.Subject, m.Text)
	return ""
}

// stripeDouble stands in for Stripe where stripe-mock keeps no state: a
// created session is forwarded to stripe-mock (so its parameters are
// checked against Stripe's API description), remembered, and handed out
// with a checkout URL on the double itself. Visiting that URL is the
// payment: the session becomes paid and the browser is sent to the
// session's success_url, as Stripe Checkout does. The real stripe-go
// client talks to it.
type stripeDouble struct {
	mock string
	srv  *httptest.Server
	mu   sync.Mutex
	n    int
	sess map[string]*doubleSession
	keys map[string]*doubleSession
}

type doubleSession struct {
	id, success, email string
	metadata           map[string]string
	total              int64
	paid               bool
}

func newStripeDouble(t testing.TB) *stripeDouble {
	d := &stripeDouble{mock: pgtest.Service(t, "SWA_STRIPE_API_BASE"), sess: map[string]*doubleSession{}, keys: map[string]*doubleSession{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *stripeDouble) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(http.MethodPost, d.mock+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			return
		}
		f, _ := url.ParseQuery(string(body))
		var total int64
		for i := 0; f.Get(fmt.Sprintf("line_items[%d][quantity]", i)) != ""; i++ {
			q, _ := strconv.ParseInt(f.Get(fmt.Sprintf("line_items[%d][quantity]", i)), 10, 64)
			u, _ := strconv.ParseInt(f.Get(fmt.Sprintf("line_items[%d][price_data][unit_amount]", i)), 10, 64)
			total += q * u
		}
		d.mu.Lock()
		s := d.keys[r.Header.Get("Idempotency-Key")]
		if s == nil {
			d.n++
			s = &doubleSession{id: fmt.Sprintf("cs_test_sf_%d", d.n), success: f.Get("success_url"), email: f.Get("customer_email"),
				total: total, metadata: map[string]string{}}
			for k := range f {
				if name, ok := strings.CutPrefix(k, "metadata["); ok {
					s.metadata[strings.TrimSuffix(name, "]")] = f.Get(k)
				}
			}
			d.sess[s.id] = s
			d.keys[r.Header.Get("Idempotency-Key")] = s
		}
		obj := d.object(s)
		d.mu.Unlock()
		d.json(w, obj)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions/"):
		d.mu.Lock()
		s := d.sess[strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/")]
		var obj map[string]any
		if s != nil {
			obj = d.object(s)
		}
		d.mu.Unlock()
		if s == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"No such checkout.session"}}`))
			return
		}
		d.json(w, obj)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/pay/"):
		d.mu.Lock()
		s := d.sess[strings.TrimPrefix(r.URL.Path, "/pay/")]
		if s != nil {
			s.paid = true
		}
		d.mu.Unlock()
		if s == nil {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, strings.Replace(s.success, "{CHECKOUT_SESSION_ID}", s.id, 1), http.StatusSeeOther)
	default:
		http.NotFound(w, r)
	}
}

func (d *stripeDouble) json(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// object is the session as Stripe answers it; d.mu is held.
func (d *stripeDouble) object(s *doubleSession) map[string]any {
	status := "unpaid"
	if s.paid {
		status = "paid"
	}
	addr := map[string]any{"line1": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "62701", "country": "US"}
	return map[string]any{
		"id": s.id, "object": "checkout.session", "url": d.srv.URL + "/pay/" + s.id,
		"payment_status": status, "status": "complete", "amount_total": s.total, "currency": "usd",
		"metadata": s.metadata, "customer_email": s.email, "payment_intent": "pi_" + s.id,
		"customer_details": map[string]any{"name": "Jo Buyer", "email": s.email, "address": addr},
		"shipping_details": map[string]any{"name": "Jo Buyer", "address": addr},
	}
}
