package shop_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/logtest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/shop"
)

const pruneAge = 5 * 24 * time.Hour

// addRecords writes n checkout records named prefix-1..prefix-n, created age
// ago, each with a line (SKU 1), a discount (code 1) and shipping method
// methodID; with paid, each also has its order.
func addRecords(t testing.TB, db *pgxpool.Pool, prefix string, n int, age time.Duration, paid bool, methodID int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Exec(ctx, `
WITH s AS (
  INSERT INTO checkout_session (id, cart_id, shipping_method_id, item_subtotal, total, created_at)
  SELECT $1 || '-' || i, i, $4, 3.50, 3.50, now() - make_interval(secs => $3)
  FROM generate_series(1, $2) i
  RETURNING id
), l AS (
  INSERT INTO checkout_session_sku (checkout_session_id, sku_id, quantity, price_each)
  SELECT id, 1, 1, 3.50 FROM s
)
INSERT INTO checkout_session_discount (checkout_session_id, discount_code_id, applied)
SELECT id, 1, true FROM s`, prefix, n, age.Seconds(), methodID); err != nil {
		t.Fatalf("add records: %v", err)
	}
	if paid {
		if _, err := db.Exec(ctx, `INSERT INTO customer_order (identifier, stripe_checkout_session_id, order_total)
SELECT 'ord-' || $1 || '-' || i, $1 || '-' || i, 3.50 FROM generate_series(1, $2) i`, prefix, n); err != nil {
			t.Fatalf("add orders: %v", err)
		}
	}
}

// records lists the checkout records left, with how many lines and
// discounts each still has: "id:lines:discounts ...".
func records(t testing.TB, db *pgxpool.Pool) string {
	t.Helper()
	return text(t, db, `SELECT coalesce(string_agg(s.id || ':' ||
  (SELECT count(*) FROM checkout_session_sku k WHERE k.checkout_session_id = s.id) || ':' ||
  (SELECT count(*) FROM checkout_session_discount d WHERE d.checkout_session_id = s.id), ' ' ORDER BY s.id), '')
FROM checkout_session s`)
}

func TestPruneCheckoutRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("old unpaid go, recent and paid stay", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewPool(t, migrations.Tenant)
		addRecords(t, db, "old", 3, 6*24*time.Hour, false, 2)
		addRecords(t, db, "paid", 2, 30*24*time.Hour, true, 2)
		addRecords(t, db, "recent", 1, time.Hour, false, 2)
		// Younger than the age asked for, though old enough for Stripe to
		// have expired the session: it stays until it is 5 days old.
		addRecords(t, db, "young", 1, 3*24*time.Hour, false, 2)
		addRecords(t, db, "edge", 1, pruneAge-time.Minute, false, 2)

		n, err := shop.PruneCheckoutRecords(ctx, db, pruneAge, 100)
		if err != nil || n != 3 {
			t.Fatalf("pruned %d, %v; want 3", n, err)
		}
		want := "edge-1:1:1 paid-1:1:1 paid-2:1:1 recent-1:1:1 young-1:1:1"
		if got := records(t, db); got != want {
			t.Fatalf("left %q, want %q", got, want)
		}
		if n := count(t, db, `SELECT count(*) FROM checkout_session_sku WHERE checkout_session_id LIKE 'old-%'`) +
			count(t, db, `SELECT count(*) FROM checkout_session_discount WHERE checkout_session_id LIKE 'old-%'`); n != 0 {
			t.Fatalf("%d lines or discounts of pruned records left", n)
		}
		if n, err := shop.PruneCheckoutRecords(ctx, db, pruneAge, 100); err != nil || n != 0 {
			t.Fatalf("second prune: %d, %v; want 0", n, err)
		}
		if got := records(t, db); got != want {
			t.Fatalf("second prune left %q, want %q", got, want)
		}
	})

	t.Run("limit respected across batches", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewPool(t, migrations.Tenant)
		addRecords(t, db, "old", 450, 6*24*time.Hour, false, 1)
		addRecords(t, db, "paid", 5, 6*24*time.Hour, true, 1)
		for _, tc := range []struct {
			limit      int
			want, left int
		}{{2, 2, 448}, {250, 250, 198}, {1000, 198, 0}, {1000, 0, 0}} {
			n, err := shop.PruneCheckoutRecords(ctx, db, pruneAge, tc.limit)
			if err != nil || n != int64(tc.want) {
				t.Fatalf("limit %d: pruned %d, %v; want %d", tc.limit, n, err, tc.want)
			}
			if left := count(t, db, `SELECT count(*) FROM checkout_session WHERE id LIKE 'old-%'`); left != tc.left {
				t.Fatalf("limit %d: %d unpaid left, want %d", tc.limit, left, tc.left)
			}
			if paid := count(t, db, `SELECT count(*) FROM checkout_session WHERE id LIKE 'paid-%'`); paid != 5 {
				t.Fatalf("limit %d: %d paid records left, want 5", tc.limit, paid)
			}
		}
	})

	t.Run("bad arguments are refused", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewPool(t, migrations.Tenant)
		addRecords(t, db, "old", 2, 30*24*time.Hour, false, 1)
		for _, tc := range []struct {
			name  string
			age   time.Duration
			limit int
		}{
			{"age under a session's paying window", 48 * time.Hour, 10},
			{"zero age", 0, 10},
			{"zero limit", pruneAge, 0},
			{"negative limit", pruneAge, -1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if n, err := shop.PruneCheckoutRecords(ctx, db, tc.age, tc.limit); err == nil || n != 0 {
					t.Fatalf("pruned %d, %v; want an error", n, err)
				}
			})
		}
		if n := count(t, db, `SELECT count(*) FROM checkout_session`); n != 2 {
			t.Fatalf("%d records left, want 2", n)
		}
	})

	t.Run("a record an order maker holds is skipped", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewPool(t, migrations.Tenant)
		addRecords(t, db, "held", 2, 6*24*time.Hour, false, 1)
		addRecords(t, db, "free", 1, 6*24*time.Hour, false, 1)
		// Two order makers lock their session's record, as placeOrder does.
		paying, err := db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer paying.Rollback(ctx)
		failing, err := db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer failing.Rollback(ctx)
		for _, h := range []struct {
			tx pgx.Tx
			id string
		}{{paying, "held-1"}, {failing, "held-2"}} {
			if _, err := h.tx.Exec(ctx, `SELECT 1 FROM checkout_session WHERE id = $1 FOR UPDATE`, h.id); err != nil {
				t.Fatal(err)
			}
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if n, err := shop.PruneCheckoutRecords(tctx, db, pruneAge, 100); err != nil || n != 1 {
			t.Fatalf("pruned %d, %v; want 1 without waiting on the held records", n, err)
		}
		// One maker makes its order, the other gives up.
		if _, err := paying.Exec(ctx, `INSERT INTO customer_order (identifier, stripe_checkout_session_id) VALUES ('ord-held-1', 'held-1')`); err != nil {
			t.Fatal(err)
		}
		if err := paying.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := failing.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := shop.PruneCheckoutRecords(tctx, db, pruneAge, 100); err != nil || n != 1 {
			t.Fatalf("pruned %d, %v; want 1 (the record whose order failed)", n, err)
		}
		if got, want := records(t, db), "held-1:1:1"; got != want {
			t.Fatalf("left %q, want %q", got, want)
		}
	})

	t.Run("a shipping method only stale records name can be deleted", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewPool(t, migrations.Tenant)
		method := func(ident string) int64 {
			var id int64
			if err := db.QueryRow(ctx, `INSERT INTO shipping_method (identifier, carrier, shipping_cost, tracking_code_base_url)
VALUES ($1, 'Test', 1.00, 'https://example.com/') RETURNING id`, ident).Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		}
		stale, proof := method("StaleOnly"), method("Proof")
		addRecords(t, db, "stale", 1, 6*24*time.Hour, false, stale)
		addRecords(t, db, "paid", 1, 6*24*time.Hour, true, proof)
		del := func(id int64) error {
			_, err := db.Exec(ctx, `DELETE FROM shipping_method WHERE id = $1`, id)
			return err
		}
		var pgErr *pgconn.PgError
		if err := del(stale); !errors.As(err, &pgErr) || pgErr.Code != "23503" {
			t.Fatalf("delete before pruning: %v, want a foreign key violation", err)
		}
		if n, err := shop.PruneCheckoutRecords(ctx, db, pruneAge, 100); err != nil || n != 1 {
			t.Fatalf("pruned %d, %v; want 1", n, err)
		}
		if err := del(stale); err != nil {
			t.Fatalf("delete after pruning: %v", err)
		}
		if err := del(proof); !errors.As(err, &pgErr) || pgErr.Code != "23503" {
			t.Fatalf("delete of a paid session's method: %v, want a foreign key violation", err)
		}
	})
}

// tenantDBs hands out each test tenant's database the way pools.Do does;
// a tenant without one fails, and one marked hung blocks until ctx ends
// (announcing itself on reached, when set).
type tenantDBs struct {
	dbs     map[int64]*pgxpool.Pool
	hung    map[int64]bool
	reached chan<- int64
}

func (d tenantDBs) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	if d.hung[t.ID] {
		if d.reached != nil {
			d.reached <- t.ID
		}
		<-ctx.Done()
		return ctx.Err()
	}
	db, ok := d.dbs[t.ID]
	if !ok {
		return fmt.Errorf("tenant %s: database unavailable", t.Slug)
	}
	c, err := db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c)
}

func TestPrunerRun(t *testing.T) {
	t.Parallel()
	a, b := pgtest.NewPool(t, migrations.Tenant), pgtest.NewPool(t, migrations.Tenant)
	tenants := []*directory.Tenant{{ID: 1, Slug: "alpha"}, {ID: 2, Slug: "broken"}, {ID: 3, Slug: "beta"}}
	for _, db := range []*pgxpool.Pool{a, b} {
		addRecords(t, db, "old", 3, 8*24*time.Hour, false, 1)
		addRecords(t, db, "paid", 1, 8*24*time.Hour, true, 1)
		addRecords(t, db, "recent", 1, 24*time.Hour, false, 1)
	}
	var logs logtest.Buffer
	p, err := shop.NewPruner(shop.PrunerOptions{
		Tenants:     func(context.Context) []*directory.Tenant { return tenants },
		DB:          tenantDBs{dbs: map[int64]*pgxpool.Pool{1: a, 3: b}},
		Interval:    50 * time.Millisecond,
		Limit:       2, // the three old records take two passes
		Concurrency: 2,
		Log:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})

	want := "paid-1:1:1 recent-1:1:1"
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: alpha %q, beta %q; log:\n%s", what, records(t, a), records(t, b), logs.String())
			}
		}
	}
	wait("first records pruned", func() bool { return records(t, a) == want && records(t, b) == want })
	// Records that become stale later go in a later pass.
	addRecords(t, a, "later", 2, 8*24*time.Hour, false, 1)
	wait("later records pruned", func() bool { return records(t, a) == want })

	cancel()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	log := logs.String()
	for _, s := range []string{"checkout record pruning failed", "tenant=broken", "database unavailable", "tenant=alpha", "tenant=beta"} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}
	if strings.Contains(log, "tenant=alpha err") || strings.Contains(log, "tenant=beta err") {
		t.Errorf("healthy tenant logged as failing:\n%s", log)
	}
}

// TestPrunerStopsMidPass: a tenant whose database hangs holds a pass open;
// cancelling still stops Run promptly, without logging the cancel as a
// failure.
func TestPrunerStopsMidPass(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	reached := make(chan int64, 3)
	p, err := shop.NewPruner(shop.PrunerOptions{
		Tenants: func(context.Context) []*directory.Tenant {
			return []*directory.Tenant{{ID: 1, Slug: "hung"}, {ID: 2, Slug: "hung-too"}, {ID: 3, Slug: "waiting"}}
		},
		DB:          tenantDBs{hung: map[int64]bool{1: true, 2: true, 3: true}, reached: reached},
		Concurrency: 2,
		Log:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// Barrier: both workers of the pass are inside a hung database.
	got := map[int64]bool{}
	for len(got) < 2 {
		select {
		case id := <-reached:
			got[id] = true
		case err := <-done:
			t.Fatalf("Run returned before cancel: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("the pass reached %d of 2 hung databases", len(got))
		}
	}
	if got[3] {
		t.Fatal("a third tenant was started beyond Concurrency 2")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if s := logs.String(); s != "" {
		t.Fatalf("cancel logged: %s", s)
	}
}

func TestNewPruner(t *testing.T) {
	t.Parallel()
	tenants := func(context.Context) []*directory.Tenant { return nil }
	for _, tc := range []struct {
		name string
		o    shop.PrunerOptions
		ok   bool
	}{
		{"defaults", shop.PrunerOptions{Tenants: tenants, DB: tenantDBs{}}, true},
		{"exactly the minimum age", shop.PrunerOptions{Tenants: tenants, DB: tenantDBs{}, Age: shop.MinCheckoutRecordAge}, true},
		{"no tenants", shop.PrunerOptions{DB: tenantDBs{}}, false},
		{"no database", shop.PrunerOptions{Tenants: tenants}, false},
		{"age under a session's paying window", shop.PrunerOptions{Tenants: tenants, DB: tenantDBs{}, Age: 48 * time.Hour}, false},
		{"negative age", shop.PrunerOptions{Tenants: tenants, DB: tenantDBs{}, Age: -time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := shop.NewPruner(tc.o); (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// visitLog is a tenantDBs that records which tenants a pass visited and
// whether each visit was marked a background pass's.
type visitLog struct {
	tenantDBs
	mu      sync.Mutex
	visited map[int64]bool // tenant → its context was Background
}

func (v *visitLog) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	v.mu.Lock()
	v.visited[t.ID] = directory.IsBackground(ctx)
	v.mu.Unlock()
	return v.tenantDBs.Do(ctx, t, fn)
}

// TestPrunerVisits: with Visits, a pass prunes the tenant in use and leaves
// one whose sweep is not due, however stale its records; its visits are
// background passes, which do not make a tenant look in use.
func TestPrunerVisits(t *testing.T) {
	t.Parallel()
	used, idle := pgtest.NewPool(t, migrations.Tenant), pgtest.NewPool(t, migrations.Tenant)
	for _, db := range []*pgxpool.Pool{used, idle} {
		addRecords(t, db, "old", 2, 8*24*time.Hour, false, 1)
	}
	tenants := []*directory.Tenant{{ID: 1, Slug: "used"}, {ID: 2, Slug: "idle"}}
	visits := directory.NewVisits(func(id int64) bool { return id == 1 }, time.Hour)
	now := time.Now()
	for _, tn := range tenants {
		visits.Visited(tn.ID, now, time.Time{}) // both swept just now
	}
	db := &visitLog{tenantDBs: tenantDBs{dbs: map[int64]*pgxpool.Pool{1: used, 2: idle}}, visited: map[int64]bool{}}
	p, err := shop.NewPruner(shop.PrunerOptions{
		Tenants: func(context.Context) []*directory.Tenant { return tenants },
		DB:      db,
		Visits:  visits,
	})
	if err != nil {
		t.Fatal(err)
	}
	before := records(t, idle)
	if before == "" {
		t.Fatal("no records to leave")
	}
	p.RunOnce(context.Background())
	if bg, ok := db.visited[1]; !ok || !bg {
		t.Errorf("tenant in use: visited %v, background %v; want a background visit", ok, bg)
	}
	if _, ok := db.visited[2]; ok {
		t.Error("tenant not in use was visited before its sweep was due")
	}
	if got := records(t, used); got != "" {
		t.Errorf("tenant in use kept %q, want its stale records pruned", got)
	}
	if got := records(t, idle); got != before {
		t.Errorf("tenant not visited: records %q, want them untouched (%q)", got, before)
	}
}
