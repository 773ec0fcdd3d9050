package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/analytics"
	"github.com/startupwebapp/platform/tenant/cart"
	"github.com/startupwebapp/platform/tenant/shop"
)

const (
	isoBaseDomain = "iso.test"
	isoFrontend   = "http://localhost:8080"
	// sharedAnonCart is the anonymous cart id both tenants' databases hold.
	sharedAnonCart = "SharedAnonCartId0001"
)

// identicalRows is written into both tenants' databases: the same account,
// member, member cart and anonymous cart, with the same ids.
const identicalRows = `
INSERT INTO account (id, username, password_hash, email) VALUES (1, 'ada', 'pbkdf2_sha256$1$salt$hash', 'ada@example.test');
INSERT INTO member (id, account_id) VALUES (1, 1);
INSERT INTO cart (id, member_id) VALUES (1, 1);
INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES (1, 1, 2);
INSERT INTO cart (id, anonymous_cart_id) VALUES (2, '` + sharedAnonCart + `');
INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES (2, 2, 3);
SELECT setval(pg_get_serial_sequence(t, 'id'), 100) FROM unnest(ARRAY['account', 'member', 'cart', 'cart_sku']) t;`

// signIn stands in for the accounts app's sign-in in this test: a POST
// behind the "login" rate limit that signs the visitor in as account 1,
// keeps a per-tenant secret in the session, and rotates the session id and
// CSRF token, as a real login does.
type signIn struct{ limiter *ratelimit.Limiter }

func (a signIn) Mount(r fiber.Router) {
	r.Post("/isolation/login", a.limiter.Handler("login", ratelimit.ByClientIP), func(c *fiber.Ctx) error {
		if err := sessions.Regenerate(c); err != nil {
			return err
		}
		s := sessions.Get(c)
		s.UserID = 1
		s.Set("secret", "belongs to "+server.Tenant(c).Slug)
		csrf.Rotate(c)
		return c.JSON(fiber.Map{"login": "success"})
	})
	r.Get("/isolation/session", func(c *fiber.Ctx) error {
		s := sessions.Get(c)
		return c.JSON(fiber.Map{"user_id": s.UserID, "secret": s.Value("secret")})
	})
	r.Get("/isolation/token", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"token": csrf.Ensure(c)})
	})
	r.Post("/isolation/action", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"action": "success"}) })
}

// isoPlane is two tenants provisioned by the control plane (own database,
// own role, own secret bundle with its own session key) behind the data
// plane chain of `swa serve`.
type isoPlane struct {
	addr string
	a, b registry.Tenant
	tenA *directory.Tenant // the data plane's view of a and b
	tenB *directory.Tenant
	key  csrf.KeyFunc // the tenants' session keys, read as the data plane reads them
}

func newIsoPlane(t *testing.T) (*isoPlane, func(ctx context.Context, keys ...string) int64) {
	t.Helper()
	ctx := context.Background()
	// The control plane's side: registry, local secrets store, provisioning.
	cp := provisiontest.New(t, provisiontest.Config{Tag: "iso", BaseDomain: isoBaseDomain,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	admin, reg, master, svc := cp.AdminURL, cp.Platform, cp.MasterKey, cp.Service
	var err error
	p := &isoPlane{}
	for _, slot := range []*registry.Tenant{&p.a, &p.b} {
		slug := "alpha"
		if slot == &p.b {
			slug = "beta"
		}
		*slot, err = svc.Create(ctx, provision.CreateRequest{
			Slug: slug, Origins: []string{isoFrontend},
			Settings: directory.Settings{RateLimits: map[string]string{"login": "2/h"}},
		}, "isolation-test")
		if err != nil {
			t.Fatalf("provision %s: %v", slug, err)
		}
		conn, err := pgx.Connect(ctx, pgtest.WithDatabase(admin, slot.DBName))
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, identicalRows)
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("seed %s: %v", slug, err)
		}
	}

	if p.a.DBName == p.b.DBName || p.a.DBRole == p.b.DBRole || p.a.ID == p.b.ID {
		t.Fatalf("tenants share a database, role or id: %+v %+v", p.a, p.b)
	}

	// The data plane's side, wired as cmd/swa newDataPlane wires it.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	metrics := prometheus.NewRegistry()
	store, err := secrets.New(ctx, secrets.Options{Backend: "local", MasterKey: master, Pool: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rdb, redisPrefix := pgtest.Redis(t)
	dir := directory.New(directory.Options{DB: reg, BaseDomain: isoBaseDomain, Log: log})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	pm, err := pools.New(pools.Options{Secrets: store, Metrics: metrics, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.CloseAll)
	dir.OnChange(pm.OnTenantChange)
	limiter := ratelimit.New(ratelimit.Options{Redis: rdb, Prefix: redisPrefix, Log: log, Metrics: metrics})
	events := analytics.New(analytics.Options{Pools: pm, Log: log, Metrics: metrics})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = events.Close(ctx)
	})
	p.key = csrf.BundleKey(store, 0)
	shopApp := shop.New(shop.Options{
		Pools:    pm,
		Payments: payments.New(payments.Options{Secrets: store, Log: log}),
		Key:      shop.KeyFunc(p.key),
		Log:      log,
	})
	sess := sessions.New(sessions.Options{Redis: rdb, Prefix: redisPrefix, Log: log})
	prot := csrf.New(csrf.Options{Key: p.key, Exempt: []string{"/order/stripe-webhook"}, Log: log})
	app := server.New(server.Options{
		Directory:  dir,
		Pools:      pm,
		Log:        log,
		Metrics:    metrics,
		Env:        "production",
		Middleware: []fiber.Handler{sess.Handler(), prot.Handler()},
		Apps:       []server.App{events, shopApp, signIn{limiter: limiter}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	p.addr = ln.Addr().String()

	var res directory.Result
	if p.tenA, res = dir.Lookup(p.host(p.a)); res != directory.Found {
		t.Fatalf("directory: %s is %v", p.host(p.a), res)
	}
	if p.tenB, res = dir.Lookup(p.host(p.b)); res != directory.Found {
		t.Fatalf("directory: %s is %v", p.host(p.b), res)
	}
	exists := func(ctx context.Context, keys ...string) int64 {
		for i := range keys {
			keys[i] = redisPrefix + keys[i]
		}
		n, err := rdb.Exists(ctx, keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return p, exists
}

func (p *isoPlane) host(tn registry.Tenant) string { return tn.Slug + "." + isoBaseDomain }

// isoReply is one HTTP answer: status, the cookies it set, the JSON body.
type isoReply struct {
	status  int
	cookies map[string]string
	body    map[string]any
	raw     string
}

// call sends one request to host as a browser on the tenants' frontend
// would (Origin set), with the given cookies and, for a POST, form and
// X-CSRFToken header.
func (p *isoPlane) call(t *testing.T, host, method, path string, cookies map[string]string, token string, form url.Values) isoReply {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "http://"+p.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Origin", isoFrontend)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.Header.Set(csrf.HeaderName, token)
	}
	for k, v := range cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := isoReply{status: resp.StatusCode, cookies: map[string]string{}, raw: string(raw)}
	for _, c := range resp.Cookies() {
		r.cookies[c.Name] = c.Value
	}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// token fetches a CSRF token from host, as the client's GET /user/token does.
func (p *isoPlane) token(t *testing.T, host string) string {
	t.Helper()
	r := p.call(t, host, "GET", "/isolation/token", nil, "", nil)
	tok := r.cookies[csrf.CookieName]
	if r.status != 200 || tok == "" || r.body["token"] != tok {
		t.Fatalf("token from %s: status %d, cookie %q, body %s", host, r.status, tok, r.raw)
	}
	return tok
}

// login signs in on host and returns the new sessionid and csrftoken.
func (p *isoPlane) login(t *testing.T, host string) (sid, tok string) {
	t.Helper()
	tok = p.token(t, host)
	r := p.call(t, host, "POST", "/isolation/login", map[string]string{csrf.CookieName: tok}, tok, url.Values{})
	sid, tok = r.cookies[sessions.CookieName], r.cookies[csrf.CookieName]
	if r.status != 200 || sid == "" || tok == "" {
		t.Fatalf("login on %s: status %d, cookies %v, body %s", host, r.status, r.cookies, r.raw)
	}
	return sid, tok
}

// cartItems is GET /order/cart-items: whether a cart was found and the
// quantity of its one line.
func (p *isoPlane) cartItems(t *testing.T, host string, cookies map[string]string) (found bool, qty float64) {
	t.Helper()
	r := p.call(t, host, "GET", "/order/cart-items", cookies, "", nil)
	if r.status != 200 {
		t.Fatalf("cart-items on %s: status %d, body %s", host, r.status, r.raw)
	}
	found, _ = r.body["cart_found"].(bool)
	if !found {
		return false, 0
	}
	var body struct {
		ItemData struct {
			Lines map[string]struct {
				Quantity float64 `json:"quantity"`
			} `json:"product_sku_data"`
		} `json:"item_data"`
	}
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil || len(body.ItemData.Lines) != 1 {
		t.Fatalf("cart-items on %s: %s", host, r.raw)
	}
	return true, body.ItemData.Lines["0"].Quantity
}

// TestCrossTenantCredentials: two tenants seeded with identical ids and data; a
// session, CSRF token or signed cookie from one is worthless on the other.
// Everything goes over HTTP through the data plane chain of `swa serve`.
func TestCrossTenantCredentials(t *testing.T) {
	t.Parallel()
	p, exists := newIsoPlane(t)
	hostA, hostB := p.host(p.a), p.host(p.b)
	ctx := context.Background()

	t.Run("session from A is unknown on B", func(t *testing.T) {
		sid, _ := p.login(t, hostA)
		withSID := map[string]string{sessions.CookieName: sid}

		r := p.call(t, hostA, "GET", "/isolation/session", withSID, "", nil)
		if r.body["user_id"] != 1.0 || r.body["secret"] != "belongs to alpha" {
			t.Fatalf("A does not know its own session: %s", r.raw)
		}
		if found, qty := p.cartItems(t, hostA, withSID); !found || qty != 2 {
			t.Fatalf("A: member cart found=%v quantity=%v, want the seeded member cart (2)", found, qty)
		}

		r = p.call(t, hostB, "GET", "/isolation/session", withSID, "", nil)
		if r.status != 200 || r.body["user_id"] != 0.0 || r.body["secret"] != "" {
			t.Errorf("B with A's sessionid: status %d, body %s; want an anonymous visitor", r.status, r.raw)
		}
		// B holds the same account 1 with the same member cart: it must
		// still see an anonymous visitor without a cart.
		if found, qty := p.cartItems(t, hostB, withSID); found {
			t.Errorf("B with A's sessionid found a cart (quantity %v): A's session was honoured", qty)
		}
		if n := exists(ctx, itoa(p.a.ID)+":sess:"+sid); n != 1 {
			t.Errorf("A's session record is gone after B saw its id")
		}
		if n := exists(ctx, itoa(p.b.ID)+":sess:"+sid); n != 0 {
			t.Errorf("B stored a session under A's id")
		}
		// And the other way round: B's own sign-in is B's alone.
		sidB, _ := p.login(t, hostB)
		r = p.call(t, hostA, "GET", "/isolation/session", map[string]string{sessions.CookieName: sidB}, "", nil)
		if r.body["user_id"] != 0.0 || r.body["secret"] != "" {
			t.Errorf("A with B's sessionid: %s; want an anonymous visitor", r.raw)
		}
	})

	t.Run("csrftoken from A is refused by B", func(t *testing.T) {
		tokA := p.token(t, hostA)
		withTok := map[string]string{csrf.CookieName: tokA}
		if r := p.call(t, hostA, "POST", "/isolation/action", withTok, tokA, url.Values{}); r.status != 200 {
			t.Fatalf("A refuses its own token: %d %s", r.status, r.raw)
		}
		for _, path := range []string{"/isolation/action", "/isolation/login", "/order/cart-add-product-sku"} {
			r := p.call(t, hostB, "POST", path, withTok, tokA, url.Values{"sku_id": {"1"}, "quantity": {"1"}})
			if r.status != 403 || r.body["error"] != "csrf_failed" {
				t.Errorf("POST %s on B with A's csrftoken (cookie and header): %d %s; want 403 csrf_failed", path, r.status, r.raw)
			}
			if r.cookies[sessions.CookieName] != "" || r.cookies[cart.CookieName] != "" {
				t.Errorf("POST %s on B with A's csrftoken set cookies %v", path, r.cookies)
			}
		}
		// B answers a token request carrying A's cookie with a token of its own.
		r := p.call(t, hostB, "GET", "/isolation/token", withTok, "", nil)
		if tokB := r.cookies[csrf.CookieName]; tokB == "" || tokB == tokA {
			t.Errorf("B kept A's csrftoken (new cookie %q)", tokB)
		}
	})

	t.Run("an_ct from A is worthless on B", func(t *testing.T) {
		keyA, err := p.key(ctx, p.tenA)
		if err != nil {
			t.Fatal(err)
		}
		keyB, err := p.key(ctx, p.tenB)
		if err != nil {
			t.Fatal(err)
		}
		if string(keyA) == string(keyB) {
			t.Fatal("the two tenants were given the same session key")
		}
		// A value signed for A naming the cart id both databases hold.
		signed := cart.SignAnonymousID(keyA, sharedAnonCart, time.Now())
		withCart := map[string]string{cart.CookieName: signed}
		if found, qty := p.cartItems(t, hostA, withCart); !found || qty != 3 {
			t.Fatalf("A: anonymous cart found=%v quantity=%v, want the seeded cart (3)", found, qty)
		}
		if found, _ := p.cartItems(t, hostB, withCart); found {
			t.Errorf("B honoured an an_ct signed for A (it holds the same cart id)")
		}
		if _, ok := cart.VerifyAnonymousID(keyB, signed); ok {
			t.Errorf("an an_ct signed for A verifies with B's key")
		}

		// One A issued itself over HTTP.
		tokA := p.token(t, hostA)
		r := p.call(t, hostA, "POST", "/order/cart-add-product-sku", map[string]string{csrf.CookieName: tokA}, tokA,
			url.Values{"sku_id": {"1"}, "quantity": {"4"}})
		issued := r.cookies[cart.CookieName]
		if r.status != 200 || issued == "" {
			t.Fatalf("cart-add-product-sku on A: %d, cookies %v, %s", r.status, r.cookies, r.raw)
		}
		if found, qty := p.cartItems(t, hostA, map[string]string{cart.CookieName: issued}); !found || qty != 4 {
			t.Fatalf("A: the cart it issued found=%v quantity=%v", found, qty)
		}
		if found, _ := p.cartItems(t, hostB, map[string]string{cart.CookieName: issued}); found {
			t.Errorf("B found a cart for the an_ct A issued")
		}
		if _, ok := cart.VerifyAnonymousID(keyB, issued); ok {
			t.Errorf("the an_ct A issued verifies with B's key")
		}
	})

	t.Run("anonymousclientevent signed for A fails on B", func(t *testing.T) {
		keyA, err := p.key(ctx, p.tenA)
		if err != nil {
			t.Fatal(err)
		}
		keyB, err := p.key(ctx, p.tenB)
		if err != nil {
			t.Fatal(err)
		}
		signerA, signerB := account.NewSigner(keyA), account.NewSigner(keyB)
		v := signerA.ClientEventCookieValue()
		if !signerA.ValidClientEventCookie(v) {
			t.Fatalf("A refuses its own anonymousclientevent %q", v)
		}
		if signerB.ValidClientEventCookie(v) {
			t.Errorf("an anonymousclientevent signed for A verifies on B")
		}
		an := signerA.CartCookieValue(sharedAnonCart)
		if _, err := signerB.CartID(an); err == nil {
			t.Errorf("an an_ct signed by A's account signer verifies on B")
		}
	})

	t.Run("rate-limit counters are per tenant", func(t *testing.T) {
		// Both tenants allow 2 logins an hour per client IP; every request
		// here comes from 127.0.0.1. Exhaust A's, then B still signs in.
		blocked := false
		for range 4 { // enough even if the hour turns once meanwhile
			tok := p.token(t, hostA)
			r := p.call(t, hostA, "POST", "/isolation/login", map[string]string{csrf.CookieName: tok}, tok, url.Values{})
			if r.status == 403 {
				if r.body["error"] != "rate_limited" {
					t.Fatalf("login on A: %d %s; want rate_limited", r.status, r.raw)
				}
				blocked = true
				break
			}
		}
		if !blocked {
			t.Fatal("A's login limit never applied")
		}
		p.login(t, hostB) // fails the test unless 200
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
