package faults

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/redisconn"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/shop"
)

// baseDomain gives every test tenant the host {slug}.faults.test.
const baseDomain = "faults.test"

// newProxy starts a toxiproxy proxy on an ephemeral loopback port in front
// of upstream (host:port) and stops it when the test ends. Stop and Start
// on it cut and restore the dependency; its Toxics add latency or hangs.
func newProxy(t *testing.T, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := srv.Collection.Add(p, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Collection.Clear() })
	return p
}

// addToxic adds a toxic given as toxiproxy's JSON (name, type, stream,
// attributes).
func addToxic(t *testing.T, p *toxiproxy.Proxy, spec string) {
	t.Helper()
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		t.Fatalf("toxic %s: %v", spec, err)
	}
}

// hostPort splits a proxy's listen address.
func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, port
}

// plane is a control plane (registry, provisioning, local secrets) with
// tenants made by its own provisioning, and a data plane wired as `swa
// serve` wires it (cmd/swa newDataPlane): the directory read from the
// registry, the tenant pools under one budget behind a secrets cache, the
// server chain with the apps given, on a loopback listener.
type plane struct {
	cp    *provisiontest.Env
	dir   *directory.Directory
	pools *pools.Manager
	addr  string
	// dbProxy is in front of the proxied tenants' database server.
	dbProxy *toxiproxy.Proxy
	// redisProxy is in front of Redis (with Accounts).
	redisProxy *toxiproxy.Proxy
	// registryProxy is in front of the platform database (with
	// RegistryProxied).
	registryProxy *toxiproxy.Proxy
	metrics       *prometheus.Registry
	// smtpProxy is in front of Mailpit's SMTP, every tenant's relay (with
	// Mail); mail is the worker that drains the outboxes through it.
	smtpProxy *toxiproxy.Proxy
	mail      *mail.Worker
}

type planeOptions struct {
	Tenants        []string
	RequestTimeout time.Duration
	Apps           []server.App
	// Proxied names the tenants whose database connections go through a
	// proxy (plane.dbProxy) in front of the stack's Postgres: they are moved
	// to a database server registered at the proxy's address before the
	// data plane starts.
	Proxied []string
	// Accounts mounts the accounts app with sessions, CSRF and rate limits
	// in Redis, reached through a proxy (plane.redisProxy).
	Accounts bool
	// RegistryProxied puts a proxy (plane.registryProxy) between the data
	// plane and the platform database, which holds both the registry the
	// directory reads and the local secrets backend; the secrets cache's
	// TTL is then SecretsTTL.
	RegistryProxied bool
	SecretsTTL      time.Duration
	// Mail puts a proxy (plane.smtpProxy) in front of Mailpit's SMTP and
	// names it as every tenant's own relay in its secrets bundle; plane.mail
	// is then the mail worker over the directory's serving tenants, with
	// its relays read from the bundles (mail.BundleRelay), as `swa serve`
	// runs it, configured by MailWorker (Tenants, Conn and Relay are set
	// here) and run by the test.
	Mail       bool
	MailWorker mail.Options
	// StripeBase, when set, gives every tenant Stripe keys (webhook secret
	// webhookSecret(slug)) and mounts the shop (with Accounts) with its
	// Stripe calls sent to that base, each bounded by StripeTimeout.
	StripeBase    string
	StripeTimeout time.Duration
}

// webhookSecret is a tenant's Stripe webhook signing secret (with
// planeOptions.StripeBase).
func webhookSecret(slug string) string { return "whsec_faults_" + slug }

func newPlane(t *testing.T, o planeOptions) *plane {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cp := provisiontest.New(t, provisiontest.Config{Tag: "flt", BaseDomain: baseDomain})
	for _, slug := range o.Tenants {
		if _, err := cp.Service.Create(ctx, provision.CreateRequest{Slug: slug}, "faults"); err != nil {
			t.Fatal(err)
		}
	}
	p := &plane{cp: cp}
	if len(o.Proxied) > 0 {
		u, err := url.Parse(cp.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		p.dbProxy = newProxy(t, "tenant-db", u.Host)
		host, port := hostPort(t, p.dbProxy.Listen)
		sv, err := cp.Registry.EnsureDBServer(ctx, "proxied", cp.AdminURL, host, port)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cp.Platform.Exec(ctx, `UPDATE tenants SET db_server_id = $1 WHERE slug = ANY($2)`, sv.ID, o.Proxied); err != nil {
			t.Fatal(err)
		}
	}
	registry, store := cp.Platform, cp.Secrets
	if o.RegistryProxied {
		u, err := url.Parse(cp.PlatformURL)
		if err != nil {
			t.Fatal(err)
		}
		p.registryProxy = newProxy(t, "registry", u.Host)
		u.Host = p.registryProxy.Listen
		q := u.Query()
		q.Set("sslmode", "disable")
		q.Set("connect_timeout", "2")
		u.RawQuery = q.Encode()
		registry, err = pgxpool.New(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(registry.Close)
		key, err := secrets.ParseMasterKey(cp.MasterKey)
		if err != nil {
			t.Fatal(err)
		}
		if store, err = secrets.NewLocal(registry, key); err != nil {
			t.Fatal(err)
		}
	}
	p.dir = directory.New(directory.Options{DB: registry, BaseDomain: baseDomain, Log: log})
	if err := p.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if o.Mail {
		port, err := strconv.Atoi(pgtest.Require(t, "SWA_SMTP_PORT"))
		if err != nil {
			t.Fatalf("SWA_SMTP_PORT: %v", err)
		}
		p.smtpProxy = newProxy(t, "smtp", net.JoinHostPort(pgtest.Require(t, "SWA_SMTP_HOST"), strconv.Itoa(port)))
	}
	for _, tn := range p.dir.All() {
		if !o.Mail && o.StripeBase == "" {
			break // the bundles as provisioning wrote them
		}
		b, err := secrets.LoadBundle(ctx, cp.Secrets, tn.SecretsRef)
		if err != nil {
			t.Fatal(err)
		}
		if o.Mail {
			b.SMTPHost, b.SMTPPort = hostPort(t, p.smtpProxy.Listen)
		}
		if o.StripeBase != "" {
			b.StripeSecretKey, b.StripePublishableKey = "sk_test_"+tn.Slug, "pk_test_"+tn.Slug
			b.StripeWebhookSecret = webhookSecret(tn.Slug)
		}
		if _, err := secrets.SaveBundle(ctx, cp.Secrets, tn.SecretsRef, b); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	p.pools, err = pools.New(pools.Options{
		Secrets: secrets.NewCache(store, o.SecretsTTL, log), MaxConns: 4, Budget: 32,
		ConnParams: "sslmode=disable", Metrics: prometheus.NewRegistry(), Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.pools.CloseAll)
	p.dir.OnChange(p.pools.OnTenantChange)
	p.metrics = prometheus.NewRegistry()
	if o.Mail {
		w := o.MailWorker
		w.Tenants = func(context.Context) []*directory.Tenant {
			var out []*directory.Tenant
			for _, tn := range p.dir.All() {
				if tn.Serving() {
					out = append(out, tn)
				}
			}
			return out
		}
		w.Conn, w.Relay, w.Log = p.pools.Do, mail.BundleRelay(store, mail.SMTPSettings{}), log
		if p.mail, err = mail.NewWorker(w); err != nil {
			t.Fatal(err)
		}
	}
	apps := o.Apps
	var mw []fiber.Handler
	if o.Accounts {
		direct, prefix := pgtest.Redis(t)
		p.redisProxy = newProxy(t, "redis", direct.Options().Addr)
		// The platform's client settings (redisconn), as swa serve has them.
		rdb := redis.NewClient(redisconn.Configure(&redis.Options{Addr: p.redisProxy.Listen, DB: direct.Options().DB}))
		t.Cleanup(func() { _ = rdb.Close() })
		store := secrets.NewCache(cp.Secrets, 0, log)
		keyring := csrf.BundleKeyring(store, 0)
		sess := sessions.New(sessions.Options{Redis: rdb, Prefix: prefix, Log: log})
		limiter := ratelimit.New(ratelimit.Options{Redis: rdb, Prefix: prefix, Log: log, Metrics: p.metrics})
		accounts := account.New(account.Options{DB: p.pools, Keyring: account.KeyringFunc(keyring), Sessions: sess, Limiter: limiter, Log: log})
		apps = append(apps, accounts)
		if o.StripeBase != "" {
			pay := payments.New(payments.Options{Secrets: store, APIBase: o.StripeBase, Timeout: o.StripeTimeout, Log: log})
			apps = append(apps, shop.New(shop.Options{
				Pools: p.pools, Payments: pay, Key: shop.KeyFunc(keyring.Current()), Account: accounts.SessionClaim,
				Log: log, Registry: registry,
			}))
		}
		prot := csrf.New(csrf.Options{Key: keyring.Current(), Exempt: []string{"/order/stripe-webhook"}, Log: log})
		mw = []fiber.Handler{sess.Handler(), prot.Handler()}
	}
	app := server.New(server.Options{
		Directory: p.dir, Pools: p.pools, Log: log, Metrics: p.metrics,
		Env: "production", RequestTimeout: o.RequestTimeout, Apps: apps, Middleware: mw,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	p.addr = ln.Addr().String()
	return p
}

// host is the hostname a tenant answers on.
func host(slug string) string { return slug + "." + baseDomain }

// reply is one request's outcome.
type reply struct {
	status  int
	code    string // the JSON error body's "error"
	elapsed time.Duration
	at      time.Time // when it was sent
	err     error     // transport error
	key     string    // a write's key
}

var client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// call sends one request to the data plane for the tenant slug.
func (p *plane) call(method, slug, path string, body io.Reader, header map[string]string) reply {
	req, err := http.NewRequest(method, "http://"+p.addr+path, body)
	if err != nil {
		return reply{err: err}
	}
	req.Host = host(slug)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(req)
	r := reply{at: start, err: err}
	if err != nil {
		r.elapsed = time.Since(start)
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r.elapsed = time.Since(start)
	r.status = resp.StatusCode
	if resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		r.code = e.Error
	}
	return r
}

// load runs clients goroutines, each sending send() in a closed loop until
// stop closes, and returns every reply.
func load(clients int, stop <-chan struct{}, send func(client, i int) reply) []reply {
	var mu sync.Mutex
	var all []reply
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := send(c, i)
				mu.Lock()
				all = append(all, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return all
}

// loadFor runs load for d.
func loadFor(d time.Duration, clients int, send func(client, i int) reply) []reply {
	stop := make(chan struct{})
	time.AfterFunc(d, func() { close(stop) })
	return load(clients, stop, send)
}

// quantile returns the q-quantile of the replies' latencies.
func quantile(rs []reply, q float64) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.elapsed
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// statuses counts replies by status (0: transport error).
func statuses(rs []reply) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.status]++
	}
	return m
}

// dbApp stands in for the API's database routes: GET /faults/read runs a
// small SELECT on the tenant's own database, POST /faults/write commits two
// prospect rows ({key}-a and {key}-b) in one transaction before it
// answers, so a write is either whole or absent.
type dbApp struct{}

func (dbApp) Mount(r fiber.Router) {
	r.Get("/faults/read", func(c *fiber.Ctx) error {
		var n int64
		err := server.Conn(c, func(conn *pgxpool.Conn) error {
			return conn.QueryRow(c.UserContext(), `SELECT count(*) FROM prospect`).Scan(&n)
		})
		if err != nil || c.Response().StatusCode() != http.StatusOK {
			return err
		}
		return c.JSON(fiber.Map{"count": n})
	})
	r.Post("/faults/write", func(c *fiber.Ctx) error {
		key := c.FormValue("key")
		err := server.Conn(c, func(conn *pgxpool.Conn) error {
			tx, err := conn.Begin(c.UserContext())
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(context.Background()) }()
			for _, suffix := range []string{"-a", "-b"} {
				if _, err := tx.Exec(c.UserContext(), `INSERT INTO prospect (email) VALUES ($1)`, key+suffix); err != nil {
					return err
				}
			}
			return tx.Commit(c.UserContext())
		})
		if err != nil || c.Response().StatusCode() != http.StatusOK {
			return err
		}
		return c.JSON(fiber.Map{"key": key})
	})
}

// tenantDB connects to a tenant's database as the superuser, directly (not
// through the proxy), for checking what it holds.
func (p *plane) tenantDB(t *testing.T, slug string) *pgx.Conn {
	t.Helper()
	tn, _ := p.dir.Lookup(host(slug))
	if tn == nil {
		t.Fatalf("no tenant %s", slug)
	}
	conn, err := pgx.Connect(context.Background(), pgtest.WithDatabase(p.cp.AdminURL, tn.DBName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
