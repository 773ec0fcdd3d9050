package bench

import (
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// getRoute is one GET measured through the data plane and on a bare Fiber
// handler answering the very same bytes.
type getRoute struct {
	name string // metric prefix: "<name>-plain-req/s", "<name>-routed/plain"…
	path string
}

// fetchGet sends one GET to the data plane as the benchmark's visitor (its
// Cookie header, "" for none) and returns the body, failing on anything
// but a 200 with a body.
func fetchGet(b *testing.B, addr, host, cookie, path string) []byte {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = host
	req.Header.Set("Origin", frontendOrigin)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) == 0 {
		b.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

// compareGets answers each route's current body (read once through the
// data plane) from a bare Fiber app, then loads the two servers in turn
// per route, warmed first, and reports each side's req/s and latency and
// the routed/plain throughput ratio. Every request carries cookie.
func compareGets(b *testing.B, routedAddr, host, cookie string, routes []getRoute) {
	b.Helper()
	plain := fiber.New(fiber.Config{DisableStartupMessage: true})
	for _, rt := range routes {
		body := fetchGet(b, routedAddr, host, cookie, rt.path)
		plain.Get(rt.path, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(body)
		})
	}
	plainAddr := listen(b, plain)

	for _, rt := range routes {
		next := func(_ *rand.Rand, req *fasthttp.Request) int {
			req.Header.SetMethod(fasthttp.MethodGet)
			req.SetRequestURI(rt.path)
			req.Header.SetHost(host)
			req.Header.Set("Origin", frontendOrigin)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			return 0
		}
		runLoad(plainAddr, *loadClients, 300*time.Millisecond, *loadMax, next)
		runLoad(routedAddr, *loadClients, 300*time.Millisecond, *loadMax, next)
		var plainAll, routedAll loadResult
		for range b.N {
			// Alternate the sides so neither gets a systematically warmer
			// (or hotter) machine.
			for _, side := range []struct {
				addr string
				into *loadResult
			}{{plainAddr, &plainAll}, {routedAddr, &routedAll}} {
				r := runLoad(side.addr, *loadClients, *loadDuration, *loadMax, next)
				side.into.samples = append(side.into.samples, r.samples...)
				side.into.elapsed += r.elapsed
				side.into.errs = append(side.into.errs, r.errs...)
			}
		}
		plainAll.checkErrors(b, "plain "+rt.path)
		routedAll.checkErrors(b, "routed "+rt.path)
		ps, rs := plainAll.stats(nil), routedAll.stats(nil)
		if rs.status[200] != rs.n || ps.status[200] != ps.n {
			b.Errorf("%s: statuses routed %v plain %v, want only 200", rt.path, rs.status, ps.status)
		}
		ps.report(b, rt.name+"-plain-")
		rs.report(b, rt.name+"-routed-")
		b.ReportMetric(rs.perSec/ps.perSec, rt.name+"-routed/plain")
	}
	b.ReportMetric(float64(*loadClients), "clients")
	b.ReportMetric(0, "ns/op") // one iteration is a whole load phase: meaningless
}
