package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
)

// writer stands in for any API route that writes: a POST that commits one
// row (a prospect whose address is the request's key) before it answers,
// and a GET that reads.
type writer struct{}

func (writer) Mount(r fiber.Router) {
	write := func(c *fiber.Ctx) error {
		key := c.FormValue("key")
		var id int64
		err := server.Conn(c, func(conn *pgxpool.Conn) error {
			return conn.QueryRow(c.UserContext(), `INSERT INTO prospect (email) VALUES ($1) RETURNING id`, key).Scan(&id)
		})
		if err != nil || c.Response().StatusCode() != http.StatusOK {
			return err
		}
		return c.JSON(fiber.Map{"id": id})
	}
	for _, method := range []string{fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch, fiber.MethodDelete} {
		r.Add(method, "/movetest/write", write)
	}
	r.Get("/movetest/read", func(c *fiber.Ctx) error {
		var n int64
		err := server.Conn(c, func(conn *pgxpool.Conn) error {
			return conn.QueryRow(c.UserContext(), `SELECT count(*) FROM prospect`).Scan(&n)
		})
		if err != nil || c.Response().StatusCode() != http.StatusOK {
			return err
		}
		return c.JSON(fiber.Map{"count": n})
	})
}

const moveBaseDomain = "move.test"

// outcome is one request of the load loop.
type outcome struct {
	key    string // writes only
	status int
	code   string // the error body's code
	retry  string // Retry-After
	at     time.Time
}

// loadLoop sends requests to one tenant until stop closes: writers POST
// writes with unique keys, one reader GETs; every outcome is kept.
type loadLoop struct {
	mu     sync.Mutex
	writes []outcome
	reads  []outcome
	ok     atomic.Int64 // 2xx writes so far
}

var loadClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

// send sends one write (POST, or another method with a key) or read (GET)
// of the writer app to host.
func (l *loadLoop) send(t *testing.T, addr, method, host string, form url.Values) outcome {
	if method == "GET" {
		return l.sendPath(t, addr, method, host, "/movetest/read", nil)
	}
	return l.sendPath(t, addr, method, host, "/movetest/write", form)
}

func (l *loadLoop) sendPath(t *testing.T, addr, method, host, path string, form url.Values) outcome {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Error(err)
		return outcome{}
	}
	req.Host = host
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	o := outcome{at: time.Now()}
	res, err := loadClient.Do(req)
	if err != nil {
		t.Errorf("%s %s on %s: %v", method, path, host, err)
		return o
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	o.status, o.code, o.retry = res.StatusCode, e.Error, res.Header.Get("Retry-After")
	return o
}

func (l *loadLoop) run(t *testing.T, wg *sync.WaitGroup, addr, host string, writers int, stop <-chan struct{}) {
	send := func(method, path string, form url.Values) outcome {
		return l.sendPath(t, addr, method, host, path, form)
	}
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d@%s", w, i, host)
				o := send("POST", "/movetest/write", url.Values{"key": {key}})
				o.key = key
				if o.status == http.StatusOK {
					l.ok.Add(1)
				}
				l.mu.Lock()
				l.writes = append(l.writes, o)
				l.mu.Unlock()
				// A steady load (each writer up to 200 writes a second), not
				// a flood: a client backs off on a 503 (Retry-After is 2 s;
				// the test wants to see the window's edges).
				pause := 5 * time.Millisecond
				if o.status == http.StatusServiceUnavailable {
					pause = 20 * time.Millisecond
				}
				time.Sleep(pause)
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			o := send("GET", "/movetest/read", nil)
			l.mu.Lock()
			l.reads = append(l.reads, o)
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// newMovePlane is a control plane with two database servers ("default",
// where the tenants "mover" and "stayer" are, and "second") and a data
// plane following its registry, serving the writer app on the address
// returned.
func newMovePlane(t *testing.T) (*provisiontest.Env, string) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cp := provisiontest.New(t, provisiontest.Config{Tag: "mvl", BaseDomain: moveBaseDomain, Log: slog.New(testLog{t}),
		Options: func(o *provision.Options) { o.DBServer = "default" }})
	cp.SecondServer("second")
	if _, err := cp.Service.Create(ctx, provision.CreateRequest{Slug: "mover"}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Service.Create(ctx, provision.CreateRequest{Slug: "stayer"}, "t"); err != nil {
		t.Fatal(err)
	}

	// The data plane, wired as cmd/swa wires it, following the registry.
	store, err := secrets.New(ctx, secrets.Options{Backend: "local", MasterKey: cp.MasterKey, Pool: cp.Platform, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.New(directory.Options{DB: cp.Platform, BaseDomain: moveBaseDomain, Log: log})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	dctx, stopDir := context.WithCancel(ctx)
	dirDone := make(chan struct{})
	go func() { _ = dir.Run(dctx); close(dirDone) }()
	t.Cleanup(func() { stopDir(); <-dirDone })
	pm, err := pools.New(pools.Options{Secrets: store, Metrics: prometheus.NewRegistry(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.CloseAll)
	dir.OnChange(pm.OnTenantChange)
	app := server.New(server.Options{Directory: dir, Pools: pm, Log: log, Metrics: prometheus.NewRegistry(),
		Env: "production", Apps: []server.App{writer{}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return cp, ln.Addr().String()
}

// TestMoveUnderLoad moves a tenant to the second database server while a
// load loop writes and reads on it and on another tenant over HTTP through
// the data plane. Every write answered 2xx is in the tenant's database on
// the new server afterwards; its other writes are answered 503
// tenant-moving with Retry-After, within one window; its reads and every
// request of the other tenant succeed. The window is logged.
func TestMoveUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cp, addr := newMovePlane(t)

	var (
		wg          sync.WaitGroup
		stop        = make(chan struct{})
		moving, oth = &loadLoop{}, &loadLoop{}
	)
	moving.run(t, &wg, addr, "mover."+moveBaseDomain, 3, stop)
	oth.run(t, &wg, addr, "stayer."+moveBaseDomain, 2, stop)
	// Barrier: the move starts once both tenants take writes.
	for deadline := time.Now().Add(30 * time.Second); moving.ok.Load() < 50 || oth.ok.Load() < 50; {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("the load loop did not get going: %d and %d writes", moving.ok.Load(), oth.ok.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	_, moveErr := cp.Service.Move(ctx, "mover", "second", "t")
	moved := time.Now()
	// Writes go on after the switch: they must land on the new server.
	for target := moving.ok.Load() + 50; moving.ok.Load() < target && time.Since(moved) < 20*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if moveErr != nil {
		t.Fatalf("move: %v", moveErr)
	}

	tn, err := cp.Registry.Tenant(ctx, "mover")
	if err != nil {
		t.Fatal(err)
	}
	if tn.DBServer == nil || *tn.DBServer != "second" || tn.WritesPaused {
		t.Fatalf("tenant on %v, paused %v after the move", tn.DBServer, tn.WritesPaused)
	}
	m, err := cp.Registry.TenantMove(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}

	// The moving tenant: every 2xx write is on the new server; the others
	// are 503 tenant-moving with Retry-After.
	keys := func(server string, tn registry.Tenant) map[string]bool {
		conn := connOn(t, cp, server, tn)
		rows, err := conn.Query(ctx, `SELECT email FROM prospect WHERE email IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		list, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, k := range list {
			out[k] = true
		}
		return out
	}
	landed := keys("second", tn)
	var (
		ok, refused, lost int
		first503, last503 time.Time
		afterSwitch       int
	)
	for _, o := range moving.writes {
		switch {
		case o.status == http.StatusOK:
			ok++
			if !landed[o.key] {
				lost++
				t.Errorf("write %s was answered 200 at %s but is not in the moved database", o.key, o.at.Format(time.RFC3339Nano))
			}
			if o.at.After(moved) {
				afterSwitch++
			}
		case o.status == http.StatusServiceUnavailable && o.code == "tenant-moving" && o.retry != "":
			refused++
			if first503.IsZero() {
				first503 = o.at
			}
			last503 = o.at
		default:
			t.Errorf("write %s: status %d %q, want 200 or 503 tenant-moving with Retry-After", o.key, o.status, o.code)
		}
	}
	for _, o := range moving.reads {
		if o.status != http.StatusOK {
			t.Errorf("read of the moving tenant at %s: status %d %q, want 200", o.at.Format(time.RFC3339Nano), o.status, o.code)
		}
	}
	if refused == 0 {
		t.Error("no write was refused during the move: the pause did not reach the data plane")
	}
	if afterSwitch == 0 {
		t.Error("no write succeeded after the switch")
	}
	// The other tenant did not notice.
	otherKeys := keys("default", mustTenant(t, cp, "stayer"))
	for _, o := range oth.writes {
		if o.status != http.StatusOK || !otherKeys[o.key] {
			t.Errorf("the other tenant's write %s: status %d %q, stored %v", o.key, o.status, o.code, otherKeys[o.key])
		}
	}
	for _, o := range oth.reads {
		if o.status != http.StatusOK {
			t.Errorf("the other tenant's read: status %d %q", o.status, o.code)
		}
	}
	window := last503.Sub(first503)
	t.Logf("move under load: took %s; writes paused %d ms by the registry; 503 window seen by clients %s (first to last refused write); moving tenant: %d writes ok, %d refused (503), %d lost, %d reads; other tenant: %d writes, %d reads, all ok",
		moved.Sub(start).Round(time.Millisecond), deref(m.PausedMS), window.Round(time.Millisecond), ok, refused, lost, len(moving.reads), len(oth.writes), len(oth.reads))
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func mustTenant(t *testing.T, cp *provisiontest.Env, slug string) registry.Tenant {
	t.Helper()
	tn, err := cp.Registry.Tenant(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// connOn connects to the tenant's database on the named server as its role.
func connOn(t *testing.T, cp *provisiontest.Env, name string, tn registry.Tenant) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	sv, err := cp.Registry.DBServerByName(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := cp.Registry.AdminDSN(ctx, sv)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = tn.DBName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// testLog writes the control plane's log lines about the move to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Enabled(context.Context, slog.Level) bool { return true }
func (l testLog) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "move") {
		var b strings.Builder
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		l.t.Logf("%s %s%s", r.Time.Format("15:04:05.000"), r.Message, b.String())
	}
	return nil
}
func (l testLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l testLog) WithGroup(string) slog.Handler      { return l }

// TestReadOnlyTenantDatabaseAnswersMoving checks the data plane's answers
// around a move's pause: with writes_paused set, a POST is refused 503
// tenant-moving with Retry-After before it reaches the database while a
// GET is served; and a replica that has not seen the pause, whose write
// meets the old database's read-only sessions, answers the same 503
// (never a 500), the other tenant unaffected.
func TestReadOnlyTenantDatabaseAnswersMoving(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cp, addr := newMovePlane(t)
	var l loadLoop
	send := func(method, host string) outcome {
		t.Helper()
		form := url.Values{"key": {pgxKey(method, host)}}
		return l.send(t, addr, method, host, form)
	}
	mover := mustTenant(t, cp, "mover")
	wantMoving := func(o outcome, what string) {
		t.Helper()
		if o.status != http.StatusServiceUnavailable || o.code != "tenant-moving" || o.retry != "2" {
			t.Errorf("%s: status %d %q Retry-After %q, want 503 tenant-moving with Retry-After 2", what, o.status, o.code, o.retry)
		}
	}
	if o := send("POST", "mover."+moveBaseDomain); o.status != http.StatusOK {
		t.Fatalf("a write before anything: status %d %q", o.status, o.code)
	}

	// The old database refuses the role's writes; the registry does not say so yet.
	admin := connOn(t, cp, "default", mover)
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	role, db := pgx.Identifier{mover.DBRole}.Sanitize(), pgx.Identifier{mover.DBName}.Sanitize()
	exec("ALTER ROLE " + role + " IN DATABASE " + db + " SET default_transaction_read_only = on")
	exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + mover.DBRole + "'")
	time.Sleep(1100 * time.Millisecond) // the pool pings a connection idle for a second before using it
	wantMoving(send("POST", "mover."+moveBaseDomain), "a write meeting the read-only database")
	if o := send("GET", "mover."+moveBaseDomain); o.status != http.StatusOK {
		t.Errorf("a read of the read-only database: status %d %q", o.status, o.code)
	}
	if o := send("POST", "stayer."+moveBaseDomain); o.status != http.StatusOK {
		t.Errorf("the other tenant's write: status %d %q", o.status, o.code)
	}

	// The registry pauses the tenant, its database taking writes again:
	// refused before the database.
	exec("ALTER ROLE " + role + " IN DATABASE " + db + " RESET default_transaction_read_only")
	exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + mover.DBRole + "'")
	time.Sleep(1100 * time.Millisecond)
	if o := send("POST", "mover."+moveBaseDomain); o.status != http.StatusOK {
		t.Fatalf("a write once the database takes writes again: status %d %q", o.status, o.code)
	}
	if err := cp.Registry.SetWritesPaused(ctx, mover.ID, true); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		o := send("POST", "mover."+moveBaseDomain)
		if o.status != http.StatusOK {
			wantMoving(o, "a write while paused")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the data plane did not see the pause")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range []string{"PUT", "PATCH", "DELETE"} {
		wantMoving(send(m, "mover."+moveBaseDomain), m+" while paused")
	}
	if o := send("GET", "mover."+moveBaseDomain); o.status != http.StatusOK {
		t.Errorf("a read while paused: status %d %q", o.status, o.code)
	}
}

var keySeq atomic.Int64

func pgxKey(method, host string) string {
	return fmt.Sprintf("%s-%d@%s", strings.ToLower(method), keySeq.Add(1), host)
}
