package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/server"
)

// TestUnreachableDatabaseAnswers503 points a tenant's database server at a
// port nobody listens on (a database restarting or cut off): its requests
// answer 503 service-unavailable in the platform's error shape, the answer
// to retry, not 500; another tenant is served.
func TestUnreachableDatabaseAnswers503(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newDBEnv(t, "down", "up")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// A server of its own for the tenant, at the closed port.
	var id int64
	if err := env.reg.QueryRow(ctx, `INSERT INTO db_servers (name, host, port, admin_secret_ref)
		VALUES ('gone', '127.0.0.1', $1, 'unused') RETURNING id`, closed).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := env.reg.Exec(ctx, `UPDATE tenants SET db_server_id = $1 WHERE slug = 'down'`, id); err != nil {
		t.Fatal(err)
	}
	if err := env.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	base := serveProbe(t, env)
	want503(t, do(t, base, http.MethodGet, "/db", map[string]string{"Host": "down.test"}), "unreachable database")
	if a := do(t, base, http.MethodGet, "/db", map[string]string{"Host": "up.test"}); a.status != http.StatusOK {
		t.Errorf("the other tenant: %d %s", a.status, a.raw)
	}
}

// TestOutOfConnectionsAnswers503 has Postgres refuse a tenant's logins for
// want of connection slots (its role's CONNECTION LIMIT 0 raises the same
// too_many_connections, 53300, as a server at max_connections): its
// requests answer 503, the answer to retry, not 500; another tenant is
// served, and the tenant is again once slots are free.
func TestOutOfConnectionsAnswers503(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newDBEnv(t, "full", "roomy")
	var role string
	if err := env.reg.QueryRow(ctx, `SELECT db_role FROM tenants WHERE slug = 'full'`).Scan(&role); err != nil {
		t.Fatal(err)
	}
	limit := func(n int) {
		t.Helper()
		if _, err := env.admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s CONNECTION LIMIT %d", role, n)); err != nil {
			t.Fatal(err)
		}
	}
	limit(0)
	base := serveProbe(t, env)
	want503(t, do(t, base, http.MethodGet, "/db", map[string]string{"Host": "full.test"}), "no connection slots")
	if a := do(t, base, http.MethodGet, "/db", map[string]string{"Host": "roomy.test"}); a.status != http.StatusOK {
		t.Errorf("the other tenant: %d %s", a.status, a.raw)
	}
	limit(-1)
	if a := do(t, base, http.MethodGet, "/db", map[string]string{"Host": "full.test"}); a.status != http.StatusOK {
		t.Errorf("with slots again: %d %s, want 200", a.status, a.raw)
	}
}

// serveProbe serves dbProbe for env's tenants through a pool manager of
// the binary's defaults.
func serveProbe(t *testing.T, env *dbEnv) string {
	t.Helper()
	m, err := pools.New(pools.Options{Secrets: env.store, ConnParams: "sslmode=disable", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.CloseAll)
	return serve(t, server.New(server.Options{
		Directory: env.dir, Pools: m, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry(),
		Apps: []server.App{dbProbe{}},
	}))
}

// want503 checks a is 503 service-unavailable in the platform's error shape.
func want503(t *testing.T, a answer, what string) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal([]byte(a.raw), &body); err != nil || a.status != http.StatusServiceUnavailable ||
		body["error"] != "service-unavailable" || body["detail"] == "" {
		t.Errorf("%s: %d %s, want 503 service-unavailable", what, a.status, a.raw)
	}
}
