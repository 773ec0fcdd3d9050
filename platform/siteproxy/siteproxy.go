// Package siteproxy lets the data plane answer the platform's own hosts
// (www.{SWA_BASE_DOMAIN}, {SWA_BASE_DOMAIN}: the landing page, sign-up,
// founder sign-in, the billing webhook) by forwarding their requests to
// the control plane, where the platform site (controlplane/signup) runs.
//
// The site stays in the control plane because it writes the registry,
// which only the control plane may; the data plane stays the one edge that
// holds the certificates and takes every hostname on one load balancer.
// Hosts is the one host match of both: the site uses it to pick its
// requests, the data plane to forward them.
//
// A forwarded request keeps its Host, method, path and body byte for byte
// (Stripe signs the raw body); it gains X-Forwarded-For (the client's
// address appended, as server.Proxies.ClientAddr reads it from the right)
// and X-Forwarded-Proto, and loses its hop-by-hop headers. The answer,
// Set-Cookie and Location included, comes back unchanged but for its own
// hop-by-hop headers. A control plane that cannot be reached, or does not
// answer by the request deadline, gives 503 with Retry-After and a short
// page.
package siteproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/server"
)

// Hosts is a set of hostnames matched without port or case.
type Hosts map[string]bool

// NewHosts returns the set of hosts (hostnames without port).
func NewHosts(hosts []string) Hosts {
	h := Hosts{}
	for _, name := range hosts {
		h[strings.TrimSuffix(strings.ToLower(name), ".")] = true
	}
	return h
}

// Match reports whether host, as a Host header has it (with or without a
// port, any case, with or without the root's trailing dot), is in the set.
func (h Hosts) Match(host string) bool {
	name := strings.ToLower(host)
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i:], "]") {
		name = name[:i]
	}
	return h[strings.TrimSuffix(name, ".")]
}

// Options configures New.
type Options struct {
	// Target is the control plane's base URL, http:// or https://, no path.
	Target string
	// Hosts are the platform hosts; requests for other hosts are not
	// forwarded.
	Hosts []string
	// Timeout is the deadline of a forwarded request, the data plane's
	// request timeout (default server.DefaultRequestTimeout).
	Timeout time.Duration
	// TrustedProxies are the data plane's own trusted proxies: their
	// X-Forwarded-For and X-Forwarded-Proto are passed on; anybody else's
	// are replaced.
	TrustedProxies []string
	// MaxConns bounds the connections to the control plane (default 256);
	// idle ones are kept for reuse.
	MaxConns int
	// MaxResponseBodySize bounds an answer (default 4 MiB); the request
	// bodies are bounded by the data plane's listener before they get here.
	MaxResponseBodySize int
	// Metrics receives swa_platform_site_forward_total{outcome}; nil: none.
	Metrics prometheus.Registerer
	Log     *slog.Logger
}

// Proxy forwards the platform hosts' requests to the control plane.
type Proxy struct {
	hosts   Hosts
	client  *fasthttp.HostClient
	timeout time.Duration
	trusted server.Proxies
	log     *slog.Logger
	count   *prometheus.CounterVec
}

// Outcomes of a forwarded request, the values of the metric's label.
const (
	outcomeOK          = "ok"
	outcomeUnreachable = "unreachable"
	outcomeTimeout     = "timeout"
)

// New returns a Proxy to o.Target.
func New(o Options) (*Proxy, error) {
	u, err := url.Parse(o.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("siteproxy: target %q: want an http:// or https:// base URL", o.Target)
	}
	if len(o.Hosts) == 0 {
		return nil, errors.New("siteproxy: no platform hosts")
	}
	trusted, err := server.ParseProxies(o.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("siteproxy: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = server.DefaultRequestTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 256
	}
	if o.MaxResponseBodySize <= 0 {
		o.MaxResponseBodySize = 4 << 20
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	addr := u.Host
	if u.Port() == "" {
		addr += map[string]string{"http": ":80", "https": ":443"}[u.Scheme]
	}
	p := &Proxy{
		hosts: NewHosts(o.Hosts),
		client: &fasthttp.HostClient{
			Addr:  addr,
			IsTLS: u.Scheme == "https",
			// The client's own User-Agent, or none.
			NoDefaultUserAgentHeader: true,
			// The path as the client sent it: the site routes it.
			DisablePathNormalizing: true,
			MaxConns:               o.MaxConns,
			MaxConnWaitTimeout:     o.Timeout,
			// Under the control plane's idle timeout (30s), so a kept
			// connection is not one it is closing.
			MaxIdleConnDuration: 10 * time.Second,
			ReadTimeout:         o.Timeout,
			WriteTimeout:        o.Timeout,
			MaxResponseBodySize: o.MaxResponseBodySize,
			// fasthttp's own error logs leave out request contents. Only
			// requests that change nothing are tried again on a kept
			// connection the control plane had closed (the default RetryIf).
			SecureErrorLogMessage: true,
		},
		timeout: o.Timeout,
		trusted: trusted,
		log:     o.Log,
	}
	if o.Metrics != nil {
		p.count = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swa_platform_site_forward_total",
			Help: "Requests for the platform hosts forwarded to the control plane, by outcome (ok, unreachable, timeout).",
		}, []string{"outcome"})
		if err := o.Metrics.Register(p.count); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("siteproxy: metrics: %w", err)
			}
			p.count = are.ExistingCollector.(*prometheus.CounterVec)
		}
		for _, o := range []string{outcomeOK, outcomeUnreachable, outcomeTimeout} {
			p.count.WithLabelValues(o)
		}
	}
	return p, nil
}

// Front returns a handler that forwards the platform hosts' requests and
// gives every other request to next.
func (p *Proxy) Front(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if p.hosts.Match(string(ctx.Host())) {
			p.forward(ctx)
			return
		}
		next(ctx)
	}
}

// Close drops the idle connections to the control plane.
func (p *Proxy) Close() { p.client.CloseIdleConnections() }

// hopHeaders are the hop-by-hop headers (RFC 9110 7.6.1), never forwarded.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func (p *Proxy) forward(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	ctx.Request.Header.CopyTo(&req.Header)
	req.SetBodyRaw(ctx.Request.Body())
	// The Host as it was matched, port included: the site picks by it.
	req.UseHostHeader = true
	req.Header.SetHostBytes(ctx.Host())
	req.Header.SetRequestURIBytes(ctx.Request.Header.RequestURI())
	req.URI().DisablePathNormalizing = true
	dropHop(req.Header.Peek, req.Header.Del)
	req.Header.ResetConnectionClose()
	// The site routes on Host alone; a client's X-Forwarded-Host would only
	// mislead it.
	req.Header.Del(fasthttp.HeaderXForwardedHost)

	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	peer = peer.Unmap()
	trusted := p.trusted.Trusts(peer)
	xff := peer.String()
	proto := "http"
	if ctx.IsTLS() {
		proto = "https"
	}
	if trusted {
		// A trusted proxy's hops stay; the control plane reads them from the
		// right as the data plane does.
		if prior := bytes.TrimSpace(ctx.Request.Header.Peek(fasthttp.HeaderXForwardedFor)); len(prior) > 0 {
			xff = string(prior) + ", " + xff
		}
		if bytes.EqualFold(ctx.Request.Header.Peek(fasthttp.HeaderXForwardedProto), []byte("https")) {
			proto = "https"
		}
	}
	req.Header.Set(fasthttp.HeaderXForwardedFor, xff)
	req.Header.Set(fasthttp.HeaderXForwardedProto, proto)

	err := p.client.DoDeadline(req, resp, start.Add(p.timeout))
	if err != nil {
		outcome := outcomeUnreachable
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
			outcome = outcomeTimeout
		}
		p.counted(outcome)
		// The path without its query, which may hold a token.
		p.log.Warn("platform site unreachable", "outcome", outcome, "method", string(ctx.Method()),
			"host", string(ctx.Host()), "path", string(ctx.Path()), "duration_ms", time.Since(start).Milliseconds(), "err", err.Error())
		unavailable(ctx)
		p.logged(ctx, start)
		return
	}
	p.counted(outcomeOK)
	// The answer as the site gave it: status, headers, cookies, body.
	resp.CopyTo(&ctx.Response)
	h := &ctx.Response.Header
	dropHop(h.Peek, h.Del)
	h.ResetConnectionClose()
	p.logged(ctx, start)
}

// Route is the route a forwarded request has in the access log.
const Route = "platform_site"

// logged writes the forwarded request's access-log record, with the keys
// of the data plane's own (server: "request"), its route Route and its id
// the one the control plane answered with (X-Request-ID), so the two
// planes' records of one request can be matched. Like the data plane's,
// it holds no query, header or body.
func (p *Proxy) logged(ctx *fasthttp.RequestCtx, start time.Time) {
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("request_id", string(ctx.Response.Header.Peek("X-Request-ID"))),
		slog.String("tenant", ""),
		slog.String("host", string(ctx.Host())),
		slog.String("method", string(ctx.Method())),
		slog.String("route", Route),
		slog.Int("status", ctx.Response.StatusCode()),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.Int("bytes", len(ctx.Response.Body())),
	)
}

func (p *Proxy) counted(outcome string) {
	if p.count != nil {
		p.count.WithLabelValues(outcome).Inc()
	}
}

// dropHop deletes the hop-by-hop headers and those the Connection header
// names.
func dropHop(peek func(string) []byte, del func(string)) {
	for _, name := range bytes.Split(peek(fasthttp.HeaderConnection), []byte(",")) {
		if name = bytes.TrimSpace(name); len(name) > 0 {
			del(string(name))
		}
	}
	for _, name := range hopHeaders {
		del(name)
	}
}

// RetryAfter is the Retry-After, in seconds, of the 503 answered when the
// control plane cannot be reached.
const RetryAfter = "30"

const unavailablePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Temporarily unavailable</title></head>
<body><h1>Temporarily unavailable</h1>
<p>This page cannot be shown right now. Please try again in a minute.</p></body></html>
`

// unavailable answers 503 with a short page of its own (the data plane's
// error pages are a tenant's, branded with its shop).
func unavailable(ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	ctx.SetStatusCode(http.StatusServiceUnavailable)
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderRetryAfter, RetryAfter)
	h.SetContentType("text/html; charset=utf-8")
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	ctx.SetBodyString(unavailablePage)
}
