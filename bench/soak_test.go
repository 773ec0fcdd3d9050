package bench

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/shop"
)

var (
	soakDuration = flag.Duration("soak.duration", 10*time.Minute, "how long BenchmarkSoak runs after its warm-up")
	soakWarmup   = flag.Duration("soak.warmup", 30*time.Second, "BenchmarkSoak's load before its first sample")
	soakEvery    = flag.Duration("soak.every", 5*time.Second, "BenchmarkSoak's sampling interval")
	soakRate     = flag.Float64("soak.rate", 40, "BenchmarkSoak's arrival rate, requests per second (open loop)")
	soakTenants  = flag.Int("soak.tenants", 50, "tenants of BenchmarkSoak")
	soakShoppers = flag.Int("soak.shoppers", 2, "members per tenant going through BenchmarkSoak's visits")
)

// BenchmarkSoak runs the mixed shopper scenario over -soak.tenants (50)
// tenants at a fixed arrival rate (-soak.rate, open loop) for -soak.warmup
// plus -soak.duration (10m), on a data plane wired as `swa serve` wires it
// (the accounts app, the shop with its Stripe clients) with a budget of
// 50 connections. Every visit browses the catalogue, opens a product,
// signs in, adds to the cart, picks a shipping method, reads the totals,
// creates a Checkout Session through stripe-mock and delivers the signed
// checkout.session.completed webhook that makes the order. After the
// warm-up it samples the process's RSS, Go heap, goroutines, the pools'
// open connections and the data plane's Postgres backends every
// -soak.every, and reports their growth over the run, the latency
// percentiles from intended starts, and the answers by status class. It
// fails on any 5xx, transport error or unexpected answer, and if the
// orders in the tenant databases are not the webhooks answered.
//
// It is long, so `make bench` leaves it out; `make soak` runs it:
//
//	SWA_RATE_LIMITS=off go test ./bench -run '^$' -bench Soak -benchtime 1x -timeout 30m
func BenchmarkSoak(b *testing.B) {
	p := newPlatform(b, *soakTenants)
	configureStripe(b, p)
	d := newStripeDouble(b)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	store := secrets.NewCache(p.store, 0, log)
	keyring := csrf.BundleKeyring(store, 0)
	pay := payments.New(payments.Options{Secrets: store, APIBase: d.url, Log: log})
	dp := newDataPlane(b, p, planeOptions{Budget: 50, MaxConns: 4,
		AppsOver: func(pm *pools.Manager, sess *sessions.Store) []server.App {
			accounts := account.New(account.Options{DB: pm, Keyring: account.KeyringFunc(keyring), Sessions: sess, Log: log})
			shopApp := shop.New(shop.Options{Pools: pm, Payments: pay, Key: shop.KeyFunc(keyring.Current()), Account: accounts.SessionClaim, Log: log})
			return []server.App{accounts, shopApp}
		}})
	shoppers := newShoppers(b, p, dp.addr, d, *soakShoppers)
	free := make(chan *shopper, len(shoppers))
	for _, s := range shoppers {
		free <- s
	}
	// An arrival takes a shopper not in the middle of a request; waiting
	// for one counts in its latency (from the intended start).
	send := func(int) (int, int) {
		s := <-free
		defer func() { free <- s }()
		return s.step()
	}

	admin, err := pgx.Connect(b.Context(), p.admin)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(context.Background())

	var res loadResult
	var samples []soakSample
	for b.Loop() {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-stop:
				return
			case <-time.After(*soakWarmup):
			}
			t := time.NewTicker(*soakEvery)
			defer t.Stop()
			for {
				samples = append(samples, takeSample(b, p, dp, admin))
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		})
		res = runOpen(*soakRate, *soakWarmup+*soakDuration, 4*len(shoppers), send)
		close(stop)
		wg.Wait()
		samples = append(samples, takeSample(b, p, dp, admin))
	}

	b.ReportMetric(0, "ns/op") // one iteration is the whole soak: meaningless
	cls := res.classes()
	b.ReportMetric(float64(len(res.samples))/res.elapsed.Seconds(), "req/s")
	res.percentiles(nil).report(b, "")
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "transport", "bad-answer"} {
		b.ReportMetric(float64(cls[c]), c)
	}
	for st := range stepCount {
		res.percentiles(func(s sample) bool { return s.label == st }).report(b, stepNames[st]+"-")
	}
	orders := 0
	for _, s := range shoppers {
		orders += s.orders
	}
	b.ReportMetric(float64(orders), "orders")
	first, last := samples[0], samples[len(samples)-1]
	peak := first
	for _, s := range samples {
		peak.rss, peak.heap = max(peak.rss, s.rss), max(peak.heap, s.heap)
		peak.goroutines, peak.conns, peak.backends = max(peak.goroutines, s.goroutines), max(peak.conns, s.conns), max(peak.backends, s.backends)
	}
	b.ReportMetric(float64(len(samples)), "samples")
	b.ReportMetric(100*(float64(last.rss)-float64(first.rss))/float64(first.rss), "rss-growth-%")
	b.ReportMetric(100*(float64(peak.rss)-float64(first.rss))/float64(first.rss), "rss-peak-growth-%")
	// One RSS sample depends on how many sign-ins hold their argon2 memory
	// (64 MiB each) at that instant: it swings by 150 MiB within seconds.
	// Growth is judged on the highest RSS of the first and the last tenth
	// of the samples, the envelope the swings stay under.
	w := max(1, len(samples)/10)
	early, late := maxRSS(samples[:w]), maxRSS(samples[len(samples)-w:])
	b.ReportMetric(100*(float64(late)-float64(early))/float64(early), "rss-window-growth-%")
	b.ReportMetric(float64(first.rss)/(1<<20), "rss-first-MiB")
	b.ReportMetric(float64(last.rss)/(1<<20), "rss-last-MiB")
	b.ReportMetric(float64(first.heap)/(1<<20), "heap-first-MiB")
	b.ReportMetric(float64(last.heap)/(1<<20), "heap-last-MiB")
	b.ReportMetric(float64(last.goroutines-first.goroutines), "goroutine-growth")
	b.ReportMetric(float64(peak.goroutines), "goroutines-max")
	b.ReportMetric(float64(last.conns-first.conns), "conn-growth")
	b.ReportMetric(float64(peak.conns), "conns-max")
	b.ReportMetric(float64(last.backends-first.backends), "backend-growth")
	b.Logf("samples (s, rss MiB, heap MiB, goroutines, pool conns, backends):")
	for _, s := range samples {
		b.Logf("  %6.0f %7.1f %7.1f %6d %4d %4d", s.at.Sub(samples[0].at).Seconds(), float64(s.rss)/(1<<20), float64(s.heap)/(1<<20), s.goroutines, s.conns, s.backends)
	}

	if n := cls["5xx"] + cls["transport"] + cls["bad-answer"]; n > 0 {
		b.Errorf("%d of %d requests failed (%v)", n, len(res.samples), cls)
	}
	if made := p.countRows(b, "customer_order", p.tenants...); made != orders {
		b.Errorf("the tenant databases hold %d orders, the webhooks answered %d", made, orders)
	}
	if orders == 0 {
		b.Error("no visit reached its order")
	}
}

// soakSample is one look at the process and its connections.
type soakSample struct {
	at         time.Time
	rss, heap  uint64
	goroutines int
	conns      int32
	backends   int
}

func takeSample(b *testing.B, p *platform, dp *dataPlane, admin *pgx.Conn) soakSample {
	b.Helper()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := soakSample{at: time.Now(), rss: rss(b), heap: m.HeapAlloc, goroutines: runtime.NumGoroutine(), conns: dp.pools.Stats().Open}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p.backends(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	s.backends = n
	return s
}

func maxRSS(samples []soakSample) uint64 {
	var m uint64
	for _, s := range samples {
		m = max(m, s.rss)
	}
	return m
}

// rss is the process's resident set size, from /proc/self/statm (Linux).
func rss(b *testing.B) uint64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		b.Fatalf("statm: %q", raw)
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return pages * uint64(os.Getpagesize())
}
