// Package ratelimit counts requests per tenant, limit name and key in Redis
// fixed windows (docs/api.md §1.9; docs/differences.md Q12, Q28).
//
// Every counted request increments its window's counter before the handler
// runs, rejected ones included; a request is rejected (403 rate_limited, the
// status the client also gets for CSRF) when the count exceeds the limit, so
// the 11th login of a 10/h window fails. Counters live in Redis, so limits hold
// across replicas. When Redis does not answer within Options.Timeout the
// request passes (fail open) and a warning is logged, at most every 10 s.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/platform/server"
)

// Rate is a limit of N requests per Window. The zero Rate means "off".
type Rate struct {
	N      int
	Window time.Duration
}

// Off reports whether the rate never rejects.
func (r Rate) Off() bool { return r.N <= 0 || r.Window <= 0 }

func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Window)
}

// ParseRate parses "N/period" with period s, m, h or d (an optional count
// before the unit is allowed: "100/2h"), or "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "off" {
		return Rate{}, nil
	}
	ns, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/period or off", s)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 1 {
		return Rate{}, fmt.Errorf("rate %q: bad count", s)
	}
	if per == "" {
		return Rate{}, fmt.Errorf("rate %q: missing period", s)
	}
	var unit time.Duration
	switch per[len(per)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	default:
		return Rate{}, fmt.Errorf("rate %q: period unit must be s, m, h or d", s)
	}
	mult := 1
	if num := per[:len(per)-1]; num != "" {
		if mult, err = strconv.Atoi(num); err != nil || mult < 1 {
			return Rate{}, fmt.Errorf("rate %q: bad period", s)
		}
	}
	return Rate{N: n, Window: time.Duration(mult) * unit}, nil
}

// Defaults are the platform's limits by name; a tenant's
// Settings.RateLimits entries override them.
func Defaults() map[string]Rate {
	return map[string]Rate{
		"login":          {N: 10, Window: time.Hour},
		"create_account": {N: 5, Window: time.Hour},
		"reset_password": {N: 5, Window: time.Hour},
		"chat":           {N: 20, Window: time.Hour},
		"notify_me":      {N: 10, Window: time.Hour},
	}
}

// KeyFunc extracts what a limit counts by (an IP, a username).
type KeyFunc func(c *fiber.Ctx) string

// ByClientIP counts by the real client IP (server.ClientIP).
func ByClientIP(c *fiber.Ctx) string { return server.ClientIP(c) }

// ByFormValue counts by a posted form field; a missing or empty value is one
// shared bucket "", as upstream.
func ByFormValue(field string) KeyFunc {
	return func(c *fiber.Ctx) string { return c.FormValue(field) }
}

// Options configures a Limiter.
type Options struct {
	Redis redis.UniversalClient
	// Prefix starts every key; the tenant id follows it.
	Prefix string
	// Defaults replaces Defaults() when non-nil.
	Defaults map[string]Rate
	// Disabled turns every limit off (SWA_RATE_LIMITS=off).
	Disabled bool
	// Timeout bounds the Redis round trip before failing open (default
	// 200ms): long enough that a busy replica's own delays (scheduling, GC)
	// never open the limits, which an attacker could otherwise buy by
	// loading it; short enough that a silent Redis costs a request little.
	Timeout time.Duration
	Log     *slog.Logger
	// Metrics, when set, receives swa_ratelimit_* counters.
	Metrics prometheus.Registerer
}

// Limiter hands out per-route rate-limit handlers.
type Limiter struct {
	rdb      redis.UniversalClient
	prefix   string
	defaults map[string]Rate
	disabled bool
	timeout  time.Duration
	log      *slog.Logger

	lastWarn atomic.Int64 // unix nanos of the last fail-open warning

	rejected *prometheus.CounterVec
	failOpen prometheus.Counter
}

// New returns a Limiter. With opts.Disabled it logs a warning: nothing is limited.
func New(opts Options) *Limiter {
	l := &Limiter{rdb: opts.Redis, prefix: opts.Prefix, defaults: opts.Defaults, disabled: opts.Disabled,
		timeout: opts.Timeout, log: opts.Log}
	if l.defaults == nil {
		l.defaults = Defaults()
	}
	if l.timeout <= 0 {
		l.timeout = 200 * time.Millisecond
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.disabled {
		l.log.Warn("RATE LIMITS ARE DISABLED (SWA_RATE_LIMITS=off): login, account creation and password reset are not throttled")
	}
	l.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swa_ratelimit_rejected_total",
		Help: "Requests rejected by a rate limit, by limit (no tenant label: a thousand tenants would make a thousand series).",
	}, []string{"limit"})
	l.failOpen = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "swa_ratelimit_fail_open_total",
		Help: "Requests let through because the rate-limit store did not answer.",
	})
	if opts.Metrics != nil {
		l.rejected = register(opts.Metrics, l.rejected)
		l.failOpen = register(opts.Metrics, l.failOpen)
	}
	return l
}

// register registers c, or returns the collector already registered under
// the same description (several limiters in one process share it).
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// Rate returns the rate in force for name on a tenant with the given
// overrides. An unparsable override keeps the default.
func (l *Limiter) Rate(name string, overrides map[string]string) Rate {
	if l.disabled {
		return Rate{}
	}
	if s, ok := overrides[name]; ok {
		if r, err := ParseRate(s); err == nil {
			return r
		}
	}
	return l.defaults[name]
}

// Handler returns middleware counting unsafe requests (GET, HEAD and OPTIONS
// are never counted) under limit name, keyed by key.
func (l *Limiter) Handler(name string, key KeyFunc) fiber.Handler {
	return func(c *fiber.Ctx) error {
		switch c.Method() {
		case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
			return c.Next()
		}
		t := server.Tenant(c)
		rate := l.Rate(name, t.Settings.RateLimits)
		if rate.Off() {
			return c.Next()
		}
		n, err := l.incr(c.UserContext(), t.ID, name, key(c), rate, time.Now())
		if err != nil {
			l.failOpen.Inc()
			l.warn("rate limit store unavailable, failing open", "err", err, "limit", name, "tenant", t.Slug)
			return c.Next()
		}
		if n > int64(rate.N) {
			l.rejected.WithLabelValues(name).Inc()
			return server.Fail(c, fiber.StatusForbidden, "rate_limited", "Too many requests; try again later.")
		}
		return c.Next()
	}
}

// incr counts one request in the current window and returns the count.
func (l *Limiter) incr(ctx context.Context, tenantID int64, name, key string, rate Rate, now time.Time) (int64, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	win := now.UnixNano() / int64(rate.Window)
	k := l.prefix + strconv.FormatInt(tenantID, 10) + ":rl:" + name + ":" + keyPart(key) + ":" + strconv.FormatInt(win, 10)
	var cnt *redis.IntCmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cnt = p.Incr(ctx, k)
		// The window index is in the key, so the TTL only has to outlive it.
		p.Expire(ctx, k, rate.Window+time.Second)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return cnt.Val(), nil
}

// keyPart keeps keys short and printable: long values or values with spaces
// or control characters are replaced by a hash. (A ':' inside, as in an IPv6
// address, is harmless: the window is always the last field.)
func keyPart(k string) string {
	if len(k) <= 64 && !strings.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "h" + hex.EncodeToString(sum[:12])
}

func (l *Limiter) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(10*time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn(msg, args...)
}
