package shop_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/cart"
	"github.com/startupwebapp/platform/tenant/shop"
)

const (
	frontend = "http://localhost:8080"
	hostA    = "shop.alpha.test"
	hostB    = "shop.beta.test"
)

// env is a running data plane with two tenants (alpha, beta), each with its
// own database, secrets and Stripe keys.
type env struct {
	base    string
	replica string        // the second data plane's base URL, with envOptions.replica
	db      *pgxpool.Pool // alpha's database
	dbB     *pgxpool.Pool
	store   secrets.Store
	pools   *pools.Manager
	// trips counts the round trips of the (first) data plane's pools
	trips *pgtest.RoundTrips
	// webhook secrets of alpha and beta
	whA, whB string
	// the database roles alpha and beta connect as
	roleA, roleB string
	// reg is the platform registry; dir the directory read from it
	reg *pgxpool.Pool
	dir *directory.Directory
}

type envOptions struct {
	stripeBase    string        // default: SWA_STRIPE_API_BASE (stripe-mock)
	stripeTimeout time.Duration // default: payments.DefaultTimeout
	// replica starts a second data plane on the same tenants (env.replica)
	replica bool
	// catalogCacheBytes is the shop's Options.CatalogCacheBytes
	catalogCacheBytes int64
	// check, when set, is the Check of every session's claim (as the
	// accounts app's SessionClaim checks the password hash)
	check func(passwordHash string) bool
	// registry is the shop's Options.Registry (set by newEnv)
	registry shop.Registry
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.stripeBase == "" {
		o.stripeBase = pgtest.Service(t, "SWA_STRIPE_API_BASE")
	}
	ctx := context.Background()
	reg := pgtest.NewPool(t, migrations.Platform)
	admin, err := url.Parse(pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(admin.Port())
	srv := directorytest.AddServer(t, reg, pgtest.RandomName("srv"), admin.Hostname(), port)
	key, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	store, err := secrets.NewLocal(reg, key)
	if err != nil {
		t.Fatal(err)
	}
	o.registry = reg
	e := &env{reg: reg, store: store, whA: "whsec_alpha_" + pgtest.RandomName(""), whB: "whsec_beta_" + pgtest.RandomName("")}
	for _, tn := range []struct {
		slug, host, wh string
		db             **pgxpool.Pool
		role           *string
	}{{"alpha", hostA, e.whA, &e.db, &e.roleA}, {"beta", hostB, e.whB, &e.dbB, &e.roleB}} {
		dsn := pgtest.NewDatabase(t, migrations.Tenant)
		u, _ := url.Parse(dsn)
		dbName := strings.TrimPrefix(u.Path, "/")
		role, rolePW := pgtest.RandomName("shoptest_"), pgtest.RandomName("pw")
		*tn.role = role
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
		directorytest.AddTenant(t, reg, directorytest.Tenant{
			Slug: tn.slug, Domains: []string{tn.host}, Origins: []string{frontend},
			Server: srv, DBName: dbName, DBRole: role,
			Settings: directory.Settings{FrontendOrigin: frontend},
		})
		sk := base64.StdEncoding.EncodeToString([]byte("session-key-of-" + tn.slug + "-0123456789abcdef"))
		if _, err := secrets.SaveBundle(ctx, store, secrets.TenantSecretName(tn.slug), secrets.TenantBundle{
			DBPassword: rolePW, SessionKey: sk, StripeSecretKey: "sk_test_" + tn.slug, StripePublishableKey: "pk_test_" + tn.slug,
			StripeWebhookSecret: tn.wh,
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
	e.dir = dir
	rdb, prefix := pgtest.Redis(t)
	e.trips = new(pgtest.RoundTrips)
	e.base, e.pools = serveReplica(t, o, dir, store, rdb, prefix, log, e.trips)
	if o.replica {
		e.replica, _ = serveReplica(t, o, dir, store, rdb, prefix, log, nil)
	}
	return e
}

// serveReplica starts one data plane on the tenants of dir, with pools and
// a shop (and so a catalogue cache) of its own, as a replica has.
func serveReplica(t testing.TB, o envOptions, dir *directory.Directory, store secrets.Store, rdb *redis.Client, prefix string, log *slog.Logger, trips *pgtest.RoundTrips) (string, *pools.Manager) {
	opts := pools.Options{Secrets: store, ConnParams: "sslmode=disable", MaxConns: 8, Log: log}
	if trips != nil {
		opts.Tracer = trips
	}
	pm, err := pools.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.CloseAll)
	keyFn := csrf.BundleKey(store, time.Minute)
	var claim func(c *fiber.Ctx) cart.Claim
	if o.check != nil {
		claim = func(c *fiber.Ctx) cart.Claim {
			return cart.Claim{AccountID: sessions.Get(c).UserID, Check: o.check}
		}
	}
	app := server.New(server.Options{
		Directory: dir, Pools: pm, Log: log, Env: "dev",
		Middleware: []fiber.Handler{
			sessions.Middleware(sessions.Options{Redis: rdb, Prefix: prefix, Log: log}),
			csrf.Middleware(csrf.Options{Key: keyFn, Exempt: []string{"/order/stripe-webhook"}, Log: log}),
		},
		Apps: []server.App{
			testRoutes{key: keyFn},
			shop.New(shop.Options{Pools: pm, Payments: payments.New(payments.Options{Secrets: store, APIBase: o.stripeBase, Timeout: o.stripeTimeout, Log: log}),
				Key: shop.KeyFunc(keyFn), Account: claim, CatalogCacheBytes: o.catalogCacheBytes, Log: log, Registry: o.registry}),
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String(), pm
}

// testRoutes stand in for the accounts app, which this package does not
// depend on: a CSRF token, and a sign-in that sets the session's user and
// merges the anonymous cart exactly as /user/login does.
type testRoutes struct{ key csrf.KeyFunc }

func (r testRoutes) Mount(rt fiber.Router) {
	rt.Get("/test/token", func(c *fiber.Ctx) error { return c.SendString(csrf.Ensure(c)) })
	rt.Post("/test/login/:account", func(c *fiber.Ctx) error {
		id, _ := strconv.ParseInt(c.Params("account"), 10, 64)
		k, err := r.key(c.UserContext(), server.Tenant(c))
		if err != nil {
			return err
		}
		anon := cart.CookieID(c, k)
		if err := server.Conn(c, func(conn *pgxpool.Conn) error {
			tx, err := conn.Begin(c.UserContext())
			if err != nil {
				return err
			}
			defer tx.Rollback(c.UserContext())
			member, err := cart.MemberOf(c.UserContext(), tx, id)
			if err != nil {
				return err
			}
			if err := cart.MergeAnonymousIntoMember(c.UserContext(), tx, anon, member.ID); err != nil {
				return err
			}
			return tx.Commit(c.UserContext())
		}); err != nil {
			return err
		}
		if err := sessions.Regenerate(c); err != nil {
			return err
		}
		sessions.Get(c).UserID = id
		cart.ExpireCookie(c)
		return c.SendString("ok")
	})
}

// browser is one visitor: its cookies, sent with every request to a host.
type browser struct {
	t    testing.TB
	e    *env
	host string
	base string // the data plane it talks to: env.base unless set

	mu      sync.Mutex
	cookies map[string]string
}

func (e *env) browser(t testing.TB, host string) *browser {
	return &browser{t: t, e: e, host: host, cookies: map[string]string{}}
}

type answer struct {
	status int
	header http.Header
	raw    string
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.raw), &m); err != nil {
		t.Fatalf("not JSON: %q", a.raw)
	}
	return m
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) answer {
	b.t.Helper()
	a, err := b.try(method, path, form, header)
	if err != nil {
		b.t.Fatal(err)
	}
	return a
}

// try is do for goroutines other than the test's: it returns the error
// instead of failing the test.
func (b *browser) try(method, path string, form url.Values, header map[string]string) (answer, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	base := b.base
	if base == "" {
		base = b.e.base
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return answer{}, err
	}
	req.Host = b.host
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	}
	b.mu.Lock()
	var parts []string
	for k, v := range b.cookies {
		parts = append(parts, k+"="+v)
	}
	tok := b.cookies["csrftoken"]
	b.mu.Unlock()
	if len(parts) > 0 {
		req.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", frontend)
		req.Header.Set("X-CSRFToken", tok)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	b.mu.Lock()
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
			delete(b.cookies, ck.Name)
		} else {
			b.cookies[ck.Name] = ck.Value
		}
	}
	b.mu.Unlock()
	return answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}, nil
}

// decode parses a JSON object answer, for goroutines other than the test's.
func (a answer) decode() (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(a.raw), &m); err != nil {
		return nil, fmt.Errorf("not JSON (%d): %q", a.status, a.raw)
	}
	return m, nil
}

func (b *browser) get(path string) answer { b.t.Helper(); return b.do(http.MethodGet, path, nil, nil) }

func (b *browser) post(path string, form url.Values) answer {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	b.mu.Lock()
	_, ok := b.cookies["csrftoken"]
	b.mu.Unlock()
	if !ok {
		b.get("/test/token")
	}
	return b.do(http.MethodPost, path, form, nil)
}

func (b *browser) cookie(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cookies[name]
}

// newMember inserts an account with a member row and returns the account id.
func newMember(t testing.TB, db *pgxpool.Pool, username, email string) int64 {
	t.Helper()
	var id int64
	err := db.QueryRow(context.Background(), `
WITH a AS (INSERT INTO account (username, password_hash, email, first_name, last_name) VALUES ($1, 'x', $2, 'John', 'Doe') RETURNING id),
     m AS (INSERT INTO member (account_id, mb_cd) SELECT id, $1 || 'mbcd' FROM a)
SELECT id FROM a`, username, email).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// login signs the browser in as account id (merging its anonymous cart).
func (b *browser) login(account int64) {
	b.t.Helper()
	if a := b.post("/test/login/"+strconv.FormatInt(account, 10), nil); a.status != 200 {
		b.t.Fatalf("login: %d %s", a.status, a.raw)
	}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func count(t testing.TB, db *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
