package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/server"
)

// rowProbe updates one row of a table in the tenant's own database, with
// the request's context, as every handler runs its queries.
type rowProbe struct{}

func (rowProbe) Mount(r fiber.Router) {
	h := func(c *fiber.Ctx) error {
		return server.Conn(c, func(conn *pgxpool.Conn) error {
			if _, err := conn.Exec(c.UserContext(), "UPDATE held SET n = n + 1 WHERE id = 1"); err != nil {
				return err
			}
			return c.JSON(fiber.Map{"ok": true})
		})
	}
	r.Post("/held", h)
	r.Post("/held-long", h)
}

// TestRequestDeadline holds a row lock from outside while a request waits
// on it: the request answers 503 in the platform's error shape at its
// deadline, its query is cancelled on the server, and its connection goes
// back to the pool (the next request logs in no more). Another tenant is
// served meanwhile, and a route given a longer deadline outlasts the lock.
func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newDBEnv(t, "locked", "other")
	tenantDB := func(slug string) (*pgx.Conn, string) {
		tn, _ := env.dir.Lookup(slug + ".test")
		u, _ := url.Parse(env.adminURL)
		u.Path = "/" + tn.DBName
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		for _, q := range []string{
			"CREATE TABLE held (id int PRIMARY KEY, n int NOT NULL)",
			"INSERT INTO held VALUES (1, 0)",
			"ALTER TABLE held OWNER TO " + tn.DBRole,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		return conn, tn.DBRole
	}
	locker, role := tenantDB("locked")
	tenantDB("other")

	m, err := pools.New(pools.Options{Secrets: env.store, MaxConns: 2, Budget: 4, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.CloseAll)
	const deadline = 500 * time.Millisecond
	base := serve(t, server.New(server.Options{
		Directory: env.dir, Pools: m, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry(),
		RequestTimeout: deadline,
		RouteTimeouts:  map[string]time.Duration{"/held-long": 20 * time.Second},
		Apps:           []server.App{rowProbe{}},
	}))
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(host, path string) (answer, time.Duration) {
		req, _ := http.NewRequest(http.MethodPost, base+path, nil)
		req.Host = host
		req.Header.Set("Origin", "https://www."+host)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return answer{raw: err.Error()}, time.Since(start)
		}
		defer resp.Body.Close()
		var a answer
		a.status, a.header = resp.StatusCode, resp.Header
		var raw strings.Builder
		buf := make([]byte, 4096)
		for {
			n, rerr := resp.Body.Read(buf)
			raw.Write(buf[:n])
			if rerr != nil {
				break
			}
		}
		a.raw = raw.String()
		_ = json.Unmarshal([]byte(a.raw), &a.body)
		return a, time.Since(start)
	}
	waiting := func() int {
		var n int
		if err := env.admin.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'", role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A first request opens the tenant's connection.
	if a, _ := post("locked.test", "/held"); a.status != http.StatusOK {
		t.Fatalf("unlocked: %d %s", a.status, a.raw)
	}
	logins := m.Stats().Opened

	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once rolled back
	if _, err := tx.Exec(ctx, "SELECT n FROM held WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	a, took := post("locked.test", "/held")
	if a.status != http.StatusServiceUnavailable || a.body["error"] != "request-timeout" || a.body["detail"] == "" || len(a.body) != 2 {
		t.Fatalf("waiting on a held lock: %d %s, want 503 {\"error\": \"request-timeout\", \"detail\": ...}", a.status, a.raw)
	}
	if took < deadline-50*time.Millisecond || took > deadline+3*time.Second {
		t.Errorf("503 after %v, want about the %v deadline", took, deadline)
	}
	if got := a.header.Get("Access-Control-Allow-Origin"); got != "https://www.locked.test" {
		t.Errorf("the 503 lost the tenant's CORS headers: Access-Control-Allow-Origin %q", got)
	}
	// The query was cancelled on the server, not left waiting there.
	for start := time.Now(); waiting() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 3*time.Second {
			t.Fatal("the timed-out request's query still waits on the lock in the database")
		}
	}
	// Its connection is back in the pool, not closed: no new login.
	if s := m.Stats(); s.Acquired != 0 || s.Idle != 1 || s.Open != 1 || s.Opened != logins {
		t.Errorf("after the 503: %+v, want its one connection idle in the pool and no new login", s)
	}

	// Other tenants are served meanwhile.
	if a, took := post("other.test", "/held"); a.status != http.StatusOK || took > deadline {
		t.Errorf("another tenant while the lock is held: %d %s after %v", a.status, a.raw, took)
	}
	logins = m.Stats().Opened

	// A route with a longer deadline waits for the lock and gets it once
	// the holder lets go (released as soon as the request waits on it).
	done := make(chan answer, 1)
	go func() { a, _ := post("locked.test", "/held-long"); done <- a }()
	for start := time.Now(); waiting() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the long-deadline request never waited on the lock")
		}
	}
	time.Sleep(2 * deadline) // past the default deadline, within the route's
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if a := <-done; a.status != http.StatusOK {
		t.Errorf("the long-deadline route: %d %s, want 200 once the lock is released", a.status, a.raw)
	}
	var n int
	if err := locker.QueryRow(ctx, "SELECT n FROM held WHERE id = 1").Scan(&n); err != nil || n != 2 {
		t.Errorf("n = %d (%v), want 2: the first request and the long one, not the timed-out one", n, err)
	}
	if s := m.Stats(); s.Opened != logins {
		t.Errorf("the long-deadline request logged in again (%+v): the connection must have survived the timeout", s)
	}
}
