package server_test

import (
	"context"
	"encoding/json"
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
	m, err := pools.New(pools.Options{Secrets: env.store, ConnParams: "sslmode=disable", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.CloseAll)
	base := serve(t, server.New(server.Options{
		Directory: env.dir, Pools: m, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry(),
		Apps: []server.App{dbProbe{}},
	}))
	a := do(t, base, http.MethodGet, "/db", map[string]string{"Host": "down.test"})
	var body map[string]any
	if err := json.Unmarshal([]byte(a.raw), &body); err != nil || a.status != http.StatusServiceUnavailable ||
		body["error"] != "service-unavailable" || body["detail"] == "" {
		t.Errorf("unreachable database: %d %s, want 503 service-unavailable", a.status, a.raw)
	}
	if a := do(t, base, http.MethodGet, "/db", map[string]string{"Host": "up.test"}); a.status != http.StatusOK {
		t.Errorf("the other tenant: %d %s", a.status, a.raw)
	}
}
