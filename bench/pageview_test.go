package bench

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// beaconURI is a pageview beacon as the StartupWebApp frontend sends it.
const beaconURI = "/clientevent/pageview?client_event_id=null" +
	"&anonymous_id=eBgIFC8sL2F6s6NTjw9R:1xWMZS:xR97JRv7uQgOpRfG1489YyIGCj07HgXF0p6Ixhsuttw" +
	"&pageWidth=1280&url=http%3A%2F%2Flocalhost%3A8080%2Fproduct%2FaBcDeFgHiJ%3Fref%3Dnews"

// beacon fills req with a pageview beacon for host, from the frontend's
// origin.
func beacon(req *fasthttp.Request, host string) {
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(beaconURI)
	req.Header.SetHost(host)
	req.Header.Set("Origin", frontendOrigin)
	req.Header.Set("Referer", frontendOrigin+"/product/aBcDeFgHiJ")
	req.Header.SetUserAgent("Mozilla/5.0 (X11; Linux x86_64) bench")
}

// BenchmarkPageview compares GET /clientevent/pageview on one tenant through
// the whole data plane (directory over the registry, sessions and CSRF
// middleware, analytics buffering into the tenant's database through the
// pools) with a bare Fiber handler answering the same JSON, both over
// loopback sockets under the same closed-loop load. It reports each side's
// req/s, p50, p99 and max latency, and routed/plain throughput as a ratio.
//
//	go test ./bench -run '^$' -bench Pageview -benchtime 1x
func BenchmarkPageview(b *testing.B) {
	p := newPlatform(b, 1)
	dp := newDataPlane(b, p, planeOptions{Budget: 50, MaxConns: 4})
	plain := listen(b, plainApp())
	host := p.host(0)
	next := func(_ *rand.Rand, req *fasthttp.Request) int { beacon(req, host); return 0 }

	// Warm both servers (connections, first pool, caches) before measuring.
	runLoad(plain, *loadClients, 500*time.Millisecond, *loadMax, next)
	warm := runLoad(dp.addr, *loadClients, 500*time.Millisecond, *loadMax, next)
	warmed := warm.stats(nil).status[200]

	var plainAll, routedAll loadResult
	for b.Loop() {
		// Alternate the two sides so neither gets a systematically
		// warmer (or hotter) machine.
		for _, side := range []struct {
			addr string
			into *loadResult
		}{{plain, &plainAll}, {dp.addr, &routedAll}} {
			r := runLoad(side.addr, *loadClients, *loadDuration, *loadMax, next)
			side.into.samples = append(side.into.samples, r.samples...)
			side.into.elapsed += r.elapsed
			side.into.errs = append(side.into.errs, r.errs...)
		}
	}
	b.StopTimer()
	plainAll.checkErrors(b, "plain")
	routedAll.checkErrors(b, "routed")
	ps, rs := plainAll.stats(nil), routedAll.stats(nil)
	for name, st := range map[string]stats{"plain": ps, "routed": rs} {
		if st.status[200] != st.n {
			b.Errorf("%s: statuses %v, want only 200", name, st.status)
		}
	}

	// Every beacon answered must reach the tenant's table once flushed.
	if err := dp.analytics.Close(b.Context()); err != nil {
		b.Fatal(err)
	}
	if rows, answered := p.countRows(b, "pageview", p.tenants[0]), warmed+rs.status[200]; rows != answered {
		b.Errorf("%d pageview rows written for %d beacons answered", rows, answered)
	}

	ps.report(b, "plain-")
	rs.report(b, "routed-")
	b.ReportMetric(rs.perSec/ps.perSec, "routed/plain")
	b.ReportMetric(float64(*loadClients), "clients")
	b.ReportMetric(0, "ns/op") // one iteration is a whole load phase: meaningless
}
