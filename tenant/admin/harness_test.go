package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/logtest"
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
	"github.com/startupwebapp/platform/tenant/admin"
	"github.com/startupwebapp/platform/tenant/shop"
)

const (
	hostA    = "a.admin.test"
	hostB    = "b.admin.test"
	frontend = "http://front.admin.test"
	// ownerPassword passes the members' policy.
	ownerPassword = "Owner-Pass-2026!"
	staffPassword = "Staff-Pass-2026!"
)

// tenantDBs gives each tenant its own real database.
type tenantDBs map[int64]*pgxpool.Pool

func (d tenantDBs) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	conn, err := d[t.ID].Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
}

type fixture struct {
	t      testing.TB
	reg    *pgxpool.Pool // the registry, as its owner
	dir    *directory.Directory
	app    *fiber.App
	dbs    tenantDBs
	pools  *pools.Manager // the served apps' connections
	a, b   *directory.Tenant
	skew   *atomic.Int64
	worker *mail.Worker
	mp     *mailpit.Client
	hasher *account.Hasher
	logs   *logtest.Buffer
	// owner is the address of each tenant's first owner.
	owner map[int64]string
	// whsec is each tenant's Stripe webhook secret.
	whsec map[int64]string
	// keys is each tenant's keyring; rotate replaces a key as rotate-secrets does.
	keys *keyring
	// back is the back office served; backOpts makes another replica of it.
	back     *admin.App
	backOpts admin.Options
}

// keyring holds each tenant's keys, newest first.
type keyring struct {
	mu   sync.Mutex
	keys map[int64][][]byte
}

func (k *keyring) ring(_ context.Context, t *directory.Tenant) ([][]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.keys[t.ID]), nil
}

func (k *keyring) current(ctx context.Context, t *directory.Tenant) ([]byte, error) {
	ring, err := k.ring(ctx, t)
	return ring[0], err
}

// rotate gives the tenant a new key and keeps the replaced ones.
func (k *keyring) rotate(id int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[id] = append([][]byte{[]byte(pgtest.RandomName("rotated-key"))}, k.keys[id]...)
}

type fixtureOptions struct {
	limits map[string]ratelimit.Rate
	// idle is the sessions' idle timeout (default the package's).
	idle time.Duration
	// trustProxy believes X-Forwarded-* from the test client's address.
	trustProxy bool
	// jobTimeout is the import jobs' deadline (default the package's).
	jobTimeout time.Duration
	// stripeBase is where the tenants' Stripe clients go (default
	// stripe-mock).
	stripeBase string
}

// newFixture serves two tenants, each with its own database, the member
// API (sessions, member CSRF with /admin/ exempt) and the back office, the
// way the data plane wires them. Each tenant has an owner.
func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	ctx := context.Background()
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	smtpPort, _ := strconv.Atoi(pgtest.Require(t, "SWA_SMTP_PORT"))
	relay := mail.SMTPSettings{Host: pgtest.Require(t, "SWA_SMTP_HOST"), Port: smtpPort}
	rdb, prefix := pgtest.Redis(t)

	reg := pgtest.NewPool(t, migrations.Platform)
	// Each tenant has its own database and role, reached through a pool
	// manager as on the data plane (the shop's server.Conn), and its own
	// Stripe keys, as the shop and the refunds use them.
	master, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	vault, err := secrets.NewLocal(reg, master)
	if err != nil {
		t.Fatal(err)
	}
	adminURL, err := url.Parse(pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(adminURL.Port())
	srv := directorytest.AddServer(t, reg, pgtest.RandomName("srv"), adminURL.Hostname(), port)
	dsns := map[string]string{}
	whsecs := map[string]string{}
	for _, tn := range []struct{ slug, host string }{{"adma", hostA}, {"admb", hostB}} {
		slug := tn.slug + pgtest.RandomName("")[:6]
		dsn := pgtest.NewDatabase(t, migrations.Tenant)
		u, _ := url.Parse(dsn)
		role, rolePW := pgtest.RandomName("admtest_"), pgtest.RandomName("pw")
		if _, err := reg.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+rolePW+"' IN ROLE "+adminURL.User.Username()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c, err := pgxpool.New(context.Background(), pgtest.AdminURL(t))
			if err == nil {
				_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
				c.Close()
			}
		})
		directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: slug, Domains: []string{tn.host},
			Origins: []string{frontend}, Server: srv, DBName: strings.TrimPrefix(u.Path, "/"), DBRole: role,
			Settings: directory.Settings{FrontendOrigin: frontend, FromAddress: "Shop <owner@example.com>"}})
		whsecs[tn.host] = "whsec_" + pgtest.RandomName("")
		if _, err := secrets.SaveBundle(ctx, vault, secrets.TenantSecretName(slug), secrets.TenantBundle{DBPassword: rolePW,
			StripeSecretKey: "sk_test_" + slug, StripePublishableKey: "pk_test_" + slug, StripeWebhookSecret: whsecs[tn.host],
		}); err != nil {
			t.Fatal(err)
		}
		dsns[tn.host] = dsn
	}
	pm, err := pools.New(pools.Options{Secrets: vault, ConnParams: "sslmode=disable", MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.CloseAll)
	// The back office reaches the registry as the data plane does: a
	// member of swa_dataplane, which may read it and change a shop's own
	// settings through backoffice_update_settings only.
	reader := dataPlaneReader(t, reg)
	dir := directory.New(directory.Options{DB: reader, BaseDomain: "example.invalid"})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, reg: reg, dir: dir, pools: pm, mp: mp, skew: new(atomic.Int64), logs: &logtest.Buffer{}, owner: map[int64]string{}, whsec: map[int64]string{}}
	f.a, _ = dir.Lookup(hostA)
	f.b, _ = dir.Lookup(hostB)
	if f.a == nil || f.b == nil {
		t.Fatal("tenants not in the directory")
	}
	f.whsec[f.a.ID], f.whsec[f.b.ID] = whsecs[hostA], whsecs[hostB]
	if o.stripeBase == "" {
		o.stripeBase = pgtest.Service(t, "SWA_STRIPE_API_BASE")
	}
	pay := payments.New(payments.Options{Secrets: vault, APIBase: o.stripeBase, Timeout: 5 * time.Second})
	f.dbs = tenantDBs{}
	for tn, host := range map[*directory.Tenant]string{f.a: hostA, f.b: hostB} {
		p, err := pgxpool.New(ctx, dsns[host])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		f.dbs[tn.ID] = p
	}
	f.keys = &keyring{keys: map[int64][][]byte{f.a.ID: {[]byte("session-key-of-tenant-a-32-bytes")}, f.b.ID: {[]byte("session-key-of-tenant-b-32-bytes")}}}
	key := f.keys.current
	now := func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }
	// Cheap hashing keeps the tests fast.
	f.hasher = account.NewHasher(account.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	store := sessions.New(sessions.Options{Redis: rdb, Prefix: prefix})
	members := account.New(account.Options{DB: f.dbs, Keyring: f.keys.ring, Sessions: store, Log: log, Hasher: f.hasher, Now: now})
	limits := admin.RateDefaults()
	for k, v := range o.limits {
		limits[k] = v
	}
	limiter := ratelimit.New(ratelimit.Options{Redis: rdb, Prefix: prefix, Defaults: limits, Timeout: time.Second})
	f.backOpts = admin.Options{DB: f.dbs, Keyring: f.keys.ring, Redis: rdb, Prefix: prefix, Limiter: limiter, Hasher: f.hasher,
		Log: log, Now: now, IdleTimeout: o.idle, Sessions: store, JobTimeout: o.jobTimeout, Payments: pay, Registry: reader, BaseDomain: "example.invalid"}
	back := admin.New(f.backOpts)
	f.back = back
	shopApp := shop.New(shop.Options{Pools: f.dbs, Payments: pay, Key: shop.KeyFunc(key), Log: log})
	prot := csrf.New(csrf.Options{Key: csrf.KeyFunc(key), Exempt: []string{"/order/stripe-webhook"}, ExemptPrefixes: []string{"/admin/"}})
	var proxies []string
	if o.trustProxy {
		proxies = []string{"0.0.0.0"}
	}
	f.app = server.New(server.Options{Directory: dir, Pools: pm, Log: log, TrustedProxies: proxies, RouteBodyLimits: admin.UploadBodyLimits(),
		Middleware: []fiber.Handler{store.Handler(), prot.Handler()},
		Apps:       []server.App{members, shopApp, back}})
	w, err := mail.NewWorker(mail.Options{
		Tenants: func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.a, f.b} },
		Conn:    f.dbs.Do,
		Relay:   func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) { return relay, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.worker = w
	for _, tn := range []*directory.Tenant{f.a, f.b} {
		f.owner[tn.ID] = pgtest.RandomName("owner") + "@example.com"
		f.createOwner(tn, f.owner[tn.ID])
	}
	return f
}

func (f *fixture) createOwner(tn *directory.Tenant, email string) {
	f.t.Helper()
	err := pgx.BeginFunc(context.Background(), f.dbs[tn.ID], func(tx pgx.Tx) error {
		created, err := admin.CreateOwner(context.Background(), tx, f.hasher, email, "Olive Owner", ownerPassword, "test")
		if err == nil && !created {
			f.t.Fatal("owner not created")
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// deliver runs the mail worker once and returns the messages to rcpt.
func (f *fixture) deliver(rcpt string, n int) []mailpit.Message {
	f.t.Helper()
	f.worker.RunOnce(context.Background())
	return f.mp.Wait(f.t, `to:"`+rcpt+`"`, n, 10*time.Second)
}

var linkTokenRE = regexp.MustCompile(`/admin/(?:accept-invitation|reset-password)\?token=([A-Za-z0-9_%-]+)`)

// linkToken is the token of the back-office link in a mail.
func linkToken(t testing.TB, m mailpit.Message) string {
	t.Helper()
	match := linkTokenRE.FindStringSubmatch(m.Text)
	if match == nil {
		t.Fatalf("no back-office link in %q", m.Text)
	}
	tok, err := url.QueryUnescape(match[1])
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) skewBy(d time.Duration) { f.skew.Add(int64(d)) }

// client is one caller: a host, a cookie jar, the session's CSRF token, or
// a bearer token.
type client struct {
	t       testing.TB
	f       *fixture
	host    string
	cookies map[string]string
	csrf    string
	bearer  string
	header  map[string]string
	last    *http.Response
	raw     string
}

func (f *fixture) client(host string) *client {
	return &client{t: f.t, f: f, host: host, cookies: map[string]string{}, header: map[string]string{}}
}

// do sends a JSON body (nil for none) and decodes the JSON answer.
func (c *client) do(method, path string, in any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, "http://"+c.host+path, rd)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.prepare(req, method)
	return c.send(req)
}

// form posts a form (the pages).
func (c *client) form(path string, kv ...string) (int, string) {
	c.t.Helper()
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	req := httptest.NewRequest(http.MethodPost, "http://"+c.host+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c.prepare(req, http.MethodGet) // the page form carries its own token
	status, _ := c.send(req)
	return status, c.raw
}

func (c *client) prepare(req *http.Request, method string) {
	var jar []string
	for k, v := range c.cookies {
		jar = append(jar, k+"="+v)
	}
	if len(jar) > 0 {
		req.Header.Set("Cookie", strings.Join(jar, "; "))
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.csrf != "" && method != http.MethodGet {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
}

func (c *client) send(req *http.Request) (int, map[string]any) {
	c.t.Helper()
	res, err := c.f.app.Test(req, -1)
	if err != nil {
		c.t.Fatal(err)
		return 0, nil // a racing goroutine's client does not stop here
	}
	defer res.Body.Close()
	c.last = res
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	raw, _ := io.ReadAll(res.Body)
	c.raw = string(raw)
	var out map[string]any
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", req.Method, req.URL.Path, err, raw)
		}
	}
	return res.StatusCode, out
}

// must is do for answers that must have the status.
func (c *client) must(status int, method, path string, in any) map[string]any {
	c.t.Helper()
	got, out := c.do(method, path, in)
	if got != status {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, got, c.raw, status)
	}
	return out
}

// refused checks a client error: status, code and (when given) field.
func (c *client) refused(status int, code, field, method, path string, in any) map[string]any {
	c.t.Helper()
	out := c.must(status, method, path, in)
	if out["error"] != code || (field != "" && out["field"] != field) {
		c.t.Fatalf("%s %s = %s, want error %q field %q", method, path, c.raw, code, field)
	}
	if _, ok := out["detail"].(string); !ok {
		c.t.Fatalf("%s %s: error without detail: %s", method, path, c.raw)
	}
	return out
}

const api = admin.APIPrefix

// signIn signs a client in with a password (no TOTP) and keeps the token.
func (f *fixture) signIn(host, email, password string) *client {
	f.t.Helper()
	c := f.client(host)
	out := c.must(200, "POST", api+"/session", map[string]string{"email": email, "password": password})
	if out["totp_required"] != false {
		f.t.Fatalf("sign-in: %s", c.raw)
	}
	c.csrf = out["csrf_token"].(string)
	return c
}

// invite has the owner client invite email as role and returns the token
// from the mail.
func (f *fixture) invite(owner *client, email, role string) string {
	f.t.Helper()
	owner.must(201, "POST", api+"/staff/invitations", map[string]string{"email": email, "role": role})
	return linkToken(f.t, f.deliver(email, 1)[0])
}

// addStaff invites and accepts a staff member, returning the address.
func (f *fixture) addStaff(owner *client, role string) string {
	f.t.Helper()
	email := pgtest.RandomName("staff") + "@example.com"
	tok := f.invite(owner, email, role)
	f.client(owner.host).must(201, "POST", api+"/invitations/accept", map[string]string{"token": tok, "name": "Sam Staff", "password": staffPassword})
	return email
}

// auditActions lists a tenant's audit actions, oldest first.
func (f *fixture) auditActions(tn *directory.Tenant) []string {
	f.t.Helper()
	rows, err := f.dbs[tn.ID].Query(context.Background(), `SELECT action FROM staff_audit_log ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// dataPlaneReader returns a pool on the registry logged in as a new member of
// swa_dataplane, the data plane's role.
func dataPlaneReader(t testing.TB, reg *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	role := pgtest.RandomName("reader_")
	if _, err := reg.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD 'reader-pw' IN ROLE swa_dataplane"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) }) //nolint:errcheck
	cfg := reg.Config().ConnConfig
	u := url.URL{Scheme: "postgres", User: url.UserPassword(role, "reader-pw"), Host: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port),
		Path: "/" + cfg.Database, RawQuery: "sslmode=disable"}
	p, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// listen serves the fixture's data plane on a loopback port, for a browser,
// and returns tenant a's base URL on it.
func (f *fixture) listen(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.app.Listener(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { _ = f.app.Shutdown() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://" + hostA + ":" + port
}
