package provision_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// env is one test's platform (provisiontest.Env) under the short names
// these tests use.
type env struct {
	*provisiontest.Env
	t      testing.TB
	admin  string // superuser DSN of the test cluster
	pool   *pgxpool.Pool
	store  secrets.Store
	prefix string
	svc    *provision.Service
}

func newEnv(t testing.TB, mod func(*provision.Options)) *env {
	t.Helper()
	return newEnvWith(t, provisiontest.Config{Options: mod})
}

func newEnvWith(t testing.TB, c provisiontest.Config) *env {
	t.Helper()
	pe := provisiontest.New(t, c)
	return &env{Env: pe, t: t, admin: pe.AdminURL, pool: pe.Platform, store: pe.Secrets, prefix: pe.Prefix, svc: pe.Service}
}

// with returns a service on the same platform with other options.
func (e *env) with(mod func(*provision.Options)) *provision.Service { return e.With(mod) }

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

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
