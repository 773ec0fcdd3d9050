package bench

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// configQuery is the small SELECT of BenchmarkBudget's GET /bench/db.
const configQuery = `SELECT log_client_events FROM clientevent_configuration WHERE id = 1`

// BenchmarkBackends asks Postgres alone, without the data plane, what the
// spread of BenchmarkBudget's load costs under two layouts of -tenants
// tenants, each against the same load on one tenant of that layout:
//
//   - a database per tenant (the design's): tenant 0 a pool of 4
//     connections, every other a pool of 1, and no budget, so after the
//     warm-up nearly every query finds a connection of its tenant; db-one- is tenant 0 alone, db- the
//     Zipf spread (db-ratio);
//   - a schema per tenant in one database, each schema the whole tenant
//     schema: one pool of -budget connections that any tenant's query may
//     use, the tenant chosen per transaction (set_config('search_path', ..,
//     true) and the query in one round trip); schema-one- is schema 0
//     alone, schema- the spread (schema-ratio), schema/db-one the spread
//     over schemas against one tenant's database.
//
// Every phase runs -load.clients closed-loop clients, -budget.warmup
// unmeasured then -load.duration measured, and each phase's pools are
// closed before the next. A query that fails fails the benchmark.
//
//	go test ./bench -run '^$' -bench Backends -benchtime 1x -tenants 1000 -budget 100 -timeout 60m
func BenchmarkBackends(b *testing.B) {
	n := *manyTenants
	p := newPlatform(b, n)
	shared := newSchemas(b, n)
	schemas := make([]string, n)
	for i := range schemas {
		schemas[i] = schemaName(i)
	}

	perDB := func(spread bool) (step, func()) {
		// Pools connect on first use: a tenant the load never picks
		// costs nothing. Tenant 0, the hottest, has 4 connections as in
		// db-one; the others 1 each, so that a thousand tenants stay
		// within the server's max_connections (two queries of a tenant at
		// once are rare past the first few).
		pools := make([]*pgxpool.Pool, n)
		for i := range pools {
			cfg, err := pgxpool.ParseConfig(pgtest.WithDatabase(p.admin, p.tenants[i].DBName))
			if err != nil {
				b.Fatal(err)
			}
			cfg.MaxConns = 1
			if i == 0 {
				cfg.MaxConns = 4
			}
			if pools[i], err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
				b.Fatal(err)
			}
		}
		return func(r *rand.Rand) (sample, error) {
				i := 0
				if spread {
					i = int(zipfFor(r, n).Uint64())
				}
				return timed(i, func() error {
					var on bool
					return pools[i].QueryRow(context.Background(), configQuery).Scan(&on)
				})
			}, func() {
				for _, pool := range pools {
					pool.Close()
				}
			}
	}
	perSchema := func(pool *pgxpool.Pool, spread bool) step {
		return func(r *rand.Rand) (sample, error) {
			i := 0
			if spread {
				i = int(zipfFor(r, n).Uint64())
			}
			return timed(i, func() error {
				// One implicit transaction: the batch ends in one Sync.
				batch := &pgx.Batch{}
				batch.Queue(`SELECT set_config('search_path', $1, true)`, schemas[i])
				var on bool
				batch.Queue(configQuery).QueryRow(func(row pgx.Row) error { return row.Scan(&on) })
				return pool.SendBatch(context.Background(), batch).Close()
			})
		}
	}

	type phase struct {
		prefix string
		run    func() loadResult
	}
	// warmAndRun runs the warm-up, then the measured load, every client
	// calling the same step (its state is the pools, safe for them all).
	warmAndRun := func(call step) loadResult {
		client := func() (step, func()) { return call, func() {} }
		if *budgetWarmup > 0 {
			runClosed(*loadClients, *budgetWarmup, *loadMax, client)
		}
		return runClosed(*loadClients, *loadDuration, *loadMax, client)
	}
	dbPhase := func(spread bool) func() loadResult {
		return func() loadResult {
			call, release := perDB(spread)
			defer release()
			return warmAndRun(call)
		}
	}
	schemaPhase := func(spread bool) func() loadResult {
		return func() loadResult {
			cfg, err := pgxpool.ParseConfig(shared)
			if err != nil {
				b.Fatal(err)
			}
			cfg.MaxConns = int32(*manyBudget)
			// pgx prepares a batch's statements before it runs any: they
			// resolve in tenant 0's schema, and Postgres analyses a cached
			// statement again whenever search_path has changed since.
			cfg.ConnConfig.RuntimeParams["search_path"] = schemaName(0)
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			return warmAndRun(perSchema(pool, spread))
		}
	}
	phases := []phase{
		{"db-one-", dbPhase(false)},
		{"db-", dbPhase(true)},
		{"schema-one-", schemaPhase(false)},
		{"schema-", schemaPhase(true)},
	}
	results := map[string]stats{}
	for i := 0; b.Loop(); i++ {
		if i > 0 {
			b.Fatal("BenchmarkBackends runs its phases once (-benchtime 1x)")
		}
		for _, ph := range phases {
			res := ph.run()
			res.checkErrors(b, ph.prefix+"queries")
			st := res.stats(nil)
			if st.status[200] != st.n {
				b.Fatalf("%s: %d of %d queries failed", ph.prefix, st.n-st.status[200], st.n)
			}
			results[ph.prefix] = st
		}
	}
	b.StopTimer()
	for _, ph := range phases {
		results[ph.prefix].report(b, ph.prefix)
		b.ReportMetric(float64(len(results[ph.prefix].labels)), ph.prefix+"tenants")
	}
	ratio := func(name, of, to string) {
		if results[to].perSec > 0 {
			b.ReportMetric(results[of].perSec/results[to].perSec, name)
		}
	}
	ratio("db-ratio", "db-", "db-one-")
	ratio("schema-ratio", "schema-", "schema-one-")
	ratio("schema/db-one", "schema-", "db-one-")
	b.ReportMetric(0, "ns/op")
}

// timed runs one query as a sample labelled with its tenant: status 200
// when it succeeded, 0 with the error when not.
func timed(label int, query func() error) (sample, error) {
	s := sample{label: label}
	t0 := time.Now()
	err := query()
	s.latency = time.Since(t0)
	if err == nil {
		s.status = 200
	}
	return s, err
}

// schemaName is tenant i's schema in newSchemas' database.
func schemaName(i int) string { return fmt.Sprintf("t%04d", i) }

// newSchemas creates a database holding n copies of the tenant schema, one
// schema each (the Up sections of the tenant migrations run with the
// schema as search_path), and returns its connection string; it is
// dropped when the benchmark ends.
func newSchemas(b *testing.B, n int) string {
	b.Helper()
	ctx := context.Background()
	fsys, err := migrations.Tenant.FS()
	if err != nil {
		b.Fatal(err)
	}
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(files)
	var up strings.Builder
	for _, f := range files {
		text, err := fs.ReadFile(fsys, f)
		if err != nil {
			b.Fatal(err)
		}
		body, _, _ := strings.Cut(string(text), "-- +goose Down")
		up.WriteString(body)
		up.WriteString("\n")
	}
	admin := pgtest.AdminURL(b)
	name := pgtest.RandomName("bench_schemas_")
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pgtest.Drop(b, admin, name) })
	dsn := pgtest.WithDatabase(admin, name)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	start := time.Now()
	inParallel(b, n, 2, func(i int) error {
		s := pgx.Identifier{schemaName(i)}.Sanitize()
		// No arguments: the simple protocol, the whole script one
		// transaction.
		script := "BEGIN; CREATE SCHEMA " + s + "; SET LOCAL search_path = " + s + ";\n" + up.String() + "\nCOMMIT;"
		if _, err := pool.Exec(ctx, script); err != nil {
			return fmt.Errorf("schema %d: %w", i, err)
		}
		return nil
	})
	b.Logf("created %d tenant schemas in one database in %v", n, time.Since(start).Round(1e6))
	return dsn
}
