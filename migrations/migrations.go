// Package migrations holds the SQL schema of both planes and applies it.
//
// Two sets live here: platform/ (the control-plane registry, one database)
// and tenant/ (the StartupWebApp schema, one database per tenant). Each
// database records its own version in a ledger table, and a session-level
// advisory lock makes two processes migrating the same database take turns.
package migrations

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed platform/*.sql tenant/*.sql
var files embed.FS

// Set names one of the two migration sets.
type Set string

// The two sets.
const (
	Platform Set = "platform"
	Tenant   Set = "tenant"
)

// ledgerTable is the per-database table that records applied versions.
const ledgerTable = "schema_migrations"

// lockID is the advisory lock key held while a database migrates. Both sets
// share it: a database only ever holds one set.
const lockID int64 = 0x5357_4d49_4752 // "SWMIGR"

// Valid reports whether s names a known set.
func (s Set) Valid() bool { return s == Platform || s == Tenant }

// FS returns the SQL files of one set.
func (s Set) FS() (fs.FS, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("migrations: unknown set %q", s)
	}
	return fs.Sub(files, string(s))
}

// Result says what one Up call did.
type Result struct {
	From, To int64 // versions before and after
	Applied  int   // migrations applied by this call
}

func provider(db *sql.DB, fsys fs.FS, log *slog.Logger) (*goose.Provider, error) {
	opts := []goose.ProviderOption{
		goose.WithTableName(ledgerTable),
		goose.WithSessionLocker(advisoryLocker{}),
		goose.WithDisableGlobalRegistry(true),
	}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	return goose.NewProvider(goose.DialectPostgres, db, fsys, opts...)
}

// Up applies every pending migration of set to db, holding the database's
// migration lock. Running it again on an up-to-date database is a no-op.
func Up(ctx context.Context, db *sql.DB, set Set) (Result, error) {
	fsys, err := set.FS()
	if err != nil {
		return Result{}, err
	}
	res, err := UpFS(ctx, db, fsys)
	if err != nil {
		return Result{}, fmt.Errorf("migrations %s: %w", set, err)
	}
	return res, nil
}

// UpFS is Up with the migration files of fsys: a set's FS, or one that adds
// migrations to it (tests of what a new migration does to every tenant).
func UpFS(ctx context.Context, db *sql.DB, fsys fs.FS) (Result, error) {
	p, err := provider(db, fsys, nil)
	if err != nil {
		return Result{}, err
	}
	// A fresh database has no ledger yet: its version is 0.
	from, err := p.GetDBVersion(ctx)
	if err != nil {
		from = 0
	}
	res, err := p.Up(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("up: %w", err)
	}
	to, err := p.GetDBVersion(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("version: %w", err)
	}
	return Result{From: from, To: to, Applied: len(res)}, nil
}

// UpDSN opens dsn, applies set, and closes the connection.
func UpDSN(ctx context.Context, dsn string, set Set) (Result, error) {
	db, err := Open(dsn)
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	return Up(ctx, db, set)
}

// Open returns a database/sql handle over pgx for dsn, for the runner only.
func Open(dsn string) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("migrations: open: %w", err)
	}
	db.SetMaxOpenConns(2)
	return db, nil
}

// Version returns the newest version applied to db (0 for a fresh database).
func Version(ctx context.Context, db *sql.DB, set Set) (int64, error) {
	fsys, err := set.FS()
	if err != nil {
		return 0, err
	}
	p, err := provider(db, fsys, nil)
	if err != nil {
		return 0, fmt.Errorf("migrations %s: %w", set, err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations %s: version: %w", set, err)
	}
	return v, nil
}

// Latest returns the newest version that set contains.
func Latest(set Set) (int64, error) {
	fsys, err := set.FS()
	if err != nil {
		return 0, err
	}
	return LatestFS(fsys)
}

// LatestFS returns the newest migration version among the files of fsys.
func LatestFS(fsys fs.FS) (int64, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, err
	}
	var v int64
	for _, e := range entries {
		n, err := goose.NumericComponent(e.Name())
		if err == nil {
			v = max(v, n)
		}
	}
	return v, nil
}

// advisoryLocker serialises migrations on one database with a blocking
// session-level advisory lock, so a second migrator waits exactly as long as
// the first one runs (goose's own locker polls every few seconds).
type advisoryLocker struct{}

func (advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

func (advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", lockID); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	return nil
}

// The pgx driver registers itself as "pgx" with database/sql.
var _ = stdlib.GetDefaultDriver

// Digest hashes the names and contents of the files of a migration set, so
// a database cloned from a template can be rebuilt when any file changes,
// not only when one is added.
func Digest(fsys fs.FS) (string, error) {
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
