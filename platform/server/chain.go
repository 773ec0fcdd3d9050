package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/startupwebapp/platform/platform/directory"
)

// panicError carries a recovered panic, with the stack where it happened,
// to the error handler (which logs both and answers a bare 500).
type panicError struct {
	value any
	stack string
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// idSource makes request ids: a random per-process prefix and a counter,
// unique across replicas without a random read per request.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &idSource{prefix: hex.EncodeToString(b) + "-"}
}

func (s *idSource) next() string {
	return s.prefix + strconv.FormatUint(s.n.Add(1), 36)
}

// validRequestID accepts a proxy's X-Request-ID only when it is short and
// plain, so it cannot forge log records.
func validRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// frame is the outermost middleware: request id, security headers, panic
// recovery, error responses, the access log, the metrics and the usage
// count.
func (s *server) frame(c *fiber.Ctx) error {
	start := time.Now()
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	st := &state{s: s, peer: peer.Unmap()}
	st.trusted = s.trusted.Trusts(st.peer)
	if st.trusted {
		if id := c.Request().Header.Peek(fiber.HeaderXRequestID); validRequestID(id) {
			st.requestID = string(id)
		}
	}
	if st.requestID == "" {
		st.requestID = s.ids.next()
	}
	st.https = c.Context().IsTLS() || (st.trusted && c.Protocol() == "https")
	c.Locals(stateKey{}, st)
	ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout(c.Path()))
	defer cancel()
	c.SetUserContext(ctx)

	h := &c.Response().Header
	h.Set(fiber.HeaderXRequestID, st.requestID)
	h.Set(fiber.HeaderVary, fiber.HeaderOrigin)
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderXFrameOptions, "DENY")
	h.Set(fiber.HeaderReferrerPolicy, "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if st.https {
		h.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000; includeSubDomains; preload")
	}

	if err := s.next(c); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("writing error response", "request_id", st.requestID, "err", herr)
			c.Status(http.StatusInternalServerError)
		}
	}
	if st.failed && len(s.pages) > 0 {
		s.offerPage(c)
	}

	status := c.Response().StatusCode()
	route := "unmatched"
	if st.route != "" {
		route = st.route
	} else if r := c.Route(); r != nil && !s.middlewareRoutes[r] {
		route = r.Path
	}
	slug := ""
	if st.tenant != nil {
		slug = st.tenant.Slug
		s.usage.Request(st.tenant.ID)
	}
	elapsed := time.Since(start)
	s.metrics.observe(slug != "", route, status, elapsed)
	s.log.LogAttrs(c.UserContext(), slog.LevelInfo, "request",
		slog.String("request_id", st.requestID),
		slog.String("tenant", slug),
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes", len(c.Response().Body())),
	)
	return nil
}

// offerPage lets the ErrorPages apps answer a request that ended in the
// platform's JSON error (still JSON: an app may have answered with a page
// already) with a page instead.
func (s *server) offerPage(c *fiber.Ctx) {
	resp := c.Response()
	if !bytes.HasPrefix(resp.Header.ContentType(), []byte(fiber.MIMEApplicationJSON)) {
		return
	}
	status := resp.StatusCode()
	body := bytes.Clone(resp.Body())
	defer func() {
		// A page that panics leaves the JSON error as it was.
		if r := recover(); r != nil {
			s.log.Error("error page failed", "request_id", RequestID(c), "err", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.Status(status)
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			resp.SetBody(body)
		}
	}()
	for _, p := range s.pages {
		if p.ErrorPage(c, status) {
			return
		}
	}
}

// next runs the rest of the chain, turning a panic into an error.
func (s *server) next(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: string(debug.Stack())}
		}
	}()
	return c.Next()
}

// resolve finds the request's tenant and applies its CORS policy; it
// answers preflights itself, before routing, sessions and CSRF.
func (s *server) resolve(c *fiber.Ctx) error {
	st := stateOf(c)
	host := c.Request().Host()
	if st.trusted {
		if fwd := c.Request().Header.Peek(fiber.HeaderXForwardedHost); len(fwd) > 0 {
			if i := bytes.IndexByte(fwd, ','); i >= 0 {
				fwd = fwd[:i]
			}
			host = bytes.TrimSpace(fwd)
		}
	}
	t, res := s.dir.Lookup(utils.UnsafeString(host))
	switch res {
	case directory.Found:
	case directory.Suspended:
		return Fail(c, http.StatusServiceUnavailable, "tenant-suspended", "this site is temporarily unavailable")
	default:
		return Fail(c, http.StatusNotFound, "not-found", "no site is served at this address")
	}
	st.tenant = t

	origin := c.Request().Header.Peek(fiber.HeaderOrigin)
	allowed := len(origin) > 0 && t.AllowsOrigin(utils.UnsafeString(origin))
	h := &c.Response().Header
	if allowed {
		h.SetBytesV(fiber.HeaderAccessControlAllowOrigin, origin)
		h.Set(fiber.HeaderAccessControlAllowCredentials, "true")
	}
	if c.Method() == fiber.MethodOptions && len(c.Request().Header.Peek(fiber.HeaderAccessControlRequestMethod)) > 0 {
		if allowed {
			h.Set(fiber.HeaderAccessControlAllowHeaders, "accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with")
			h.Set(fiber.HeaderAccessControlAllowMethods, "DELETE, GET, OPTIONS, PATCH, POST, PUT")
			h.Set(fiber.HeaderAccessControlMaxAge, "86400")
		}
		c.Status(http.StatusOK)
		c.Response().ResetBody()
		h.SetContentLength(0)
		return nil
	}
	if t.WritesPaused && !readOnly(c.Method()) {
		return FailMoving(c)
	}
	return c.Next()
}

// readOnly reports whether a request of method changes nothing, and so is
// served while a tenant's writes are paused.
func readOnly(method string) bool {
	return method == fiber.MethodGet || method == fiber.MethodHead || method == fiber.MethodOptions
}

// MovingRetryAfter is the Retry-After, in seconds, of a request refused
// because the tenant's database is switching to another server.
const MovingRetryAfter = 2

// FailMoving answers a request that would write while the tenant's writes
// are paused for a move: 503 with Retry-After.
func FailMoving(c *fiber.Ctx) error {
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(MovingRetryAfter))
	return Fail(c, http.StatusServiceUnavailable, "tenant-moving", "this site is moving to another server and takes no changes for a few seconds; retry shortly")
}
