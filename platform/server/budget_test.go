package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
)

// dbProbe answers with the role its query ran as, through server.Conn.
type dbProbe struct{}

func (dbProbe) Mount(r fiber.Router) {
	r.Get("/db", func(c *fiber.Ctx) error {
		var who string
		err := server.Conn(c, func(conn *pgxpool.Conn) error {
			return conn.QueryRow(c.UserContext(), "SELECT current_user").Scan(&who)
		})
		if err != nil || c.Response().StatusCode() == http.StatusServiceUnavailable {
			return err
		}
		return c.JSON(fiber.Map{"who": who})
	})
	r.Get("/nodb", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"ok": true}) })
}

// realTenant creates a role and a database owned by it on the test cluster,
// registers them as tenant slug (answering on host) with the password in
// store, and drops both at cleanup.
func realTenant(t *testing.T, admin *pgx.Conn, reg *pgxpool.Pool, store secrets.Store, serverID int64, slug, host string) {
	t.Helper()
	ctx := context.Background()
	name := pgtest.RandomName("swa_srvtest_")
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", name, hex.EncodeToString(pw)),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, name),
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+name)
	})
	if _, err := secrets.SaveBundle(ctx, store, secrets.TenantSecretName(slug), secrets.TenantBundle{DBPassword: hex.EncodeToString(pw)}); err != nil {
		t.Fatal(err)
	}
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: slug, Domains: []string{host}, Origins: []string{"https://www." + host},
		Server: serverID, DBName: name, DBRole: name})
}

// dbEnv is a registry, a secrets store and real tenant databases, for
// tests that need the server's connections to the tenants' databases.
type dbEnv struct {
	admin    *pgx.Conn // superuser connection to the test cluster
	adminURL string
	reg      *pgxpool.Pool // the registry
	dir      *directory.Directory
	store    secrets.Store
}

// newDBEnv registers one real tenant per slug, answering on {slug}.test.
func newDBEnv(t *testing.T, slugs ...string) *dbEnv {
	t.Helper()
	ctx := context.Background()
	adminURL := pgtest.AdminURL(t)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	u, _ := url.Parse(adminURL)
	port, _ := strconv.Atoi(u.Port())

	reg := pgtest.NewPool(t, migrations.Platform)
	key := make([]byte, secrets.MasterKeySize)
	_, _ = rand.Read(key)
	store, err := secrets.NewLocal(reg, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := directorytest.AddServer(t, reg, "default", u.Hostname(), port)
	for _, slug := range slugs {
		realTenant(t, admin, reg, store, srv, slug, slug+".test")
	}
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "swa.test", Log: slog.New(slog.DiscardHandler)})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return &dbEnv{admin: admin, adminURL: adminURL, reg: reg, dir: dir, store: store}
}

// TestBudgetExhaustedAnswers503 holds every connection the pools may open,
// then asks for one over HTTP: the answer is a prompt 503 with the JSON
// error and the CORS headers of the tenant, not a hung request; requests
// that need no connection keep being served, and a freed connection serves
// again.
func TestBudgetExhaustedAnswers503(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newDBEnv(t, "hot", "cold")
	dir, store := env.dir, env.store
	// One connection in all, one per tenant, and a short wait for it.
	const acquireTimeout = 300 * time.Millisecond
	m, err := pools.New(pools.Options{Secrets: store, MaxConns: 1, Budget: 1, AcquireTimeout: acquireTimeout, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.CloseAll)
	base := serve(t, server.New(server.Options{
		Directory: dir, Pools: m, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry(),
		Apps: []server.App{dbProbe{}},
	}))
	hot, _ := dir.Lookup("hot.test")
	cold, _ := dir.Lookup("cold.test")
	client := &http.Client{Timeout: 10 * time.Second}

	get := func(t *testing.T, host, path string) (answer, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Host = host
		req.Header.Set("Origin", "https://www."+host)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s%s: %v (the server must answer, not hang)", host, path, err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s%s: body: %v", host, path, err)
		}
		return answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}, time.Since(start)
	}
	check503 := func(t *testing.T, host string) {
		t.Helper()
		a, took := get(t, host, "/db")
		if a.status != http.StatusServiceUnavailable {
			t.Fatalf("status = %d (%s), want 503", a.status, a.raw)
		}
		if took < acquireTimeout/2 || took > acquireTimeout+3*time.Second {
			t.Errorf("503 after %v, want about the acquire timeout %v", took, acquireTimeout)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q", ct)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(a.raw), &body); err != nil || len(body) != 2 ||
			body["error"] != "service-unavailable" || body["detail"] == "" || body["detail"] == nil {
			t.Errorf("body = %s, want {\"error\": \"service-unavailable\", \"detail\": ...}", a.raw)
		}
		if got := a.header.Get("Access-Control-Allow-Origin"); got != "https://www."+host {
			t.Errorf("Access-Control-Allow-Origin = %q", got)
		}
		if a.header.Get("Access-Control-Allow-Credentials") != "true" || a.header.Get("Vary") != "Origin" || a.header.Get("X-Request-ID") == "" {
			t.Errorf("headers = %v", a.header)
		}
	}

	tests := []struct {
		name string
		hold *directory.Tenant // whose connection is held
	}{
		{"budget held by another tenant", cold},
		{"tenant pool full", hot},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			held, err := m.Acquire(ctx, tc.hold)
			if err != nil {
				t.Fatal(err)
			}
			check503(t, "hot.test")
			if a, _ := get(t, "hot.test", "/nodb"); a.status != http.StatusOK {
				t.Errorf("a request needing no connection got %d (%s)", a.status, a.raw)
			}
			held.Release()
			if a, _ := get(t, "hot.test", "/db"); a.status != http.StatusOK || !strings.Contains(a.raw, "swa_srvtest_") {
				t.Errorf("after release: %d %s, want 200 with the tenant's role", a.status, a.raw)
			}
			// The hot tenant now holds the only slot: give it back before
			// the next case.
			m.Close(hot.ID)
			deadline := time.Now().Add(5 * time.Second)
			for m.Stats().Open > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the closed pool still holds its connection: %+v", m.Stats())
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	t.Run("many waiting at once", func(t *testing.T) {
		held, err := m.Acquire(ctx, cold)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		const n = 20
		done := make(chan int, n)
		for range n {
			go func() {
				req, _ := http.NewRequest(http.MethodGet, base+"/db", nil)
				req.Host = "hot.test"
				resp, err := client.Do(req)
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
		}
		for range n {
			if code := <-done; code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503 for every waiter", code)
			}
		}
	})
}
