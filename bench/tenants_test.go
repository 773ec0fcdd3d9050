package bench

import (
	"context"
	"flag"
	"math/rand/v2"
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
)

// Request kinds of the mixed load; a sample's label is tenant*2 + kind.
const (
	kindBeacon = 0
	kindDB     = 1
)

// BenchmarkBudget spreads a mixed load over many real tenants (200 by
// default, chosen by a Zipf law with s=1.1, so a few are hot and most are
// cold) on a data plane whose connection budget (50) is far below one
// connection per tenant. Half the requests are pageview beacons (buffered,
// written in batches through the pools), half run a small SELECT on their
// tenant's database through server.Conn (a connection per request). It
// reports req/s, p50/p99 overall and per kind, the 503s, the most
// connections open at once by the pools' own count and as Postgres saw them
// (sampled from pg_stat_activity), and how many tenants were served. It
// fails if connections ever exceeded the budget.
//
//	go test ./bench -run '^$' -bench Budget -benchtime 1x
func BenchmarkBudget(b *testing.B) {
	n, budget := *manyTenants, int32(*manyBudget)
	p := newPlatform(b, n)
	dp := newDataPlane(b, p, planeOptions{Budget: budget, MaxConns: 4, Apps: []server.App{dbApp{}}})
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = p.host(i)
	}
	share := *dbShare
	next := func(r *rand.Rand, req *fasthttp.Request) int {
		// rand.Zipf keeps state per source; one per client is built lazily.
		i := zipfFor(r, n).Uint64()
		if r.Float64() < share {
			req.Header.SetMethod(fasthttp.MethodGet)
			req.SetRequestURI("/bench/db")
			req.Header.SetHost(hosts[i])
			req.Header.Set("Origin", frontendOrigin)
			return int(i)*2 + kindDB
		}
		beacon(req, hosts[i])
		return int(i)*2 + kindBeacon
	}

	admin, err := pgx.Connect(b.Context(), p.admin)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(context.Background())

	var all loadResult
	var maxBackends int
	dialedBefore := p.sessions(b, admin)
	evictedBefore := dp.counter(b, "swa_pool_evictions_total")
	openedBefore := dp.pools.Stats().Opened
	for b.Loop() {
		// The sampler's queries are never cancelled half-way (that would
		// close the shared connection); it stops between samples.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // count the backends the way an operator would
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				if nb, err := p.backends(context.Background(), admin); err == nil && nb > maxBackends {
					maxBackends = nb
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		r := runLoad(dp.addr, *loadClients, *loadDuration, *loadMax, next)
		close(stop)
		wg.Wait()
		all.samples = append(all.samples, r.samples...)
		all.elapsed += r.elapsed
		all.errs = append(all.errs, r.errs...)
	}
	b.StopTimer()
	dialed := p.sessions(b, admin) - dialedBefore
	evicted := dp.counter(b, "swa_pool_evictions_total") - evictedBefore
	opened := dp.pools.Stats().Opened - openedBefore
	all.checkErrors(b, "budget")

	st := all.stats(nil)
	for code, c := range st.status {
		if code != 200 && code != 503 && code != 0 {
			b.Errorf("%d answers with status %d", c, code)
		}
	}
	highWater := dp.pools.Stats().MaxOpen // exact: the budget's own high-water mark
	if highWater > budget || maxBackends > int(budget) {
		b.Errorf("connections exceeded the budget %d: pools counted %d at most, Postgres showed %d", budget, highWater, maxBackends)
	}
	served, servedDB := map[int]bool{}, map[int]bool{}
	for label := range st.labels {
		served[label/2] = true
		if label%2 == kindDB {
			servedDB[label/2] = true
		}
	}

	st.report(b, "")
	dbSt := all.stats(func(s sample) bool { return s.label%2 == kindDB })
	dbSt.report(b, "db-")
	all.stats(func(s sample) bool { return s.label%2 == kindBeacon }).report(b, "beacon-")
	b.ReportMetric(float64(st.status[503]), "503s")
	b.ReportMetric(float64(highWater), "max-open-conns")
	b.ReportMetric(float64(maxBackends), "max-pg-backends")
	b.ReportMetric(float64(budget), "budget")
	b.ReportMetric(float64(dialed), "conns-dialed")
	b.ReportMetric(evicted, "conns-evicted")
	b.ReportMetric(float64(opened), "conns-opened")
	if dbSt.n > 0 {
		b.ReportMetric(float64(opened)/float64(dbSt.n), "opened/db-req")
	}
	b.ReportMetric(float64(len(served)), "tenants-served")
	b.ReportMetric(float64(len(servedDB)), "tenants-db-served")
	b.ReportMetric(0, "ns/op")
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
