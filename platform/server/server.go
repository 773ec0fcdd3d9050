// Package server is the data plane's HTTP front: one Fiber app that gives
// every request an id, an access-log record, security headers, its tenant
// (from the Host header, or X-Forwarded-Host from a trusted proxy only) and
// CORS headers, then runs the session/CSRF middleware and the tenant
// application. It holds no business logic.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/usage"
)

// App is a tenant application mounted on the server's router.
type App interface{ Mount(r fiber.Router) }

// ErrorPages is an App that answers some failed requests with a page of
// its own instead of the platform's JSON error: the server offers it every
// request that ended in that error (a refused CSRF check, a panic, a 5xx),
// after the chain, and it takes those on its own page paths. ErrorPage
// writes the page and reports true, or leaves the response alone and
// reports false; it keeps status.
type ErrorPages interface {
	App
	ErrorPage(c *fiber.Ctx, status int) bool
}

// Options configures New.
type Options struct {
	Directory *directory.Directory
	// Pools is the tenant connection manager behind server.Conn.
	Pools *pools.Manager
	Log   *slog.Logger
	// Metrics receives the HTTP metrics; nil means not collected.
	Metrics prometheus.Registerer
	// TrustedProxies are IPs or CIDRs whose X-Forwarded-For, -Host, -Proto
	// and X-Request-ID headers are believed. Empty: nobody's.
	TrustedProxies []string
	// Env is dev or production (reserved for transport differences).
	Env string
	// Middleware runs after tenant resolution and CORS, before the apps
	// (sessions, CSRF, ...).
	Middleware []fiber.Handler
	Apps       []App
	// BodyLimit is the largest request body in bytes (default
	// DefaultBodyLimit) of every path RouteBodyLimits does not name.
	// RouteBodyLimits gives the few request paths that take larger bodies
	// (the back office's CSV uploads) a limit of their own. A body over its
	// limit is refused with 413 on its Content-Length, before it is read.
	BodyLimit       int
	RouteBodyLimits map[string]int
	// ReadTimeout, WriteTimeout and IdleTimeout bound a connection
	// (defaults 30s, 30s, 120s).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// RequestTimeout is the deadline of every request's context (default
	// 10s): the queries and outbound calls made with c.UserContext() end
	// there, and the request answers 503. RouteTimeouts gives a longer (or
	// shorter) deadline to the request paths named, for the few routes that
	// need one.
	RequestTimeout time.Duration
	RouteTimeouts  map[string]time.Duration
	// Usage counts every request answered for a resolved tenant
	// (platform/usage); nil counts nothing.
	Usage usage.Recorder
}

type server struct {
	dir           *directory.Directory
	pools         *pools.Manager
	log           *slog.Logger
	trusted       Proxies
	metrics       *metrics
	usage         usage.Recorder
	timeout       time.Duration
	routeTimeouts map[string]time.Duration
	ids           *idSource
	bodyLimit     int
	routeBodies   map[string]int
	pages         []ErrorPages
	// middlewareRoutes are the routes of Use handlers: when one of them is
	// the last route a request matched, no endpoint matched.
	middlewareRoutes map[*fiber.Route]bool
}

// middlewareRoutes finds the routes registered with Use. Fiber keeps that
// flag unexported, so it is read by reflection, once, at start-up.
func middlewareRoutes(app *fiber.App) map[*fiber.Route]bool {
	out := map[*fiber.Route]bool{}
	for _, routes := range app.Stack() {
		for _, r := range routes {
			// Should a Fiber upgrade drop the field, unmatched requests log
			// their middleware's path instead; the access-log test says so.
			if f := reflect.ValueOf(r).Elem().FieldByName("use"); f.IsValid() && f.Kind() == reflect.Bool && f.Bool() {
				out[r] = true
			}
		}
	}
	return out
}

// New returns the data-plane Fiber app. It panics on a malformed trusted
// proxy entry or a metric registration conflict: both are wiring bugs.
func New(o Options) *fiber.App {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = DefaultBodyLimit
	}
	trusted, err := ParseProxies(o.TrustedProxies)
	if err != nil {
		panic(fmt.Sprintf("server: %v", err))
	}
	s := &server{
		dir:           o.Directory,
		pools:         o.Pools,
		log:           o.Log,
		trusted:       trusted,
		metrics:       newMetrics(o.Metrics),
		usage:         usage.Or(o.Usage),
		ids:           newIDSource(),
		timeout:       durationOr(o.RequestTimeout, DefaultRequestTimeout),
		routeTimeouts: o.RouteTimeouts,
		bodyLimit:     o.BodyLimit,
		routeBodies:   o.RouteBodyLimits,
	}
	app := fiber.New(fiber.Config{
		StrictRouting:           true,
		CaseSensitive:           true,
		EnableTrustedProxyCheck: true,
		TrustedProxies:          o.TrustedProxies,
		ProxyHeader:             fiber.HeaderXForwardedFor,
		ErrorHandler:            s.handleError,
		BodyLimit:               s.largestBody(),
		ReadTimeout:             durationOr(o.ReadTimeout, 30*time.Second),
		WriteTimeout:            durationOr(o.WriteTimeout, max(30*time.Second, 2*s.longestTimeout())),
		IdleTimeout:             durationOr(o.IdleTimeout, 120*time.Second),
		DisableStartupMessage:   true,
		ReadBufferSize:          16 << 10, // room for long cookie headers
	})
	app.Server().HeaderReceived = s.requestConfig
	app.Use(s.frame, s.resolve)
	for _, m := range o.Middleware {
		app.Use(m)
	}
	for _, a := range o.Apps {
		a.Mount(app)
		if p, ok := a.(ErrorPages); ok {
			s.pages = append(s.pages, p)
		}
	}
	s.middlewareRoutes = middlewareRoutes(app)
	return app
}

// DefaultBodyLimit is the largest request body of a path when
// Options.BodyLimit is not set: room for any form or JSON call of the API.
const DefaultBodyLimit = 64 << 10

// largestBody is the largest body any request may have: the server's own
// limit, which requestConfig lowers per request.
func (s *server) largestBody() int {
	n := s.bodyLimit
	for _, l := range s.routeBodies {
		n = max(n, l)
	}
	return n
}

// bodyLimitOf is the body limit of a request path, as the router sees it
// (undecoded, so an escaped spelling of a large route gets the small limit
// and matches no route either).
func (s *server) bodyLimitOf(path []byte) int {
	if l, ok := s.routeBodies[string(path)]; ok && l > 0 {
		return l
	}
	return s.bodyLimit
}

// requestConfig gives a request its path's body limit as soon as its header
// is read: fasthttp then refuses a larger Content-Length (or a chunked
// body that grows past it) without reading it, and the error handler
// answers 413.
func (s *server) requestConfig(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if len(s.routeBodies) == 0 {
		return fasthttp.RequestConfig{MaxRequestBodySize: s.bodyLimit}
	}
	// Parsed as the router's path is, the absolute form too.
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	if err := uri.Parse(nil, h.RequestURI()); err != nil {
		return fasthttp.RequestConfig{MaxRequestBodySize: s.bodyLimit}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: s.bodyLimitOf(uri.PathOriginal())}
}

// DefaultRequestTimeout is the deadline of a request when
// Options.RequestTimeout is not set.
const DefaultRequestTimeout = 10 * time.Second

// longestTimeout is the longest deadline any request can get; the socket's
// write timeout must outlast it.
func (s *server) longestTimeout() time.Duration {
	d := s.timeout
	for _, rd := range s.routeTimeouts {
		d = max(d, rd)
	}
	return d
}

// requestTimeout is the deadline of a request to path.
func (s *server) requestTimeout(path string) time.Duration {
	if d, ok := s.routeTimeouts[path]; ok && d > 0 {
		return d
	}
	return s.timeout
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// stateKey keys the per-request state in the Fiber context.
type stateKey struct{}

// state is what the server learned about one request.
type state struct {
	s         *server
	requestID string
	tenant    *directory.Tenant
	https     bool
	peer      netip.Addr
	trusted   bool   // the peer is a trusted proxy
	clientIP  string // computed on first use
	failed    bool   // Fail wrote the response
	route     string // set by SetRoute
}

func stateOf(c *fiber.Ctx) *state {
	st, _ := c.Locals(stateKey{}).(*state)
	return st
}

// Tenant returns the request's tenant. Past tenant resolution (in
// Options.Middleware and apps) it is never nil.
func Tenant(c *fiber.Ctx) *directory.Tenant {
	if st := stateOf(c); st != nil {
		return st.tenant
	}
	return nil
}

// RequestID returns the request's id, also sent as X-Request-ID.
func RequestID(c *fiber.Ctx) string {
	if st := stateOf(c); st != nil {
		return st.requestID
	}
	return ""
}

// SetRoute names the request's route in its access-log record and
// metrics, for an app that answers from a Use handler, which has no route
// pattern of its own (the sites handler says "site"): such requests would
// otherwise count as unmatched. Keep names few: they are a metric label.
func SetRoute(c *fiber.Ctx, name string) {
	if st := stateOf(c); st != nil {
		st.route = name
	}
}

// IsHTTPS reports whether the client reached us over HTTPS: TLS on our
// listener, or X-Forwarded-Proto https from a trusted proxy.
func IsHTTPS(c *fiber.Ctx) bool {
	if st := stateOf(c); st != nil {
		return st.https
	}
	return c.Protocol() == "https"
}

// ClientIP returns the client's address: the TCP peer, or, when the peer
// is a trusted proxy, the nearest X-Forwarded-For hop that is not itself a
// trusted proxy (hops further left are client-supplied and ignored).
func ClientIP(c *fiber.Ctx) string {
	st := stateOf(c)
	if st == nil {
		return c.Context().RemoteIP().String()
	}
	if st.clientIP == "" {
		st.clientIP = st.s.clientIP(c, st)
	}
	return st.clientIP
}

func (s *server) clientIP(c *fiber.Ctx, st *state) string {
	if !st.trusted {
		return st.peer.String()
	}
	return s.trusted.ClientAddr(st.peer, c.Request().Header.Peek(fiber.HeaderXForwardedFor)).String()
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// errorBody is the platform's JSON error.
type errorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

// Fail writes the platform's JSON error {"error": code, "detail": message}
// with status, keeping the headers already set (CORS, security, request id).
func Fail(c *fiber.Ctx, status int, code, message string) error {
	if st := stateOf(c); st != nil {
		st.failed = true
	}
	c.Status(status)
	return c.JSON(errorBody{Error: code, Detail: message})
}

// Conn runs fn with a connection to the request tenant's database. When no
// connection can be had in time it answers 503 and returns nil, so a
// handler can `return server.Conn(c, func(...) error {...})`.
func Conn(c *fiber.Ctx, fn func(conn *pgxpool.Conn) error) error {
	st := stateOf(c)
	if st == nil || st.tenant == nil || st.s.pools == nil {
		return errors.New("server: Conn outside a tenant request")
	}
	err := st.s.pools.Do(c.UserContext(), st.tenant, fn)
	if errors.Is(err, pools.ErrBudgetExhausted) {
		return Fail(c, http.StatusServiceUnavailable, "service-unavailable", "temporarily overloaded, retry shortly")
	}
	return err
}

// TimedOut reports whether err ended the request because its deadline
// passed: the error is the context's own, or came while the request's
// context was already done (pgx and network errors do not always wrap it).
func TimedOut(c *fiber.Ctx, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return errors.Is(c.UserContext().Err(), context.DeadlineExceeded)
}

// Unreachable reports whether err says a dependency could not be reached
// or dropped the connection (a database restarting or cut off, a refused
// or reset socket), rather than that the request was wrong: the request
// may succeed when retried, so it answers 503, not 500.
func Unreachable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var opErr *net.OpError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		// Class 08 connection exceptions; class 53, insufficient
		// resources (53300: the server's or the role's connection slots
		// are all taken, a login refused when replicas x budget outgrow
		// max_connections); 57P01-57P03: the server is shutting down,
		// restarting or not yet accepting connections.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") ||
			pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	case errors.As(err, &connErr), errors.As(err, &opErr), errors.As(err, &netErr):
		return true
	}
	return errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// handleError turns an error from the chain into a contract-shaped
// response: JSON, never a stack trace or internal detail.
func (s *server) handleError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case http.StatusNotFound:
			return Fail(c, fe.Code, "not-found", "not found")
		case http.StatusMethodNotAllowed:
			return Fail(c, fe.Code, "method-not-allowed", "method not allowed")
		case http.StatusRequestEntityTooLarge:
			return Fail(c, fe.Code, "payload-too-large", "the request body is over the limit of "+
				sizeText(s.bodyLimitOf(c.Request().URI().PathOriginal()))+" for this address")
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return Fail(c, fe.Code, errorCode(fe.Code), http.StatusText(fe.Code))
		}
	}
	if errors.Is(err, pools.ErrBudgetExhausted) || errors.Is(err, pools.ErrNotServing) {
		return Fail(c, http.StatusServiceUnavailable, "service-unavailable", "temporarily unavailable, retry shortly")
	}
	// The database of a tenant being moved refuses writes (read-only
	// sessions) from the moment its last changes are copied: a replica that
	// has not yet seen the pause still answers as a paused one would.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "25006" /* read_only_sql_transaction */ {
		return FailMoving(c)
	}
	// A dependency call that hit its own, shorter bound (a session's 500 ms
	// in Redis) while the request still had time is an unavailable
	// dependency, not a request out of time.
	if errors.Is(err, context.DeadlineExceeded) && c.UserContext().Err() == nil {
		s.log.Warn("dependency did not answer in time", "request_id", RequestID(c), "tenant", tenantSlug(c), "method", c.Method(), "path", c.Path(), "err", err.Error())
		return Fail(c, http.StatusServiceUnavailable, "service-unavailable", "temporarily unavailable, retry shortly")
	}
	if TimedOut(c, err) {
		s.log.Warn("request deadline passed", "request_id", RequestID(c), "tenant", tenantSlug(c), "method", c.Method(), "path", c.Path(), "err", err.Error())
		return Fail(c, http.StatusServiceUnavailable, "request-timeout", "the request took too long; retry shortly")
	}
	if Unreachable(err) {
		s.log.Warn("dependency unreachable", "request_id", RequestID(c), "tenant", tenantSlug(c), "method", c.Method(), "path", c.Path(), "err", err.Error())
		return Fail(c, http.StatusServiceUnavailable, "service-unavailable", "temporarily unavailable, retry shortly")
	}
	attrs := []any{"request_id", RequestID(c), "tenant", tenantSlug(c), "method", c.Method(), "path", c.Path(), "err", err.Error()}
	var p *panicError
	if errors.As(err, &p) {
		attrs = append(attrs, "stack", p.stack)
	}
	s.log.Error("request failed", attrs...)
	return Fail(c, http.StatusInternalServerError, "server-error", "internal server error")
}

// sizeText writes a byte count as people read it: 64 KiB, 5 MiB.
func sizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func errorCode(status int) string {
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "-")
}

func tenantSlug(c *fiber.Ctx) string {
	if t := Tenant(c); t != nil {
		return t.Slug
	}
	return ""
}
