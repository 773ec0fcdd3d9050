package pools_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a secrets store and an admin connection for making tenant databases.
type env struct {
	store secrets.Store
	admin *pgx.Conn
	host  string
	port  int
	ids   atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	adminURL := pgtest.AdminURL(t)
	platform := pgtest.NewPool(t, migrations.Platform)
	key := make([]byte, secrets.MasterKeySize)
	_, _ = rand.Read(key)
	store, err := secrets.NewLocal(platform, key)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(context.Background(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	u, _ := url.Parse(adminURL)
	port, _ := strconv.Atoi(u.Port())
	return &env{store: store, admin: admin, host: u.Hostname(), port: port}
}

func (e *env) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := e.admin.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tenant creates a role and a database owned by it, stores the password in
// the tenant's bundle, and returns the tenant as the directory would.
func (e *env) tenant(t *testing.T) *directory.Tenant {
	t.Helper()
	name := pgtest.RandomName("swa_pooltest_")
	pw := randomPassword()
	e.exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", name, pw))
	e.exec(t, fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, name))
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = e.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_, _ = e.admin.Exec(ctx, "DROP ROLE IF EXISTS "+name)
	})
	ref := secrets.TenantSecretName(name)
	if _, err := secrets.SaveBundle(context.Background(), e.store, ref, secrets.TenantBundle{DBPassword: pw}); err != nil {
		t.Fatal(err)
	}
	return &directory.Tenant{
		ID: e.ids.Add(1), Slug: name, Status: "active",
		DBHost: e.host, DBPort: e.port, DBName: name, DBRole: name, SecretsRef: ref, Generation: 1,
	}
}

// backends counts the server processes connected as the given roles.
func (e *env) backends(t *testing.T, roles ...string) int {
	t.Helper()
	var n int
	if err := e.admin.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE usename = ANY($1)", roles).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newManager(t *testing.T, o pools.Options) *pools.Manager {
	t.Helper()
	if o.Log == nil {
		o.Log = quietLog()
	}
	m, err := pools.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.CloseAll)
	return m
}

func whoami(ctx context.Context, m *pools.Manager, tn *directory.Tenant) (string, error) {
	var who string
	err := m.Do(ctx, tn, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT current_user || '@' || current_database()").Scan(&who)
	})
	return who, err
}

func TestAcquireOpensLazilyPerTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.tenant(t), e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 10, QueryExecMode: "exec"})
	if s := m.Stats(); s.Pools != 0 || s.Open != 0 {
		t.Fatalf("a new manager has %+v", s)
	}
	ctx := context.Background()
	if m.Warm(a.ID) {
		t.Error("Warm before any connection")
	}
	for _, tn := range []*directory.Tenant{a, b, a} {
		who, err := whoami(ctx, m, tn)
		if err != nil {
			t.Fatal(err)
		}
		if want := tn.DBRole + "@" + tn.DBName; who != want {
			t.Errorf("connected as %s, want %s", who, want)
		}
	}
	// Release hands a connection back asynchronously.
	waitFor(t, "both connections idle", func() bool { s := m.Stats(); return s.Idle == 2 })
	if s := m.Stats(); s.Pools != 2 || s.Open != 2 || s.MaxOpen != 2 || s.Acquired != 0 {
		t.Errorf("stats = %+v, want 2 pools with one idle connection each", s)
	}
	if n := e.backends(t, a.DBRole, b.DBRole); n != 2 {
		t.Errorf("server sees %d backends, want 2", n)
	}
	if !m.Warm(a.ID) || !m.Warm(b.ID) {
		t.Error("a tenant with an idle connection is not Warm")
	}

	for _, st := range tenancy.Statuses() {
		if st.Serving() {
			continue
		}
		off := *a
		off.Status = st
		if _, err := m.Acquire(ctx, &off); !errors.Is(err, pools.ErrNotServing) {
			t.Errorf("Acquire(%s tenant) = %v, want ErrNotServing", st, err)
		}
	}
	missing := *b
	missing.ID, missing.SecretsRef = 999, "swa/tenants/nobody"
	if _, err := m.Acquire(ctx, &missing); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Acquire without a secret = %v, want ErrNotFound", err)
	}
}

func TestSuspendClosesPoolAfterInFlightQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 10})
	ctx := context.Background()
	conn, err := m.Acquire(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	suspended := *a
	suspended.Status, suspended.Generation = "suspended", a.Generation+1
	m.OnTenantChange(a, &suspended)

	// The query in flight finishes on its connection.
	if _, err := conn.Exec(ctx, "SELECT pg_sleep(0.05)"); err != nil {
		t.Fatalf("in-flight query after suspension: %v", err)
	}
	conn.Release()
	// A request that looked the tenant up before the change gets nothing.
	if _, err := m.Acquire(ctx, a); !errors.Is(err, pools.ErrNotServing) {
		t.Fatalf("Acquire with the stale tenant = %v, want ErrNotServing", err)
	}
	waitFor(t, "pool closed", func() bool { return m.Stats().Open == 0 && e.backends(t, a.DBRole) == 0 })

	// Resumed: a newer generation opens again.
	resumed := *a
	resumed.Generation = a.Generation + 2
	m.OnTenantChange(&suspended, &resumed)
	if _, err := whoami(ctx, m, &resumed); err != nil {
		t.Fatalf("after resume: %v", err)
	}
	// Deleted: gone for every generation.
	m.OnTenantChange(&resumed, nil)
	later := resumed
	later.Generation += 10
	if _, err := m.Acquire(ctx, &later); !errors.Is(err, pools.ErrNotServing) {
		t.Fatalf("Acquire after delete = %v, want ErrNotServing", err)
	}
}

func TestGenerationRebuildsPool(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.tenant(t)
	reg := prometheus.NewRegistry()
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 10, Metrics: reg})
	ctx := context.Background()
	old, err := m.Acquire(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	var oldPID uint32 = old.Conn().PgConn().PID()

	next := *a
	next.Generation++
	conn, err := m.Acquire(ctx, &next)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Conn().PgConn().PID() == oldPID {
		t.Fatalf("new generation reused the old pool's connection")
	}
	conn.Release()
	// The old pool's connection still works until released.
	if _, err := old.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("in-flight connection of the old generation: %v", err)
	}
	old.Release()
	waitFor(t, "old pool closed", func() bool { s := m.Stats(); return s.Pools == 1 && s.Open == 1 })
	if got := metricValue(t, reg, "swa_pool_closed_total", "generation"); got != 1 {
		t.Errorf("closed{generation} = %v, want 1", got)
	}
}

func TestIdlePoolCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 10, IdleTimeout: 150 * time.Millisecond})
	if _, err := whoami(context.Background(), m, a); err != nil {
		t.Fatal(err)
	}
	if m.Stats().Pools != 1 {
		t.Fatal("pool not open")
	}
	waitFor(t, "idle pool closed", func() bool {
		s := m.Stats()
		return s.Pools == 0 && s.Open == 0 && e.backends(t, a.DBRole) == 0
	})
}

func TestPasswordRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.tenant(t)
	// A long cache TTL: only invalidation can make the new password visible.
	cache := secrets.NewCache(e.store, time.Hour, quietLog())
	m := newManager(t, pools.Options{Secrets: cache, MaxConns: 2, Budget: 10})
	ctx := context.Background()
	if _, err := whoami(ctx, m, a); err != nil {
		t.Fatal(err)
	}

	pw := randomPassword()
	e.exec(t, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", a.DBRole, pw))
	if _, err := secrets.SaveBundle(ctx, e.store, a.SecretsRef, secrets.TenantBundle{DBPassword: pw}); err != nil {
		t.Fatal(err)
	}
	// Kill the connection authenticated with the old password, so the next
	// Acquire has to log in again.
	e.exec(t, fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s'", a.DBRole))
	waitFor(t, "backend gone", func() bool { return e.backends(t, a.DBRole) == 0 })
	var err error
	for range 3 { // the pool may first hand out the killed connection
		if _, err = whoami(ctx, m, a); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}

	// A wrong password in the store is an error, not a loop.
	e.exec(t, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", a.DBRole, randomPassword()))
	e.exec(t, fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s'", a.DBRole))
	waitFor(t, "backend gone", func() bool { return e.backends(t, a.DBRole) == 0 })
	for range 3 {
		if _, err = whoami(ctx, m, a); err != nil {
			break
		}
	}
	if err == nil || errors.Is(err, pools.ErrBudgetExhausted) {
		t.Fatalf("with a wrong stored password: %v", err)
	}
	if m.Stats().Open != 0 {
		t.Errorf("failed logins left %d budget slots taken", m.Stats().Open)
	}
}

// TestBudget drives more demand than the budget allows across more tenants
// than it could hold at once: nothing fails except with ErrBudgetExhausted,
// the server never sees more connections than the budget, and every tenant
// is served.
func TestBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const tenants, maxConns, budgetSize = 6, 2, 4
	var list []*directory.Tenant
	var roles []string
	for range tenants {
		tn := e.tenant(t)
		list = append(list, tn)
		roles = append(roles, tn.DBRole)
	}
	reg := prometheus.NewRegistry()
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: maxConns, Budget: budgetSize,
		AcquireTimeout: 2 * time.Second, Metrics: reg})

	// Sample the server's view and ours while the load runs.
	var maxSeen, maxGauge atomic.Int32
	stop := make(chan struct{})
	sampled := make(chan struct{})
	sampler, err := pgx.Connect(context.Background(), pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close(context.Background())
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int32
			if err := sampler.QueryRow(context.Background(),
				"SELECT count(*) FROM pg_stat_activity WHERE usename = ANY($1)", roles).Scan(&n); err == nil && n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			if g := m.Stats().Open; g > maxGauge.Load() {
				maxGauge.Store(g)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	var served [tenants]atomic.Int32
	var exhausted atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	begin := make(chan struct{}) // every load loop starts at once
	for i, tn := range list {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-begin
				for range 8 {
					err := m.Do(context.Background(), tn, func(c *pgxpool.Conn) error {
						_, err := c.Exec(context.Background(), "SELECT pg_sleep(0.02)")
						return err
					})
					switch {
					case err == nil:
						served[i].Add(1)
					case errors.Is(err, pools.ErrBudgetExhausted):
						exhausted.Add(1)
					default:
						errs <- err
					}
				}
			}()
		}
	}
	close(begin)
	wg.Wait()
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %v", err)
	}
	for i := range served {
		if served[i].Load() == 0 {
			t.Errorf("tenant %d was never served", i)
		}
	}
	s := m.Stats()
	counts := make([]int32, tenants)
	for i := range served {
		counts[i] = served[i].Load()
	}
	t.Logf("served %v, exhausted %d, server max %d, gauge max %d, high-water %d",
		counts, exhausted.Load(), maxSeen.Load(), maxGauge.Load(), s.MaxOpen)
	if maxSeen.Load() > budgetSize || maxGauge.Load() > budgetSize || s.MaxOpen > budgetSize {
		t.Errorf("budget %d exceeded: server saw %d, gauge %d, high-water %d", budgetSize, maxSeen.Load(), maxGauge.Load(), s.MaxOpen)
	}
	if s.MaxOpen < budgetSize {
		t.Errorf("high-water %d: the load never filled the budget, so the test proves nothing", s.MaxOpen)
	}
	if got := metricValue(t, reg, "swa_pool_evictions_total", "budget"); got == 0 {
		t.Errorf("no idle connection was evicted for the budget")
	}
}

func TestBudgetExhaustedAfterTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.tenant(t), e.tenant(t)
	reg := prometheus.NewRegistry()
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 1,
		AcquireTimeout: 500 * time.Millisecond, Metrics: reg})
	ctx := context.Background()
	held, err := m.Acquire(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = m.Acquire(ctx, b)
	if !errors.Is(err, pools.ErrBudgetExhausted) {
		t.Fatalf("Acquire with the budget held = %v, want ErrBudgetExhausted", err)
	}
	if d := time.Since(start); d < 450*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v, want about the 500ms acquire timeout", d)
	}
	// The same tenant's second connection is over budget too.
	if _, err := m.Acquire(ctx, a); !errors.Is(err, pools.ErrBudgetExhausted) {
		t.Fatalf("second connection = %v, want ErrBudgetExhausted", err)
	}
	if got := metricValue(t, reg, "swa_pool_budget_exhausted_total", ""); got != 2 {
		t.Errorf("exhausted counter = %v, want 2", got)
	}
	// Released, the idle connection of a makes room for b.
	held.Release()
	if _, err := whoami(ctx, m, b); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if s := m.Stats(); s.MaxOpen != 1 {
		t.Errorf("high-water %d over a budget of 1", s.MaxOpen)
	}
}

func TestOptionsValidated(t *testing.T) {
	t.Parallel()
	store := secrets.Store(nil)
	if _, err := pools.New(pools.Options{Secrets: store}); err == nil {
		t.Error("no secrets store accepted")
	}
	e := &struct{ secrets.Store }{}
	if _, err := pools.New(pools.Options{Secrets: e, QueryExecMode: "turbo"}); err == nil {
		t.Error("unknown query exec mode accepted")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue returns a counter's value, for the series whose only label
// value is label ("" for a metric without labels).
func metricValue(t *testing.T, g prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if (label == "" && len(m.GetLabel()) == 0) || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// pid returns the backend process id of the connection a query on tn runs on.
func pid(t *testing.T, m *pools.Manager, tn *directory.Tenant) uint32 {
	t.Helper()
	var p uint32
	err := m.Do(context.Background(), tn, func(c *pgxpool.Conn) error {
		p = c.Conn().PgConn().PID()
		_, err := c.Exec(context.Background(), "SELECT 1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvictsColdestConnection fills the budget, then makes room for a new
// tenant: the connection closed is the one longest unneeded, here a busy
// tenant's spare one, and not the other tenant's only one, nor the busy
// tenant's last.
func TestEvictsColdestConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hot, warm, cold := e.tenant(t), e.tenant(t), e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 3})
	ctx := context.Background()

	// hot needs two connections once, then only one.
	c1, err := m.Acquire(ctx, hot)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := m.Acquire(ctx, hot)
	if err != nil {
		t.Fatal(err)
	}
	c1.Release()
	c2.Release()
	warmPID := pid(t, m, warm)
	hotPID := pid(t, m, hot) // hot is now the most recently used pool
	if s := m.Stats(); s.Open != 3 {
		t.Fatalf("budget not full: %+v", s)
	}

	if _, err := whoami(ctx, m, cold); err != nil {
		t.Fatal(err)
	}
	if got := pid(t, m, warm); got != warmPID {
		t.Errorf("warm tenant's only connection was closed (pid %d, now %d)", warmPID, got)
	}
	if got := pid(t, m, hot); got != hotPID {
		t.Errorf("hot tenant's connection in use was closed (pid %d, now %d)", hotPID, got)
	}
	if n := e.backends(t, hot.DBRole); n != 1 {
		t.Errorf("hot tenant has %d backends, want 1 (its spare closed)", n)
	}
	if s := m.Stats(); s.Open != 3 || s.MaxOpen != 3 || s.Opened != 4 {
		t.Errorf("stats %+v, want 3 open at most and 4 logins", s)
	}
}

// TestFrequentTenantOutlastsPassingOnes: a tenant used often keeps its
// connection while tenants seen once pass through the budget one after
// another, each taking the slot of the one before. Evicting the least
// recently used would close the frequent tenant's connection for the
// second passer-by.
func TestFrequentTenantOutlastsPassingOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	frequent := e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 1, Budget: 2})
	ctx := context.Background()

	frequentPID := pid(t, m, frequent)
	for range 9 {
		if got := pid(t, m, frequent); got != frequentPID {
			t.Fatalf("frequent tenant's connection changed with room in the budget (%d, now %d)", frequentPID, got)
		}
	}
	const passing = 4
	for i := range passing {
		if _, err := whoami(ctx, m, e.tenant(t)); err != nil {
			t.Fatal(err)
		}
		if n := e.backends(t, frequent.DBRole); n != 1 {
			t.Fatalf("after passing tenant %d the frequent tenant has %d backends, want 1", i+1, n)
		}
	}
	if got := pid(t, m, frequent); got != frequentPID {
		t.Errorf("frequent tenant's connection was closed for a passing one (pid %d, now %d)", frequentPID, got)
	}
	if s := m.Stats(); s.Open != 2 || s.Opened != 1+passing {
		t.Errorf("stats %+v, want 2 open and %d logins", s, 1+passing)
	}
}

// TestQueuedDialTakesOwnIdleConnection: a tenant's second Acquire queues
// for the full budget; when its first connection comes back it takes that
// one instead of waiting for a slot and logging in again.
func TestQueuedDialTakesOwnIdleConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 1, AcquireTimeout: 5 * time.Second})
	ctx := context.Background()
	held, err := m.Acquire(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	first := held.Conn().PgConn().PID()
	type result struct {
		pid uint32
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := m.Acquire(ctx, a)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Release()
		got <- result{pid: c.Conn().PgConn().PID()}
	}()
	waitFor(t, "the second Acquire to queue for the budget", func() bool { return m.BudgetWaiters() == 1 })
	start := time.Now()
	held.Release()
	r := <-got
	if r.err != nil {
		t.Fatalf("second Acquire: %v", r.err)
	}
	if r.pid != first {
		t.Errorf("second Acquire got a new connection (pid %d), want the released one (%d)", r.pid, first)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second Acquire took %v after the release", d)
	}
	if s := m.Stats(); s.Opened != 1 || s.MaxOpen != 1 {
		t.Errorf("stats %+v, want one login and one connection at most", s)
	}
}

// TestWaitersServedWhileHotTenantBusy: a tenant that keeps its connection
// busy does not starve others queued for the budget; every queued tenant is
// served, and nothing goes over the budget.
func TestWaitersServedWhileHotTenantBusy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hot := e.tenant(t)
	var cold []*directory.Tenant
	for range 3 {
		cold = append(cold, e.tenant(t))
	}
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 2, Budget: 2, AcquireTimeout: 3 * time.Second})
	ctx := context.Background()
	stop := make(chan struct{})
	var hotErr atomic.Value
	var wg sync.WaitGroup
	for range 2 { // two loops keep the hot tenant's pool busy
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := whoami(ctx, m, hot); err != nil && !errors.Is(err, pools.ErrBudgetExhausted) {
					hotErr.Store(err)
					return
				}
			}
		}()
	}
	// The cold tenants start only once the hot one holds the whole budget.
	waitFor(t, "the hot tenant to fill the budget", func() bool { return m.Stats().Open == 2 })
	for i, tn := range cold {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if _, err := whoami(ctx, m, tn); err != nil {
				t.Errorf("cold tenant %d: %v", i, err)
			}
		})
	}
	close(stop)
	wg.Wait()
	if err := hotErr.Load(); err != nil {
		t.Errorf("hot tenant: %v", err)
	}
	if s := m.Stats(); s.MaxOpen > 2 {
		t.Errorf("high-water %d over a budget of 2", s.MaxOpen)
	}
}

// TestStatementTimeoutBackstop: every tenant connection carries the
// configured statement_timeout and idle_in_transaction_session_timeout, so
// the database ends a query or an abandoned transaction itself when its
// caller's deadline was missed; a negative value leaves the server's own.
func TestStatementTimeoutBackstop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant(t)
	show := func(m *pools.Manager) (stmt, idle string) {
		t.Helper()
		err := m.Do(context.Background(), tn, func(c *pgxpool.Conn) error {
			return c.QueryRow(context.Background(),
				"SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')").Scan(&stmt, &idle)
		})
		if err != nil {
			t.Fatal(err)
		}
		return stmt, idle
	}
	if stmt, idle := show(newManager(t, pools.Options{Secrets: e.store, StatementTimeout: 1500 * time.Millisecond})); stmt != "1500ms" || idle != "1500ms" {
		t.Errorf("statement_timeout %q, idle_in_transaction_session_timeout %q; want 1500ms both", stmt, idle)
	}
	if stmt, idle := show(newManager(t, pools.Options{Secrets: e.store})); stmt != "15s" || idle != "15s" {
		t.Errorf("default: statement_timeout %q, idle_in_transaction_session_timeout %q; want 15s both", stmt, idle)
	}
	if stmt, idle := show(newManager(t, pools.Options{Secrets: e.store, StatementTimeout: -1})); stmt != "0" || idle != "0" {
		t.Errorf("negative: statement_timeout %q, idle_in_transaction_session_timeout %q; want the server's 0", stmt, idle)
	}

	// The backstop fires on its own: a statement outliving it is ended by
	// the server even though its caller never gives up.
	m := newManager(t, pools.Options{Secrets: e.store, StatementTimeout: 200 * time.Millisecond})
	err := m.Do(context.Background(), tn, func(c *pgxpool.Conn) error {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(5)")
		return err
	})
	if !isPgCode(err, "57014") {
		t.Errorf("pg_sleep(5) under a 200ms statement_timeout: %v, want query_canceled (57014)", err)
	}
}

// TestCancelledQueryKeepsConnection: a query whose context ends is cancelled
// on the server and its connection goes back to the pool, so the next
// request needs no new login.
func TestCancelledQueryKeepsConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store, MaxConns: 1, Budget: 1})
	if _, err := whoami(context.Background(), m, tn); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := m.Do(ctx, tn, func(c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, "SELECT pg_sleep(10)")
		return err
	})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("pg_sleep(10) under a 200ms deadline: err %v after %v, want an error soon after the deadline", err, time.Since(start))
	}
	waitFor(t, "the connection back in its pool", func() bool {
		s := m.Stats()
		return s.Acquired == 0 && s.Idle == 1
	})
	if _, err := whoami(context.Background(), m, tn); err != nil {
		t.Fatal(err)
	}
	if s := m.Stats(); s.Opened != 1 || s.Open != 1 {
		t.Errorf("after a cancelled query: %+v, want the one connection reused (Opened 1, Open 1)", s)
	}
	if n := e.backends(t, tn.DBRole); n != 1 {
		t.Errorf("%d backends of the tenant role, want 1 (the cancelled query must not linger)", n)
	}
}

func isPgCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// TestBackgroundAcquireIsNoRequest: a worker's visit (Background) does not
// make the tenant look used; a request does.
func TestBackgroundAcquireIsNoRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant(t)
	m := newManager(t, pools.Options{Secrets: e.store})
	if _, err := whoami(directory.Background(context.Background()), m, tn); err != nil {
		t.Fatal(err)
	}
	if m.RequestedWithin(tn.ID, time.Hour) {
		t.Error("a background visit counted as a request")
	}
	if !m.Warm(tn.ID) {
		t.Error("no idle connection after the visit")
	}
	if _, err := whoami(context.Background(), m, tn); err != nil {
		t.Fatal(err)
	}
	if !m.RequestedWithin(tn.ID, time.Hour) {
		t.Error("a request did not count")
	}
}
