// Package pgtest hands tests real, isolated infrastructure from the local
// stack: a fresh Postgres database cloned from a migrated template, and a
// Redis client with a key prefix of its own.
//
// Locally a test that needs the stack skips with one line saying how to start
// it; with CI=true it fails instead, so CI never passes by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/migrations"

	"github.com/startupwebapp/platform/platform/redisconn"
)

const hint = "start the local stack: eval \"$(deploy/dev/stack up && deploy/dev/stack env)\""

// Require returns the value of the environment variable name, or skips the
// test (fails it under CI=true) when it is unset.
func Require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, name+" is not set")
	}
	return v
}

// Missing skips the test locally, or fails it in CI, because a stack
// component is not there.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI requires the local stack)", why)
	}
	t.Skipf("%s; %s", why, hint)
}

// AdminURL is the superuser connection string of the test Postgres cluster
// (SWA_TEST_DATABASE_URL), checked to answer.
func AdminURL(t testing.TB) string {
	t.Helper()
	dsn := Require(t, "SWA_TEST_DATABASE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		Missing(t, "Postgres at SWA_TEST_DATABASE_URL does not answer: "+err.Error())
	}
	conn.Close(ctx)
	return dsn
}

// WithDatabase returns dsn with its database name replaced.
func WithDatabase(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// RandomName returns prefix followed by 12 random lowercase hex digits, a
// safe identifier for databases, roles and key prefixes.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewDatabase creates a fresh database holding the newest schema of set and
// returns its connection string; the database is dropped when the test ends.
func NewDatabase(t testing.TB, set migrations.Set) string {
	t.Helper()
	admin := AdminURL(t)
	ctx := context.Background()
	tpl, err := template(ctx, admin, set)
	if err != nil {
		t.Fatalf("pgtest: template for %s: %v", set, err)
	}
	name := RandomName("test_" + string(set) + "_")
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tpl)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() { Drop(t, admin, name) })
	return WithDatabase(admin, name)
}

// NewPool is NewDatabase with a pgx pool opened on it (closed at cleanup).
func NewPool(t testing.TB, set migrations.Set) *pgxpool.Pool {
	t.Helper()
	dsn := NewDatabase(t, set)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Drop removes a database, closing any connection still on it.
func Drop(t testing.TB, admin, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("pgtest: drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
		t.Errorf("pgtest: drop %s: %v", name, err)
	}
}

// template returns the name of a database migrated to the newest version of
// set, building it once per distinct set of migration files. Test binaries
// run in parallel, so building happens under an advisory lock.
func template(ctx context.Context, admin string, set migrations.Set) (string, error) {
	fsys, err := set.FS()
	if err != nil {
		return "", err
	}
	sum, err := migrations.Digest(fsys)
	if err != nil {
		return "", err
	}
	name := "swa_tpl_" + string(set) + "_" + sum[:12]
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", name); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext($1))", name) //nolint:errcheck

	var isTemplate bool
	err = conn.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&isTemplate)
	switch {
	case err == nil && isTemplate:
		return name, nil
	case err == nil:
		// A build that died half way: start over.
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			return "", err
		}
	case err != pgx.ErrNoRows:
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	if _, err := migrations.UpDSN(ctx, WithDatabase(admin, name), set); err != nil {
		return "", err
	}
	// A template that accepts connections makes CREATE DATABASE ... TEMPLATE
	// fail whenever someone is connected to it.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"); err != nil {
		return "", err
	}
	return name, nil
}

// Redis returns a client on the test Redis (SWA_REDIS_URL) and a key prefix
// unique to this test; keys under the prefix are deleted at cleanup.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	raw := Require(t, "SWA_REDIS_URL")
	// The platform's own settings, so tests see what production does.
	rdb, err := redisconn.New(raw)
	if err != nil {
		t.Fatalf("pgtest: SWA_REDIS_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		Missing(t, "Redis at SWA_REDIS_URL does not answer: "+err.Error())
	}
	prefix := RandomName("test:") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return rdb, prefix
}

// Service returns the URL of a stack service from its environment variable
// (SWA_MAILPIT_URL, SWA_STRIPE_API_BASE, ...), skipping or failing when unset.
func Service(t testing.TB, name string) string {
	t.Helper()
	return strings.TrimRight(Require(t, name), "/")
}
