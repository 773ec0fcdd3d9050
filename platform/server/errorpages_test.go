package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/server"
)

// pages is a test app with pages of its own that answers their failures
// with HTML (server.ErrorPages), and one page whose error page breaks.
type pages struct{}

func (pages) Mount(r fiber.Router) {
	r.Get("/page/refused", func(c *fiber.Ctx) error { return server.Fail(c, http.StatusForbidden, "refused", "secret reason") })
	r.Get("/page/panic", func(c *fiber.Ctx) error { panic("secret detail") })
	r.Get("/page/broken", func(c *fiber.Ctx) error { panic("secret detail") })
	r.Get("/page/html", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.Status(http.StatusNotFound).SendString("<p>its own 404</p>")
	})
}

func (pages) ErrorPage(c *fiber.Ctx, status int) bool {
	if !strings.HasPrefix(c.Path(), "/page/") {
		return false
	}
	if c.Path() == "/page/broken" {
		panic("the error page fails too")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Status(status)
	_ = c.SendString("<p>page for " + http.StatusText(status) + "</p>")
	return true
}

// The platform's JSON error on an app's pages is replaced by its page,
// status kept; elsewhere, and when the page itself fails, the JSON stays.
func TestErrorPages(t *testing.T) {
	t.Parallel()
	base := serve(t, newFixture(t).with(server.Options{Apps: []server.App{probe{}, pages{}}}))
	get := func(path string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Host = "shop.acme.test"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	for _, tc := range []struct {
		path, ct, body string
		status         int
	}{
		{"/page/refused", "text/html", "<p>page for Forbidden</p>", 403},
		{"/page/panic", "text/html", "<p>page for Internal Server Error</p>", 500},
		{"/page/html", "text/html", "<p>its own 404</p>", 404},
		{"/page/broken", "application/json", `{"error":"server-error","detail":"internal server error"}`, 500},
		{"/panic", "application/json", `{"error":"server-error","detail":"internal server error"}`, 500},
		{"/forbidden", "application/json", `{"error":"forbidden","detail":"no"}`, 403},
	} {
		status, ct, body := get(tc.path)
		if status != tc.status || !strings.HasPrefix(ct, tc.ct) || body != tc.body {
			t.Errorf("GET %s = %d %s %q, want %d %s %q", tc.path, status, ct, body, tc.status, tc.ct, tc.body)
		}
	}
}
