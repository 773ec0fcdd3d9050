package provision

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// env is one test's platform: its own platform database, secrets store,
// database prefix (names are cluster-global) and service.
type env struct {
	t      testing.TB
	admin  string // superuser DSN of the test cluster
	pool   *pgxpool.Pool
	store  secrets.Store
	prefix string
	svc    *Service
	opts   Options
}

func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	admin := pgtest.AdminURL(t)
	pool := pgtest.NewPool(t, migrations.Platform)
	key := make([]byte, secrets.MasterKeySize)
	_, _ = rand.Read(key)
	store, err := secrets.NewLocal(pool, key)
	if err != nil {
		t.Fatal(err)
	}
	prefix := pgtest.RandomName("p") + "_"
	t.Cleanup(func() { dropPrefixed(t, admin, prefix) })

	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := registry.New(pool, store).EnsureDBServer(ctx, "default", admin, cfg.Host, int(cfg.Port)); err != nil {
		t.Fatal(err)
	}
	opts := Options{Platform: pool, Secrets: store, DBPrefix: prefix, BaseDomain: "example.test"}
	if mod != nil {
		mod(&opts)
	}
	svc, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, admin: admin, pool: pool, store: store, prefix: prefix, svc: svc, opts: opts}
}

// with returns a service on the same platform with other options.
func (e *env) with(mod func(*Options)) *Service {
	o := e.opts
	mod(&o)
	svc, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// dropPrefixed removes every database (templates included) and role whose
// name starts with prefix.
func dropPrefixed(t testing.TB, admin, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a benchmark leaves 200 databases
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT datname FROM pg_database WHERE left(datname, length($1)) = $1`, prefix)
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, db := range dbs {
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(db)+" WITH IS_TEMPLATE false"); err != nil {
			t.Errorf("cleanup %s: %v", db, err)
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE)"); err != nil {
			t.Errorf("cleanup %s: %v", db, err)
		}
	}
	rows, _ = conn.Query(ctx, `SELECT rolname FROM pg_roles WHERE left(rolname, length($1)) = $1`, prefix)
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, r := range roles {
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+ident(r)); err != nil {
			t.Errorf("cleanup %s: %v", r, err)
		}
	}
}

// adminConn connects as the cluster superuser to db ("" for the admin DSN's own).
func (e *env) adminConn(db string) *pgx.Conn {
	e.t.Helper()
	dsn := e.admin
	if db != "" {
		dsn = pgtest.WithDatabase(e.admin, db)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// tenantConn connects to db as role with password.
func (e *env) tenantConn(db, role, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(e.admin)
	if err != nil {
		return nil, err
	}
	cfg.Database, cfg.User, cfg.Password = db, role, password
	return pgx.ConnectConfig(context.Background(), cfg)
}

// tenantConnOf connects to a tenant's database with its own role and the
// password from its secret.
func (e *env) tenantConnOf(tn registry.Tenant) *pgx.Conn {
	e.t.Helper()
	b, err := secrets.LoadBundle(context.Background(), e.store, tn.SecretsRef)
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := e.tenantConn(tn.DBName, tn.DBRole, b.DBPassword)
	if err != nil {
		e.t.Fatalf("connect to %s as %s: %v", tn.DBName, tn.DBRole, err)
	}
	e.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (e *env) count(conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
