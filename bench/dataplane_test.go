package bench

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/analytics"
)

// baseDomain gives every benchmark tenant the host {slug}.bench.test.
const baseDomain = "bench.test"

// frontendOrigin is the origin the beacons are sent from (CORS applies).
const frontendOrigin = "http://localhost:8080"

// redisPrefix mirrors the binary's prefix; pgtest.Redis adds a unique one.
const redisPrefix = "swa:"

// platform is a registry database with n active tenants, each made by the
// control plane's own provisioning: a database cloned from the migrated
// template, its own role and password, and its bundle in the local secrets
// store. Everything is dropped when the benchmark ends.
type platform struct {
	db      *pgxpool.Pool
	store   secrets.Store // the local backend, as the control plane writes it
	admin   string
	prefix  string
	tenants []registry.Tenant
}

// provisionWorkers is how many tenants newPlatform provisions at once:
// each is mostly a CREATE DATABASE ... TEMPLATE (a file copy and a
// checkpoint on the server), so a thousand take minutes one by one.
var provisionWorkers = flag.Int("provision.workers", 16, "tenants the benchmarks provision at once")

func newPlatform(b *testing.B, n int) *platform {
	b.Helper()
	ctx := context.Background()
	workers := max(1, min(n, *provisionWorkers))
	// The provisioning workers each hold a platform connection for their
	// tenant lock and need more for the registry and the secrets store.
	cp := provisiontest.New(b, provisiontest.Config{Tag: "bench", BaseDomain: baseDomain, MaxConns: int32(3*workers + 8)})
	p := &platform{db: cp.Platform, store: cp.Secrets, admin: cp.AdminURL, prefix: cp.Prefix}
	// A registered server holds 500 tenant databases unless told otherwise.
	if _, err := cp.Platform.Exec(ctx, `UPDATE db_servers SET capacity = greatest(capacity, $1)`, n); err != nil {
		b.Fatal(err)
	}
	svc := cp.Service
	start := time.Now()
	p.tenants = make([]registry.Tenant, n)
	inParallel(b, n, workers, func(i int) error {
		t, err := svc.Create(ctx, provision.CreateRequest{
			Slug:    fmt.Sprintf("t%04d", i),
			Origins: []string{frontendOrigin},
		}, "bench")
		if err != nil {
			return fmt.Errorf("create tenant %d: %w", i, err)
		}
		p.tenants[i] = t
		return nil
	})
	b.Logf("provisioned %d tenants in %v (%d at once)", n, time.Since(start).Round(time.Millisecond), workers)
	return p
}

// inParallel calls do for 0..n-1 from workers goroutines and fails the
// benchmark with every error once all have run.
func inParallel(b *testing.B, n, workers int, do func(i int) error) {
	b.Helper()
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				if err := do(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Error(err)
	}
	if b.Failed() {
		b.FailNow()
	}
}

// host is the hostname tenant i answers on.
func (p *platform) host(i int) string { return p.tenants[i].Slug + "." + baseDomain }

// dataPlane is the chain `swa serve` builds (cmd/swa newDataPlane), over a
// platform: the directory read from the registry, the tenant pools under
// one budget behind a secrets cache, sessions and CSRF middleware, the
// analytics app and any extra apps, serving on a loopback listener.
type dataPlane struct {
	metrics   *prometheus.Registry
	dir       *directory.Directory
	pools     *pools.Manager
	analytics *analytics.App
	addr      string
	closeOnce sync.Once
}

// close writes the analytics app's buffered beacons and closes every pool,
// waiting for their connections to end; later calls do nothing. The
// benchmark's cleanup calls it, and BenchmarkBudget after each phase, so
// that a finished data plane's flusher opens no more connections.
func (dp *dataPlane) close(b *testing.B) {
	dp.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dp.analytics.Close(ctx); err != nil {
			b.Errorf("analytics close: %v", err)
		}
		dp.pools.CloseAll()
	})
}

type planeOptions struct {
	Budget, MaxConns int32
	AcquireTimeout   time.Duration
	// ConnParams and QueryExecMode are the pools' options; ConnParams
	// defaults to SWA_TENANT_DB_PARAMS, as `swa serve` reads it (the local
	// stack exports sslmode=disable: with libpq's default "prefer" every
	// login would first try TLS, be refused, and dial again).
	ConnParams, QueryExecMode string
	// StatementTimeout is the pools' option (0: their default).
	StatementTimeout time.Duration
	Apps             []server.App
	// AppsOver builds more apps once the pools and the session store
	// exist (the accounts app needs both).
	AppsOver func(pools *pools.Manager, sess *sessions.Store) []server.App
}

func newDataPlane(b *testing.B, p *platform, o planeOptions) *dataPlane {
	b.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)) // formatted as in production, then dropped
	reg := prometheus.NewRegistry()
	rdb, _ := pgtest.Redis(b)
	store := secrets.NewCache(p.store, 0, log)

	dp := &dataPlane{metrics: reg}
	dp.dir = directory.New(directory.Options{DB: p.db, BaseDomain: baseDomain, Log: log})
	if err := dp.dir.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	if dp.dir.Len() != len(p.tenants) {
		b.Fatalf("directory holds %d tenants, want %d", dp.dir.Len(), len(p.tenants))
	}
	var err error
	dp.pools, err = pools.New(pools.Options{
		Secrets: store, MaxConns: o.MaxConns, Budget: o.Budget, AcquireTimeout: o.AcquireTimeout,
		ConnParams: cmp.Or(o.ConnParams, os.Getenv("SWA_TENANT_DB_PARAMS")), QueryExecMode: o.QueryExecMode,
		StatementTimeout: o.StatementTimeout,
		Metrics:          reg, Log: log,
	})
	if err != nil {
		b.Fatal(err)
	}
	dp.dir.OnChange(dp.pools.OnTenantChange)
	dp.analytics = analytics.New(analytics.Options{Pools: dp.pools, Log: log, Metrics: reg})
	sess := sessions.New(sessions.Options{Redis: rdb, Prefix: redisPrefix, Log: log})
	apps := append([]server.App{dp.analytics}, o.Apps...)
	if o.AppsOver != nil {
		apps = append(apps, o.AppsOver(dp.pools, sess)...)
	}
	prot := csrf.New(csrf.Options{Key: csrf.BundleKey(store, 0), Exempt: []string{"/order/stripe-webhook"}, Log: log})
	app := server.New(server.Options{
		Directory:  dp.dir,
		Pools:      dp.pools,
		Log:        log,
		Metrics:    reg,
		Env:        "production",
		Middleware: []fiber.Handler{sess.Handler(), prot.Handler()},
		Apps:       apps,
	})
	dp.addr = listen(b, app)
	b.Cleanup(func() { dp.close(b) })
	return dp
}

// listen serves app on 127.0.0.1 with an ephemeral port until the benchmark
// ends, and returns the address.
func listen(b *testing.B, app *fiber.App) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.ShutdownWithTimeout(10 * time.Second) })
	return ln.Addr().String()
}

// plainApp is a bare Fiber app answering the beacon route with the same
// JSON as the analytics app, and nothing else: the baseline.
func plainApp() *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/clientevent/pageview", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(`"thank you"`)
	})
	return app
}

// dbApp answers GET /bench/db with a small SELECT on the tenant's own
// database through server.Conn: the request that needs a connection.
type dbApp struct{}

func (dbApp) Mount(r fiber.Router) {
	r.Get("/bench/db", func(c *fiber.Ctx) error {
		var on bool
		err := server.Conn(c, func(conn *pgxpool.Conn) error {
			return conn.QueryRow(c.UserContext(),
				`SELECT log_client_events FROM clientevent_configuration WHERE id = 1`).Scan(&on)
		})
		if err != nil || c.Response().StatusCode() == fiber.StatusServiceUnavailable {
			return err
		}
		return c.JSON(fiber.Map{"log_client_events": on})
	})
}

// countRows sums count(*) of table over the tenants' databases, connecting
// as the superuser (not through the pools being measured).
func (p *platform) countRows(b *testing.B, table string, tenants ...registry.Tenant) int {
	b.Helper()
	total := 0
	for _, t := range tenants {
		conn, err := pgx.Connect(context.Background(), pgtest.WithDatabase(p.admin, t.DBName))
		if err != nil {
			b.Fatal(err)
		}
		var n int
		err = conn.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
		conn.Close(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return total
}

// backends counts the server processes open to the platform's tenant
// databases as their tenants' roles, as Postgres sees them: the data
// plane's, directly or through a PgBouncer (which names them otherwise).
func (p *platform) backends(ctx context.Context, conn *pgx.Conn) (int, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE left(datname, length($1)) = $1 AND left(usename, length($1)) = $1`, p.prefix).Scan(&n)
	return n, err
}

// counter sums every series of the counter name in the data plane's metrics.
func (dp *dataPlane) counter(b *testing.B, name string) float64 {
	b.Helper()
	families, err := dp.metrics.Gather()
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, mf := range families {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// sessions counts the connections ever established to the platform's
// tenant databases (pg_stat_database.sessions, Postgres 14 and later).
func (p *platform) sessions(b *testing.B, conn *pgx.Conn) int {
	b.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT coalesce(sum(sessions), 0) FROM pg_stat_database
		WHERE left(datname, length($1)) = $1`, p.prefix).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
