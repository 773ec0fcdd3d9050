package usage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/usage"
)

// registry is a platform database with two tenants, its owner's pool and a
// pool of a data-plane login (a member of swa_dataplane, read-only but for
// usage_record_flush).
type registry struct {
	owner, reader *pgxpool.Pool
	dir           *directory.Directory
	acme, beta    int64
}

func newRegistry(t *testing.T) *registry {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t, migrations.Platform)
	owner, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(owner.Close)
	role := pgtest.RandomName("meter_")
	if _, err := owner.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'meter-pw' IN ROLE swa_dataplane`, role)); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	u.User = url.UserPassword(role, "meter-pw")
	reader, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		reader.Close()
		owner.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) //nolint:errcheck
	})
	r := &registry{owner: owner, reader: reader}
	r.acme = directorytest.AddTenant(t, owner, directorytest.Tenant{Slug: "acme", Domains: []string{"shop.acme.test"}})
	r.beta = directorytest.AddTenant(t, owner, directorytest.Tenant{Slug: "beta", Domains: []string{"beta.test"}})
	r.dir = directory.New(directory.Options{DB: reader, BaseDomain: "swa.test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := r.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// ok answers every path.
type ok struct{}

func (ok) Mount(r fiber.Router) {
	r.Get("/ping", func(c *fiber.Ctx) error { return c.SendString("pong") })
}

// replica is one data-plane replica: a server and its meter.
type replica struct {
	app   *fiber.App
	meter *usage.Meter
	reg   *prometheus.Registry
}

func (r *registry) replica(t *testing.T, db usage.DB, now func() time.Time) *replica {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := usage.NewMeter(usage.Options{DB: db, Replica: "dp", Interval: time.Hour, Metrics: reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	app := server.New(server.Options{Directory: r.dir, Log: slog.New(slog.DiscardHandler), Usage: m, Apps: []server.App{ok{}}})
	return &replica{app: app, meter: m, reg: reg}
}

func (rp *replica) get(t *testing.T, host string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/ping", nil)
	req.Host = host
	resp, err := rp.app.Test(req, -1)
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
}

// flushes reads a replica's swa_usage_flushes_total{result}.
func flushes(t *testing.T, rp *replica, result string) int {
	t.Helper()
	mfs, err := rp.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "swa_usage_flushes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	t.Fatalf("swa_usage_flushes_total{result=%q} is not registered", result)
	return 0
}

// lostAck passes every query to the registry, and for the first lose of
// them reports the connection lost once the function has committed: a
// flush whose acknowledgement never reached the replica. It wraps the real
// pool; nothing of Postgres is imitated.
type lostAck struct {
	db   usage.DB
	lose atomic.Int32
}

func (l *lostAck) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	row := l.db.QueryRow(ctx, sql, args...)
	if l.lose.Add(-1) >= 0 {
		return lostRow{row}
	}
	return row
}

type lostRow struct{ row pgx.Row }

func (r lostRow) Scan(dest ...any) error {
	if err := r.row.Scan(dest...); err != nil {
		return err
	}
	return errors.New("read tcp: connection reset by peer")
}

func hourTotals(t *testing.T, db *pgxpool.Pool, tenant int64, hour time.Time) (requests int64) {
	t.Helper()
	err := db.QueryRow(context.Background(), `SELECT coalesce(sum(requests), 0) FROM usage_hourly WHERE tenant_id = $1 AND hour = $2`,
		tenant, hour).Scan(&requests)
	if err != nil {
		t.Fatal(err)
	}
	return requests
}

// Two replicas over one registry count the requests sent through both,
// while they flush; one restarts in the middle (its old meter flushes on
// close), and one flush commits without its acknowledgement reaching the
// replica, which sends it again. The hour's rows hold exactly what was sent.
func TestMeterCountsExactlyOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t)
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	now := func() time.Time { return hour.Add(30 * time.Minute) }

	lossy := &lostAck{db: reg.reader}
	a := reg.replica(t, lossy, now)
	b := reg.replica(t, reg.reader, now)

	// Phase 1: both replicas take requests for both tenants while each
	// flushes; the barrier starts senders and flushers together.
	const perSender = 40
	sent := map[int64]int64{}
	var mu sync.Mutex
	phase := func(reps ...*replica) {
		start := make(chan struct{})
		var wg sync.WaitGroup
		var flushed atomic.Int32
		stopFlush := make(chan struct{})
		var fwg sync.WaitGroup
		for _, rp := range reps {
			for _, h := range []struct {
				host string
				id   int64
			}{{"shop.acme.test", reg.acme}, {"beta.test", reg.beta}} {
				wg.Go(func() {
					<-start
					for range perSender {
						rp.get(t, h.host)
					}
					mu.Lock()
					sent[h.id] += perSender
					mu.Unlock()
				})
			}
			fwg.Go(func() {
				<-start
				for {
					if err := rp.meter.Flush(ctx); err == nil {
						flushed.Add(1)
					}
					select {
					case <-stopFlush:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			})
		}
		// Requests for no tenant count for none.
		a.get(t, "unknown.test")
		close(start)
		wg.Wait()
		close(stopFlush)
		fwg.Wait()
		if flushed.Load() == 0 {
			t.Error("no flush ran while requests were answered")
		}
	}

	// The first flush of replica a commits and loses its answer.
	lossy.lose.Store(1)
	a.get(t, "shop.acme.test")
	sent[reg.acme]++
	if err := a.meter.Flush(ctx); err == nil {
		t.Fatal("the flush whose acknowledgement was lost reported success")
	}
	if got := hourTotals(t, reg.owner, reg.acme, hour); got != 1 {
		t.Fatalf("after the committed flush: %d requests recorded, want 1", got)
	}
	phase(a, b)

	// Replica b restarts: its meter flushes on close; a new meter (a new
	// replica id, numbering from 1 again) and server take over.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := b.meter.Close(cctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	b2 := reg.replica(t, reg.reader, now)
	if b2.meter.ID() == b.meter.ID() {
		t.Fatalf("the restarted replica kept the id %s", b.meter.ID())
	}
	phase(a, b2)

	for _, rp := range []*replica{a, b2} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := rp.meter.Close(cctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}

	for tenant, want := range sent {
		if got := hourTotals(t, reg.owner, tenant, hour); got != want {
			t.Errorf("tenant %d: usage_hourly has %d requests for the hour, want the %d sent", tenant, got, want)
		}
	}
	if sent[reg.acme] != 4*perSender+1 || sent[reg.beta] != 4*perSender {
		t.Errorf("sent %v: not every sender took part", sent)
	}
	// The retried flush was recognised, applied nothing, and was counted so.
	if got := flushes(t, a, "duplicate"); got != 1 {
		t.Errorf("replica a: %d duplicate flushes, want 1", got)
	}
	if got := flushes(t, a, "error"); got != 1 {
		t.Errorf("replica a: %d failed flushes, want 1", got)
	}
	var rows int
	if err := reg.owner.QueryRow(ctx, `SELECT count(*) FROM usage_flushes`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	applied := flushes(t, a, "ok") + flushes(t, b, "ok") + flushes(t, b2, "ok")
	// The lost acknowledgement's flush is a row too: it did commit.
	if rows != applied+1 {
		t.Errorf("usage_flushes has %d rows, want one per applied flush (%d)", rows, applied+1)
	}
	for _, rp := range []*replica{a, b, b2} {
		if got := pending(t, rp.reg); got != 0 {
			t.Errorf("swa_usage_pending_tenants = %v after close, want 0", got)
		}
	}
}

// pending reads a replica's swa_usage_pending_tenants.
func pending(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "swa_usage_pending_tenants" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("swa_usage_pending_tenants is not registered")
	return 0
}

// Orders, client events and emails are counted too; revenue per currency,
// an order without one in its own bucket; a count for a tenant deleted
// since is skipped; and the report sums the hours.
func TestMeterKindsAndReport(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t)
	ctx := context.Background()
	h1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(h1.Add(59 * time.Minute).UnixNano())
	m, err := usage.NewMeter(usage.Options{DB: reg.reader, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	m.Order(reg.acme, "USD", 1250)
	m.Order(reg.acme, "usd", 750)
	m.Order(reg.acme, "eur", 100)
	m.Order(reg.acme, "", 300)
	m.ClientEvent(reg.acme)
	m.EmailSent(reg.acme)
	m.Request(reg.acme)
	m.Request(999999) // no such tenant
	clock.Store(h1.Add(61 * time.Minute).UnixNano())
	m.Request(reg.acme)
	m.EmailSent(reg.acme)
	m.Order(reg.acme, "x1!", 5) // not a currency: none
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := usage.Read(ctx, reg.owner, reg.acme, h1, h1.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hours) != 2 {
		t.Fatalf("hours = %+v, want 2", rep.Hours)
	}
	first := rep.Hours[0]
	if !first.Hour.Equal(h1) || first.Requests != 1 || first.Orders != 4 || first.ClientEvents != 1 || first.EmailsSent != 1 {
		t.Errorf("first hour = %+v", first)
	}
	wantRevenue := []usage.Revenue{{Currency: "", Orders: 1, Cents: 300}, {Currency: "eur", Orders: 1, Cents: 100}, {Currency: "usd", Orders: 2, Cents: 2000}}
	if fmt.Sprint(first.Revenue) != fmt.Sprint(wantRevenue) {
		t.Errorf("first hour revenue = %v, want %v", first.Revenue, wantRevenue)
	}
	tt := rep.Totals
	if tt.Requests != 2 || tt.Orders != 5 || tt.EmailsSent != 2 || tt.ClientEvents != 1 {
		t.Errorf("totals = %+v", tt)
	}
	wantTotal := []usage.Revenue{{Currency: "", Orders: 2, Cents: 305}, {Currency: "eur", Orders: 1, Cents: 100}, {Currency: "usd", Orders: 2, Cents: 2000}}
	if fmt.Sprint(tt.Revenue) != fmt.Sprint(wantTotal) {
		t.Errorf("total revenue = %v, want %v", tt.Revenue, wantTotal)
	}
	// The range is half open.
	rep, err = usage.Read(ctx, reg.owner, reg.acme, h1.Add(time.Hour), h1.Add(2*time.Hour))
	if err != nil || len(rep.Hours) != 1 || rep.Totals.Requests != 1 {
		t.Errorf("second hour alone = %+v, %v", rep, err)
	}
}

// The data plane's role adds usage only through usage_record_flush, which
// checks its arguments.
func TestDataplaneWritesUsageOnlyThroughTheFunction(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO usage_hourly (tenant_id, hour, requests) VALUES (1, '2026-01-01T00:00:00Z', 1)`,
		`UPDATE usage_hourly SET requests = 0`,
		`DELETE FROM usage_flushes`,
		`INSERT INTO usage_flushes (replica, seq) VALUES ('x', 1)`,
	} {
		_, err := reg.reader.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: err = %v, want permission denied (42501)", q, err)
		}
	}
	for _, args := range [][]any{{"", 1, "[]"}, {"r", 0, "[]"}, {"r", 1, `{"tenant": 1}`}} {
		var applied bool
		err := reg.reader.QueryRow(ctx, `SELECT usage_record_flush($1, $2, $3::jsonb)`, args...).Scan(&applied)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22023" {
			t.Errorf("usage_record_flush%v: err = %v, want 22023", args, err)
		}
	}
}

// The sampler writes each serving tenant's database size and stored site
// bytes into the current hour, the last sample winning, and prunes flush
// keys past their retention.
func TestSamplerGauges(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t)
	ctx := context.Background()
	if _, err := reg.owner.Exec(ctx, `INSERT INTO site_blobs (tenant_id, sha256, size, stored) VALUES
		($1, decode(repeat('01', 32), 'hex'), 1000, true), ($1, decode(repeat('02', 32), 'hex'), 500, true),
		($1, decode(repeat('03', 32), 'hex'), 7000, false)`, reg.acme); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.owner.Exec(ctx, `INSERT INTO usage_flushes (replica, seq, flushed_at) VALUES
		('old', 1, now() - interval '8 days'), ('new', 1, now())`); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	size := int64(4096)
	s, err := usage.NewSampler(usage.SamplerOptions{
		DB:            reg.owner,
		DatabaseSizes: func(context.Context) (map[int64]int64, error) { return map[int64]int64{reg.acme: size}, nil },
		Now:           func() time.Time { return hour.Add(20 * time.Minute) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sz := range []int64{4096, 8192} {
		size = sz
		if err := s.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := usage.Read(ctx, reg.owner, reg.acme, hour, hour.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hours) != 1 || rep.Hours[0].DBBytes == nil || *rep.Hours[0].DBBytes != 8192 ||
		rep.Hours[0].SiteBytes == nil || *rep.Hours[0].SiteBytes != 1500 {
		t.Fatalf("sampled hour = %+v", rep.Hours)
	}
	// beta has no database size (its server did not answer): NULL, but its
	// site bytes (none) are sampled.
	rep, err = usage.Read(ctx, reg.owner, reg.beta, hour, hour.Add(time.Hour))
	if err != nil || len(rep.Hours) != 1 || rep.Hours[0].DBBytes != nil || rep.Hours[0].SiteBytes == nil || *rep.Hours[0].SiteBytes != 0 {
		t.Fatalf("beta's hour = %+v, %v", rep.Hours, err)
	}
	var left []string
	rows, _ := reg.owner.Query(ctx, `SELECT replica FROM usage_flushes ORDER BY replica`)
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || fmt.Sprint(left) != "[new]" {
		t.Errorf("usage_flushes after pruning: %v, %v", left, err)
	}
}
