package bench

import (
	"errors"
	"flag"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Load settings; every run is bounded by both a duration and a request count.
var (
	loadDuration = flag.Duration("load.duration", 5*time.Second, "how long each load phase runs")
	loadClients  = flag.Int("load.clients", 32, "keep-alive clients of the closed-loop load generator")
	loadMax      = flag.Int("load.max", 2_000_000, "most requests a load phase sends")
)

// requestTimeout bounds one request, so a stuck server fails the run
// instead of hanging it.
const requestTimeout = 10 * time.Second

// prepare fills req for the next request of one client and returns a label
// (tenant index, request kind...) that is handed back to record.
type prepare func(r *rand.Rand, req *fasthttp.Request) int

// sample is one response.
type sample struct {
	label   int
	status  int // 0: transport error
	latency time.Duration
}

// loadResult is what a closed-loop run saw.
type loadResult struct {
	elapsed time.Duration
	samples []sample
	errs    []error // the first transport errors, for the report
}

// runLoad sends requests to addr from clients goroutines, each waiting for
// its answer before sending the next (a closed loop, over keep-alive
// connections), until duration has passed or max requests were sent.
func runLoad(addr string, clients int, duration time.Duration, max int, next prepare) loadResult {
	hc := &fasthttp.HostClient{
		Addr:                addr,
		MaxConns:            clients,
		MaxIdleConnDuration: time.Minute,
		ReadTimeout:         requestTimeout,
		WriteTimeout:        requestTimeout,
	}
	defer hc.CloseIdleConnections()
	return runClosed(clients, duration, max, func() (step, func()) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		return func(r *rand.Rand) (sample, error) {
				req.Reset()
				s := sample{label: next(r, req)}
				t0 := time.Now()
				err := hc.DoTimeout(req, resp, requestTimeout)
				s.latency = time.Since(t0)
				if err == nil {
					s.status = resp.StatusCode()
				}
				return s, err
			}, func() {
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
			}
	})
}

// step makes one call of a closed-loop client: its sample, and the
// transport error if it had one (status 0).
type step func(r *rand.Rand) (sample, error)

// runClosed runs clients goroutines, each making the calls of its own step
// one after the other, until duration has passed or max calls were made.
// newClient gives each goroutine its step and what to release after.
func runClosed(clients int, duration time.Duration, max int, newClient func() (step, func())) loadResult {
	var (
		mu      sync.Mutex
		res     loadResult
		sent    atomic.Int64
		wg      sync.WaitGroup
		started = time.Now()
		end     = started.Add(duration)
	)
	for c := range clients {
		wg.Go(func() {
			call, release := newClient()
			defer release()
			r := rand.New(rand.NewPCG(uint64(c), uint64(started.UnixNano())))
			local := make([]sample, 0, 4096)
			var errs []error
			for time.Now().Before(end) {
				if sent.Add(1) > int64(max) {
					break
				}
				s, err := call(r)
				if err != nil && len(errs) < 3 {
					errs = append(errs, err)
				}
				local = append(local, s)
			}
			mu.Lock()
			res.samples = append(res.samples, local...)
			res.errs = append(res.errs, errs...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(started)
	return res
}

// stats summarises the samples keep accepts.
type stats struct {
	n             int
	perSec        float64
	p50, p99, max time.Duration
	status        map[int]int
	labels        map[int]int // label -> responses with status 200
}

func (res loadResult) stats(keep func(sample) bool) stats {
	st := stats{status: map[int]int{}, labels: map[int]int{}}
	lat := make([]time.Duration, 0, len(res.samples))
	for _, s := range res.samples {
		if keep != nil && !keep(s) {
			continue
		}
		lat = append(lat, s.latency)
		st.status[s.status]++
		if s.status == 200 {
			st.labels[s.label]++
		}
	}
	st.n = len(lat)
	if st.n == 0 {
		return st
	}
	slices.Sort(lat)
	st.perSec = float64(st.n) / res.elapsed.Seconds()
	st.p50 = lat[st.n*50/100]
	st.p99 = lat[min(st.n*99/100, st.n-1)]
	st.max = lat[st.n-1]
	return st
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// report adds a phase's figures to the benchmark result, each name
// prefixed (req/s, p50-ms, p99-ms, max-ms).
func (st stats) report(b *testing.B, prefix string) {
	b.ReportMetric(st.perSec, prefix+"req/s")
	b.ReportMetric(ms(st.p50), prefix+"p50-ms")
	b.ReportMetric(ms(st.p99), prefix+"p99-ms")
	b.ReportMetric(ms(st.max), prefix+"max-ms")
}

// checkErrors fails the benchmark on transport errors (timeouts, resets).
func (res loadResult) checkErrors(b *testing.B, what string) {
	b.Helper()
	n := 0
	for _, s := range res.samples {
		if s.status == 0 {
			n++
		}
	}
	if n > 0 {
		b.Errorf("%s: %d of %d requests failed in transport, e.g. %v", what, n, len(res.samples), errors.Join(res.errs...))
	}
}
