package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// DBServer is a Postgres server that holds tenant databases.
type DBServer struct {
	ID             int64     `json:"id"`
	Name           string    `json:"name"`
	Host           string    `json:"host"` // where the data plane connects
	Port           int       `json:"port"`
	Capacity       int       `json:"capacity"` // tenant databases it may hold
	Tenants        int       `json:"tenants"`  // tenant databases it holds (not deleted)
	AdminSecretRef string    `json:"-"`
	CreatedAt      time.Time `json:"created_at"`
}

// DBServerSecretName is the secret holding a database server's admin
// connection string.
func DBServerSecretName(name string) string { return "swa/dbservers/" + name }

const serverColumns = `s.id, s.name, s.host, s.port, s.capacity,
	(SELECT count(*) FROM tenants t WHERE t.db_server_id = s.id AND t.status <> '` + string(tenancy.Deleted) + `'),
	s.admin_secret_ref, s.created_at FROM db_servers s`

func scanServer(row pgx.Row) (DBServer, error) {
	var s DBServer
	err := row.Scan(&s.ID, &s.Name, &s.Host, &s.Port, &s.Capacity, &s.Tenants, &s.AdminSecretRef, &s.CreatedAt)
	return s, err
}

// DBServerSpec describes a database server to register.
type DBServerSpec struct {
	Name     string `json:"name"`
	AdminDSN string `json:"admin_dsn"` // a secret: stored in the secrets store only
	Host     string `json:"host"`      // where the data plane connects; empty: the DSN's host
	Port     int    `json:"port"`      // empty: the DSN's port
	Capacity int    `json:"capacity"`  // tenant databases it may hold; 0 keeps the current (500 for a new server)
}

// String keeps the admin connection string out of logs.
func (s DBServerSpec) String() string {
	return fmt.Sprintf("DBServerSpec{Name:%s Host:%s Port:%d Capacity:%d AdminDSN:***}", s.Name, s.Host, s.Port, s.Capacity)
}

// GoString is String for %#v.
func (s DBServerSpec) GoString() string { return s.String() }

// Normalize validates the spec and fills host and port from the admin
// connection string when they are empty. Its errors never quote the DSN.
func (s DBServerSpec) Normalize() (DBServerSpec, error) {
	if !tenancy.ValidSlug(s.Name) { // server names follow the slug rule
		return s, invalid("name", "want 2-40 characters of a-z, 0-9 and '-', starting with a letter")
	}
	if s.AdminDSN == "" {
		return s, invalid("admin_dsn", "required")
	}
	cfg, err := pgx.ParseConfig(s.AdminDSN)
	if err != nil {
		return s, invalid("admin_dsn", "want a Postgres connection string (postgres://user:password@host:port/db)")
	}
	if s.Host == "" {
		s.Host = cfg.Host
	}
	if s.Port == 0 {
		s.Port = int(cfg.Port)
	}
	if s.Host == "" || strings.HasPrefix(s.Host, "/") {
		return s, invalid("host", "want the host name the data plane connects to")
	}
	if s.Port < 1 || s.Port > 65535 {
		return s, invalid("port", "want 1-65535")
	}
	if s.Capacity < 0 {
		return s, invalid("capacity", "want a positive number")
	}
	return s, nil
}

// EnsureDBServer registers (or updates) a database server: adminDSN goes to
// the secrets store (a new version only when it changed), host and port to
// the table. Calling it at every start is cheap and idempotent.
func (r *Registry) EnsureDBServer(ctx context.Context, name, adminDSN, host string, port int) (DBServer, error) {
	if port < 1 || port > 65535 {
		return DBServer{}, invalid("port", "want 1-65535")
	}
	if host == "" {
		return DBServer{}, invalid("host", "required")
	}
	return r.RegisterDBServer(ctx, DBServerSpec{Name: name, AdminDSN: adminDSN, Host: host, Port: port})
}

// RegisterDBServer registers a database server, or updates the one of that
// name: the admin connection string goes to the secrets store (a new
// version only when it changed), never to the table or an error.
func (r *Registry) RegisterDBServer(ctx context.Context, spec DBServerSpec) (DBServer, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return DBServer{}, err
	}
	name := spec.Name
	ref := DBServerSecretName(name)
	cur, err := r.secrets.Get(ctx, ref)
	switch {
	case errors.Is(err, secrets.ErrNotFound) || (err == nil && !bytes.Equal(cur, []byte(spec.AdminDSN))):
		if _, err := r.secrets.Put(ctx, ref, []byte(spec.AdminDSN)); err != nil {
			return DBServer{}, fmt.Errorf("db server %s: store admin secret: %w", name, err)
		}
	case err != nil:
		return DBServer{}, fmt.Errorf("db server %s: read admin secret: %w", name, err)
	}
	const q = `INSERT INTO db_servers (name, host, port, admin_secret_ref, capacity) VALUES ($1, $2, $3, $4, COALESCE(NULLIF($5, 0), 500))
		ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, admin_secret_ref = EXCLUDED.admin_secret_ref,
		capacity = COALESCE(NULLIF($5, 0), db_servers.capacity)`
	if _, err := r.db.Exec(ctx, q, name, spec.Host, spec.Port, ref, spec.Capacity); err != nil {
		return DBServer{}, fmt.Errorf("db server %s: %w", name, err)
	}
	return r.DBServerByName(ctx, name)
}

// DBServerByName returns one server, or ErrNotFound.
func (r *Registry) DBServerByName(ctx context.Context, name string) (DBServer, error) {
	s, err := scanServer(r.db.QueryRow(ctx, "SELECT "+serverColumns+" WHERE s.name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return DBServer{}, fmt.Errorf("db server %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return DBServer{}, fmt.Errorf("db server %s: %w", name, err)
	}
	return s, nil
}

// DBServerByID returns one server, or ErrNotFound.
func (r *Registry) DBServerByID(ctx context.Context, id int64) (DBServer, error) {
	s, err := scanServer(r.db.QueryRow(ctx, "SELECT "+serverColumns+" WHERE s.id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return DBServer{}, fmt.Errorf("db server %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return DBServer{}, fmt.Errorf("db server %d: %w", id, err)
	}
	return s, nil
}

// DBServers lists every server by name.
func (r *Registry) DBServers(ctx context.Context) ([]DBServer, error) {
	rows, err := r.db.Query(ctx, "SELECT "+serverColumns+" ORDER BY s.name")
	if err != nil {
		return nil, fmt.Errorf("list db servers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DBServer, error) { return scanServer(row) })
	if err != nil {
		return nil, fmt.Errorf("list db servers: %w", err)
	}
	return out, nil
}

// PickDBServer chooses the server a new tenant goes on: the least loaded one
// with room left. ErrConflict when every server is full or none is registered.
func (r *Registry) PickDBServer(ctx context.Context) (DBServer, error) {
	servers, err := r.DBServers(ctx)
	if err != nil {
		return DBServer{}, err
	}
	var best *DBServer
	for i := range servers {
		s := &servers[i]
		if s.Tenants >= s.Capacity {
			continue
		}
		if best == nil || float64(s.Tenants)/float64(s.Capacity) < float64(best.Tenants)/float64(best.Capacity) {
			best = s
		}
	}
	if best == nil {
		return DBServer{}, fmt.Errorf("no database server with room for another tenant: %w", ErrConflict)
	}
	return *best, nil
}

// AdminDSN reads a server's admin connection string from the secrets store.
// The value is a secret: never log it or put it in an error.
func (r *Registry) AdminDSN(ctx context.Context, s DBServer) (string, error) {
	raw, err := r.secrets.Get(ctx, s.AdminSecretRef)
	if err != nil {
		return "", fmt.Errorf("db server %s: admin secret: %w", s.Name, err)
	}
	return string(raw), nil
}
