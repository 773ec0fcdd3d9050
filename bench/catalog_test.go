package bench

import (
	"io"
	"log/slog"
	"testing"

	"github.com/gofiber/fiber/v2"

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

	compareGets(b, dp.addr, host, "", []getRoute{
		{"products", "/order/products"},
		{"product", "/order/product/bSusp6dBHm"},
	})
}

// shopPools gives the shop the data plane's pools once they exist: the
// benchmark's data plane builds them after its apps are listed.
type shopPools struct{ app *shop.App }

func (s shopPools) Mount(r fiber.Router) { s.app.Mount(r) }
