package bench

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/tenant/shop"
)

// BenchmarkCatalog compares the catalogue reads (GET /order/products and
// GET /order/product/<id>) through the whole data plane, served from the
// shop's in-memory catalogue with its version check, with a bare Fiber
// handler answering the very same bytes, under the same closed-loop load
// over loopback. It reports each side's req/s and latency and the
// routed/plain throughput ratio per endpoint.
//
//	go test ./bench -run '^$' -bench Catalog -benchtime 1x
func BenchmarkCatalog(b *testing.B) {
	p := newPlatform(b, 1)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	key := csrf.BundleKey(secrets.NewCache(p.store, 0, log), 0)
	shopApp := shop.New(shop.Options{Key: shop.KeyFunc(key), Log: log})
	dp := newDataPlane(b, p, planeOptions{Budget: 50, MaxConns: 4, Apps: []server.App{shopPools{shopApp}}})
	host := p.host(0)

	endpoints := []string{"/order/products", "/order/product/bSusp6dBHm"}
	bodies := map[string][]byte{}
	for _, path := range endpoints {
		req, _ := http.NewRequest(http.MethodGet, "http://"+dp.addr+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) < 100 {
			b.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		bodies[path] = body
	}
	plain := fiber.New(fiber.Config{DisableStartupMessage: true})
	for path, body := range bodies {
		plain.Get(path, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(body)
		})
	}
	plainAddr := listen(b, plain)

	for _, path := range endpoints {
		next := func(_ *rand.Rand, req *fasthttp.Request) int {
			req.Header.SetMethod(fasthttp.MethodGet)
			req.SetRequestURI(path)
			req.Header.SetHost(host)
			req.Header.Set("Origin", frontendOrigin)
			return 0
		}
		runLoad(plainAddr, *loadClients, 300*time.Millisecond, *loadMax, next)
		runLoad(dp.addr, *loadClients, 300*time.Millisecond, *loadMax, next)
		var plainAll, routedAll loadResult
		for range b.N {
			for _, side := range []struct {
				addr string
				into *loadResult
			}{{plainAddr, &plainAll}, {dp.addr, &routedAll}} {
				r := runLoad(side.addr, *loadClients, *loadDuration, *loadMax, next)
				side.into.samples = append(side.into.samples, r.samples...)
				side.into.elapsed += r.elapsed
				side.into.errs = append(side.into.errs, r.errs...)
			}
		}
		plainAll.checkErrors(b, "plain "+path)
		routedAll.checkErrors(b, "routed "+path)
		ps, rs := plainAll.stats(nil), routedAll.stats(nil)
		if rs.status[200] != rs.n || ps.status[200] != ps.n {
			b.Errorf("%s: statuses routed %v plain %v, want only 200", path, rs.status, ps.status)
		}
		name := "products-"
		if path != endpoints[0] {
			name = "product-"
		}
		ps.report(b, name+"plain-")
		rs.report(b, name+"routed-")
		b.ReportMetric(rs.perSec/ps.perSec, name+"routed/plain")
	}
	b.ReportMetric(0, "ns/op")
}

// shopPools gives the shop the data plane's pools once they exist: the
// benchmark's data plane builds them after its apps are listed.
type shopPools struct{ app *shop.App }

func (s shopPools) Mount(r fiber.Router) { s.app.Mount(r) }
