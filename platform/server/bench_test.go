package server_test

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/server"
)

type small struct{}

func (small) Mount(r fiber.Router) {
	r.Get("/user/logged-in", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"user_id": nil, "user-api-version": "0.0.1"})
	})
}

// serveInMemory runs a request through h without a network, the way the
// fasthttp server would after parsing it.
func serveInMemory(b *testing.B, h fasthttp.RequestHandler, host, origin string) {
	b.Helper()
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI("/user/logged-in")
	req.Header.SetHost(host)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	addr := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000}
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Init(&req, addr, nil)
		h(&ctx)
		if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) == 0 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkHandler measures what the data-plane chain (request id, access
// log, metrics, security headers, tenant lookup, CORS) adds to a handler
// returning a small JSON, against the same handler on a bare Fiber app.
func BenchmarkHandler(b *testing.B) {
	f := newFixture(b)
	routed := server.New(server.Options{
		Directory: f.dir,
		Log:       slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics:   prometheus.NewRegistry(),
		Apps:      []server.App{small{}},
	})
	plain := fiber.New(fiber.Config{DisableStartupMessage: true})
	small{}.Mount(plain)

	b.Run("plain", func(b *testing.B) { serveInMemory(b, plain.Handler(), "shop.acme.test", "") })
	b.Run("routed", func(b *testing.B) { serveInMemory(b, routed.Handler(), "shop.acme.test", "") })
	b.Run("routed_cors", func(b *testing.B) {
		serveInMemory(b, routed.Handler(), "shop.acme.test", "https://www.acme.test")
	})
}
