package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/server"
)

// upload is a test app with one route that takes large bodies.
type upload struct{}

func (upload) Mount(r fiber.Router) {
	r.Post("/upload", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"bytes": len(c.Body())}) })
}

// rawPost writes a POST of body (its head only when headOnly: the server
// must refuse on the Content-Length, and a client still writing a body it
// refuses would see the connection reset before the answer) and reads the
// answer.
func rawPost(t *testing.T, base, path string, body []byte, headOnly, chunked bool) (int, map[string]any) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: shop.acme.test\r\nContent-Type: application/octet-stream\r\n", path)
	switch {
	case chunked:
		fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	case headOnly:
		fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", len(body))
	default:
		fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(body), body)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %d, body not JSON: %q", path, res.StatusCode, raw)
	}
	return res.StatusCode, out
}

// Every path takes DefaultBodyLimit; the paths of RouteBodyLimits their
// own, as the router spells them. Over the limit is 413 in the platform's
// error shape, naming the limit.
func TestRouteBodyLimits(t *testing.T) {
	t.Parallel()
	base := serve(t, newFixture(t).with(server.Options{
		RouteBodyLimits: map[string]int{"/upload": 256 << 10},
		Apps:            []server.App{probe{}, upload{}},
	}))
	kib := func(n int) []byte { return []byte(strings.Repeat("x", n<<10)) }
	for _, tc := range []struct {
		name      string
		path      string
		body      []byte
		headOnly  bool
		chunked   bool
		status    int
		limitText string
	}{
		{"small body on an API path", "/items", kib(63), false, false, 200, ""},
		{"at the default limit", "/items", kib(64), false, false, 200, ""},
		{"over the default limit", "/items", kib(65), true, false, 413, "64 KiB"},
		{"chunked over the default limit", "/items", kib(80), false, true, 413, "64 KiB"},
		{"large body on the upload path", "/upload", kib(200), false, false, 200, ""},
		{"with a query", "/upload?kind=prospects", kib(200), false, false, 200, ""},
		{"over the upload limit", "/upload", kib(300), true, false, 413, "256 KiB"},
		{"an escaped spelling of the upload path", "/%75pload", kib(200), true, false, 413, "64 KiB"},
		{"a trailing slash", "/upload/", kib(200), true, false, 413, "64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := rawPost(t, base, tc.path, tc.body, tc.headOnly, tc.chunked)
			if status != tc.status {
				t.Fatalf("status %d %v, want %d", status, out, tc.status)
			}
			if tc.status == 413 {
				detail, _ := out["detail"].(string)
				if out["error"] != "payload-too-large" || !strings.Contains(detail, tc.limitText) {
					t.Fatalf("body %v, want payload-too-large naming %s", out, tc.limitText)
				}
			}
		})
	}
}
