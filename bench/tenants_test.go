package bench

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/server"
)

var (
	manyTenants = flag.Int("tenants", 200, "tenants provisioned for BenchmarkBudget")
	manyBudget  = flag.Int("budget", 50, "connection budget of the data plane in BenchmarkBudget")
	zipfS       = flag.Float64("zipf.s", 1.1, "Zipf exponent of the tenant choice in BenchmarkBudget (> 1)")
	dbShare     = flag.Float64("db.share", 0.5, "share of BenchmarkBudget's requests that need a database connection")
	// The phases are measured in steady state, as a replica that has served
	// for a while would be: without a warm-up a 5s phase over a thousand
	// tenants is mostly first requests (a pool, a secrets read and a first
	// login per tenant touched).
	budgetWarmup = flag.Duration("budget.warmup", 10*time.Second, "load each BenchmarkBudget phase runs, unmeasured, before its measured run")
	// A sweep answers how large the budget must be for a given spread of
	// tenants: each budget is one more phase of the many-tenant load, on a
	// data plane of its own, after the others (the Postgres server's
	// max_connections must allow it: SWA_STACK_PG_MAX_CONNECTIONS).
	budgetSweep = flag.String("budget.sweep", "", "more budgets, comma-separated (e.g. 200,400,1000), each a phase of BenchmarkBudget's many-tenant load (b<N>- figures)")
)

// Request kinds of the mixed load; a sample's label is tenant*2 + kind.
const (
	kindBeacon = 0
	kindDB     = 1
)

// pgbouncerAddr, when set, adds a phase through a PgBouncer in
// transaction mode in front of the same Postgres (the local stack's `up
// --pgbouncer` listens on 127.0.0.1:6432): its tenant connections dial it
// instead, in pgx's exec mode (no named prepared statements, which a
// transaction-mode PgBouncer 1.18 cannot keep) and without startup
// parameters it would refuse.
var pgbouncerAddr = flag.String("pgbouncer", "", "host:port of a PgBouncer in front of the tenant databases, for a BenchmarkBudget phase through it")

// BenchmarkBudget spreads a mixed load over many real tenants (-tenants,
// 200 by default, chosen by a Zipf law with s=1.1, so a few are hot and
// most are cold) on a data plane whose connection budget (-budget, 50) is
// far below one connection per tenant. Half the requests are pageview
// beacons (buffered, written in batches through the pools), half run a
// small SELECT on their tenant's database through server.Conn (a
// connection per request).
//
// In the same run, on the same platform, a reference data plane serves the
// same load (clients, duration, share of database requests) on one tenant
// alone: ratio is the many-tenant throughput over the reference's. With
// -pgbouncer a third phase goes through PgBouncer (pgb- figures).
//
// It reports req/s, p50/p99 overall and per kind, the 503s, the most
// connections open at once by the pools' own count and as Postgres saw them
// (sampled from pg_stat_activity), and how many tenants were served. It
// fails if connections ever exceeded the budget.
//
//	SWA_RATE_LIMITS=off go test ./bench -run '^$' -bench Budget -benchtime 1x -tenants 1000 -budget 100
func BenchmarkBudget(b *testing.B) {
	n, budget := *manyTenants, int32(*manyBudget)
	p := newPlatform(b, n)
	opts := planeOptions{Budget: budget, MaxConns: 4, Apps: []server.App{dbApp{}}}
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = p.host(i)
	}
	share := *dbShare
	request := func(r *rand.Rand, req *fasthttp.Request, i int) int {
		if r.Float64() < share {
			req.Header.SetMethod(fasthttp.MethodGet)
			req.SetRequestURI("/bench/db")
			req.Header.SetHost(hosts[i])
			req.Header.Set("Origin", frontendOrigin)
			return i*2 + kindDB
		}
		beacon(req, hosts[i])
		return i*2 + kindBeacon
	}
	many := func(r *rand.Rand, req *fasthttp.Request) int {
		// rand.Zipf keeps state per source; one per client is built lazily.
		return request(r, req, int(zipfFor(r, n).Uint64()))
	}
	one := func(r *rand.Rand, req *fasthttp.Request) int { return request(r, req, 0) }

	admin, err := pgx.Connect(b.Context(), p.admin)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(context.Background())

	type phase struct {
		prefix string
		budget int32
		dp     *dataPlane
		next   prepare
		run    *budgetRun
	}
	phases := []phase{
		{"ref-", budget, newDataPlane(b, p, opts), one, &budgetRun{}},
		{"", budget, newDataPlane(b, p, opts), many, &budgetRun{}},
	}
	if *pgbouncerAddr != "" {
		host, port, err := net.SplitHostPort(*pgbouncerAddr)
		if err != nil {
			b.Fatalf("-pgbouncer: %v", err)
		}
		o := opts
		o.ConnParams = strings.TrimPrefix(os.Getenv("SWA_TENANT_DB_PARAMS")+"&host="+host+"&port="+port, "&")
		o.QueryExecMode, o.StatementTimeout = "exec", -1
		phases = append(phases, phase{"pgb-", budget, newDataPlane(b, p, o), many, &budgetRun{}})
	}
	for _, more := range sweepBudgets(b) {
		o := opts
		o.Budget = more
		phases = append(phases, phase{fmt.Sprintf("b%d-", more), more, newDataPlane(b, p, o), many, &budgetRun{}})
	}
	for i := 0; b.Loop(); i++ {
		if i > 0 {
			b.Fatal("BenchmarkBudget runs its phases once (-benchtime 1x): each phase's data plane is closed after it")
		}
		for _, ph := range phases {
			b.Logf("phase %q from %s", ph.prefix, time.Now().Format("15:04:05.000"))
			ph.run.add(b, p, admin, ph.dp, ph.next)
			// Its connections are closed before the next phase (and its
			// analytics flusher stopped, which would open more), so the
			// server's max_connections need only allow the largest budget.
			ph.dp.close(b)
			// PgBouncer closes its own backends after a second idle.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if nb, err := p.backends(context.Background(), admin); err != nil || nb == 0 {
					break
				}
			}
		}
	}
	b.StopTimer()
	ref := phases[0].run.report(b, "ref-", budget)
	for _, ph := range phases[1:] {
		st := ph.run.report(b, ph.prefix, ph.budget)
		if ref.perSec > 0 {
			b.ReportMetric(st.perSec/ref.perSec, ph.prefix+"ratio")
		}
	}
	b.ReportMetric(float64(budget), "budget")
	b.ReportMetric(0, "ns/op")
}

// sweepBudgets parses -budget.sweep.
func sweepBudgets(b *testing.B) []int32 {
	var out []int32
	for f := range strings.FieldsFuncSeq(*budgetSweep, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil || n < 1 {
			b.Fatalf("-budget.sweep: %q is not a positive number of connections", f)
		}
		out = append(out, int32(n))
	}
	return out
}

// budgetRun accumulates the load phases of one data plane in
// BenchmarkBudget.
type budgetRun struct {
	all            loadResult
	maxBackends    int // above those open when a phase began
	dialed, opened int
	evicted        float64
	dp             *dataPlane
}

// add runs one load phase against dp while counting the backends the way
// an operator would (pg_stat_activity, every 20ms). Backends other data
// planes of the run keep open are counted before the phase and left out.
func (r *budgetRun) add(b *testing.B, p *platform, admin *pgx.Conn, dp *dataPlane, next prepare) {
	r.dp = dp
	before, err := p.backends(context.Background(), admin)
	if err != nil {
		b.Fatal(err)
	}
	if *budgetWarmup > 0 {
		// Counted from here on: the backends the warm-up opened stay in
		// the sampler's count, its logins and evictions do not.
		runLoad(dp.addr, *loadClients, *budgetWarmup, *loadMax, next)
	}
	dialedBefore := p.sessions(b, admin)
	evictedBefore := dp.counter(b, "swa_pool_evictions_total")
	openedBefore := dp.pools.Stats().Opened
	// The sampler's queries are never cancelled half-way (that would close
	// the shared connection); it stops between samples.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if nb, err := p.backends(context.Background(), admin); err == nil && nb-before > r.maxBackends {
				r.maxBackends = nb - before
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	res := runLoad(dp.addr, *loadClients, *loadDuration, *loadMax, next)
	close(stop)
	wg.Wait()
	r.all.samples = append(r.all.samples, res.samples...)
	r.all.elapsed += res.elapsed
	r.all.errs = append(r.all.errs, res.errs...)
	r.dialed += p.sessions(b, admin) - dialedBefore
	r.evicted += dp.counter(b, "swa_pool_evictions_total") - evictedBefore
	r.opened += int(dp.pools.Stats().Opened - openedBefore)
}

// report adds the run's figures, each name prefixed, fails the benchmark on
// answers other than 200 and 503 and on connections above the budget, and
// returns the overall stats.
func (r *budgetRun) report(b *testing.B, prefix string, budget int32) stats {
	r.all.checkErrors(b, prefix+"budget")
	st := r.all.stats(nil)
	for code, c := range st.status {
		if code != 200 && code != 503 && code != 0 {
			b.Errorf("%s: %d answers with status %d", prefix, c, code)
		}
	}
	highWater := r.dp.pools.Stats().MaxOpen // exact: the budget's own high-water mark
	if highWater > budget {
		b.Errorf("%s: connections exceeded the budget %d: pools counted %d at most", prefix, budget, highWater)
	}
	if prefix != "pgb-" && r.maxBackends > int(budget) {
		// Through PgBouncer the backends are its own, pooled per database.
		b.Errorf("%s: connections exceeded the budget %d: Postgres showed %d", prefix, budget, r.maxBackends)
	}
	served, servedDB := map[int]bool{}, map[int]bool{}
	for label := range st.labels {
		served[label/2] = true
		if label%2 == kindDB {
			servedDB[label/2] = true
		}
	}
	st.report(b, prefix)
	dbSt := r.all.stats(func(s sample) bool { return s.label%2 == kindDB })
	dbSt.report(b, prefix+"db-")
	r.all.stats(func(s sample) bool { return s.label%2 == kindBeacon }).report(b, prefix+"beacon-")
	b.ReportMetric(float64(st.status[503]), prefix+"503s")
	b.ReportMetric(float64(highWater), prefix+"max-open-conns")
	b.ReportMetric(float64(r.maxBackends), prefix+"max-pg-backends")
	b.ReportMetric(float64(r.dialed), prefix+"conns-dialed")
	b.ReportMetric(r.evicted, prefix+"conns-evicted")
	b.ReportMetric(float64(r.opened), prefix+"conns-opened")
	if dbSt.n > 0 {
		b.ReportMetric(float64(r.opened)/float64(dbSt.n), prefix+"opened/db-req")
	}
	b.ReportMetric(float64(len(served)), prefix+"tenants-served")
	b.ReportMetric(float64(len(servedDB)), prefix+"tenants-db-served")
	return st
}

// zipfs holds one Zipf generator per client source (rand.Zipf is not safe
// for concurrent use, and each client has its own *rand.Rand).
var zipfs sync.Map // *rand.Rand -> *rand.Zipf

func zipfFor(r *rand.Rand, n int) *rand.Zipf {
	if z, ok := zipfs.Load(r); ok {
		return z.(*rand.Zipf)
	}
	z := rand.NewZipf(r, *zipfS, 1, uint64(n-1))
	zipfs.Store(r, z)
	return z
}
