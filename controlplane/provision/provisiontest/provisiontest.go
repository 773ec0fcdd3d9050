// Package provisiontest gives a test its own control plane on the test
// cluster: a fresh platform database, a local secrets store in it, the
// cluster registered as the database server "default", and a
// provision.Service whose tenant databases and roles carry a random prefix,
// all dropped when the test ends. Like pgtest, it skips locally without a
// database and fails under CI.
package provisiontest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// Config adjusts an Env; the zero value is fine.
type Config struct {
	// Tag starts the random database prefix (default "p"), so leftovers of
	// a crashed run show which test made them.
	Tag string
	// BaseDomain gives tenants {slug}.{BaseDomain} (default "example.test").
	BaseDomain string
	// MaxConns sizes the platform pool (0: pgxpool's default). Each running
	// workflow holds a connection of its own for its tenant lock, and needs
	// pool connections for the registry and the secrets store.
	MaxConns int32
	// Log is the service's logger (nil: discarded).
	Log *slog.Logger
	// Options, when set, changes the provisioning options before the
	// service is built.
	Options func(*provision.Options)
}

// Env is one test's control plane.
type Env struct {
	Service  *provision.Service
	Registry *registry.Registry
	// Secrets is the local store (uncached) in the platform database;
	// MasterKey (base64, as SWA_MASTER_KEY) opens it from another process
	// or a data plane under test.
	Secrets   secrets.Store
	MasterKey string
	// Platform is a pool on the platform database at PlatformURL.
	Platform    *pgxpool.Pool
	PlatformURL string
	// AdminURL is the superuser DSN of the test cluster.
	AdminURL string
	// Prefix starts the name of every tenant database, role and template.
	Prefix string
	// Options built Service; With starts from them.
	Options provision.Options

	tb testing.TB
}

// New builds an Env for t. Its databases and roles are dropped at cleanup,
// after every cleanup registered later (pools, servers) has run.
func New(t testing.TB, c Config) *Env {
	t.Helper()
	ctx := context.Background()
	admin := pgtest.AdminURL(t)
	if c.Tag == "" {
		c.Tag = "p"
	}
	if c.BaseDomain == "" {
		c.BaseDomain = "example.test"
	}
	prefix := pgtest.RandomName(c.Tag) + "_"
	// Registered first, so it runs last.
	t.Cleanup(func() { DropPrefixed(t, admin, prefix) })

	platformURL := pgtest.NewDatabase(t, migrations.Platform)
	cfg, err := pgxpool.ParseConfig(platformURL)
	if err != nil {
		t.Fatalf("provisiontest: %v", err)
	}
	if c.MaxConns > 0 {
		cfg.MaxConns = c.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("provisiontest: pool: %v", err)
	}
	t.Cleanup(pool.Close)

	master := secrets.GenerateMasterKey()
	key, err := secrets.ParseMasterKey(master)
	if err != nil {
		t.Fatalf("provisiontest: %v", err)
	}
	store, err := secrets.NewLocal(pool, key)
	if err != nil {
		t.Fatalf("provisiontest: %v", err)
	}
	server, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("provisiontest: %v", err)
	}
	if _, err := registry.New(pool, store).EnsureDBServer(ctx, "default", admin, server.Host, int(server.Port)); err != nil {
		t.Fatalf("provisiontest: %v", err)
	}
	opts := provision.Options{Platform: pool, Secrets: store, Log: c.Log, DBPrefix: prefix, BaseDomain: c.BaseDomain}
	if c.Options != nil {
		c.Options(&opts)
	}
	svc, err := provision.New(opts)
	if err != nil {
		t.Fatalf("provisiontest: %v", err)
	}
	return &Env{
		Service: svc, Registry: svc.Registry(), Secrets: store, MasterKey: master,
		Platform: pool, PlatformURL: platformURL, AdminURL: admin, Prefix: prefix, Options: opts, tb: t,
	}
}

// With returns another service on the same platform, with the Env's
// options changed by mod (a crash hook, a migration set).
func (e *Env) With(mod func(*provision.Options)) *provision.Service {
	e.tb.Helper()
	o := e.Options
	mod(&o)
	svc, err := provision.New(o)
	if err != nil {
		e.tb.Fatalf("provisiontest: %v", err)
	}
	return svc
}

// DropPrefixed drops every database (templates included) and role whose
// name starts with prefix, a few databases at a time: a benchmark leaves
// hundreds.
func DropPrefixed(t testing.TB, admin, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("provisiontest: cleanup: %v", err)
		return
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, `SELECT datname FROM pg_database WHERE left(datname, length($1)) = $1`, prefix)
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("provisiontest: cleanup: %v", err)
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(len(dbs), 4) {
		wg.Go(func() {
			c, err := pgx.Connect(ctx, admin)
			if err != nil {
				t.Errorf("provisiontest: cleanup: %v", err)
				for range work {
				}
				return
			}
			defer c.Close(context.Background())
			for name := range work {
				id := pgx.Identifier{name}.Sanitize()
				if _, err := c.Exec(ctx, "ALTER DATABASE "+id+" WITH IS_TEMPLATE false"); err != nil {
					t.Errorf("provisiontest: cleanup %s: %v", name, err)
				}
				if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
					t.Errorf("provisiontest: cleanup %s: %v", name, err)
				}
			}
		})
	}
	for _, name := range dbs {
		work <- name
	}
	close(work)
	wg.Wait()
	rows, _ = conn.Query(ctx, `SELECT rolname FROM pg_roles WHERE left(rolname, length($1)) = $1`, prefix)
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("provisiontest: cleanup: %v", err)
	}
	for _, r := range roles {
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize()); err != nil {
			t.Errorf("provisiontest: cleanup %s: %v", r, err)
		}
	}
}

// SecondServer registers the second test cluster (SecondServerDSN) as the
// database server name.
func (e *Env) SecondServer(name string) registry.DBServer {
	e.tb.Helper()
	sv, err := e.Registry.RegisterDBServer(context.Background(), registry.DBServerSpec{Name: name, AdminDSN: e.SecondServerDSN()})
	if err != nil {
		e.tb.Fatalf("provisiontest: %v", err)
	}
	return sv
}

// SecondServerDSN is the superuser DSN of the second test cluster
// (SWA_TEST_PG2_DSN, which `deploy/dev/stack up --second-postgres` starts);
// the Env's databases and roles there are dropped at cleanup. Like New, it
// skips locally without that cluster and fails under CI.
func (e *Env) SecondServerDSN() string {
	e.tb.Helper()
	admin := pgtest.Require(e.tb, "SWA_TEST_PG2_DSN")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		pgtest.Missing(e.tb, "Postgres at SWA_TEST_PG2_DSN does not answer: "+err.Error())
	}
	conn.Close(ctx)
	e.tb.Cleanup(func() { DropPrefixed(e.tb, admin, e.Prefix) })
	return admin
}
