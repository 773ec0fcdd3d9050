// Package csrf protects unsafe requests the way the StartupWebApp client
// expects (STARTUPWEBAPP_API.md §1.7): an Origin (or, over HTTPS, Referer)
// check followed by a double-submit check of the `csrftoken` cookie against
// the X-CSRFToken header (or the csrfmiddlewaretoken form field).
//
// Tokens are bound to the tenant: a token is 16 random characters followed by
// 16 characters of an HMAC of them under a key derived from the tenant's
// session key (and id). A cookie issued for one tenant fails the check on
// every other tenant, even one sharing a parent cookie domain, and a value
// planted by a sibling subdomain is useless unless this tenant minted it.
package csrf

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
)

const (
	// CookieName is the cookie the client reads and echoes.
	CookieName = "csrftoken"
	// HeaderName carries the token on AJAX requests.
	HeaderName = "X-CSRFToken"
	// FormField carries the token on plain form posts.
	FormField = "csrfmiddlewaretoken"
	// CookieMaxAge is Django's CSRF_COOKIE_AGE (52 weeks).
	CookieMaxAge = 31449600
)

const (
	randLen  = 16
	macLen   = 16
	tokenLen = randLen + macLen
	alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

const localsKey = "swa.csrf"

// KeyFunc returns the tenant's secret key material (its session key).
type KeyFunc func(ctx context.Context, t *directory.Tenant) ([]byte, error)

// Options configures the middleware.
type Options struct {
	// Key returns the tenant's key; see BundleKey.
	Key KeyFunc
	// Exempt lists exact paths never checked (e.g. "/order/stripe-webhook").
	Exempt []string
	// ExemptPrefixes lists path prefixes never checked: an app under one
	// that protects itself (the back office, /admin/, with a token bound to
	// its own session).
	ExemptPrefixes []string
	Log            *slog.Logger
}

// Protector checks unsafe requests and mints tokens.
type Protector struct {
	key      KeyFunc
	exempt   map[string]bool
	prefixes []string
	log      *slog.Logger
}

// New returns a Protector; opts.Key is required.
func New(opts Options) *Protector {
	if opts.Key == nil {
		panic("csrf: Options.Key is required")
	}
	p := &Protector{key: opts.Key, exempt: map[string]bool{}, prefixes: opts.ExemptPrefixes, log: opts.Log}
	for _, e := range opts.Exempt {
		p.exempt[e] = true
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p
}

// Middleware is New(opts).Handler().
func Middleware(opts Options) fiber.Handler { return New(opts).Handler() }

// state is the per-request view used by Ensure and Rotate.
type state struct {
	p     *Protector
	token string // token set in this response, if any
}

// Handler checks POST, PUT, PATCH and DELETE requests outside the exempt
// paths and makes Ensure and Rotate available to handlers. It must run after
// tenant resolution; a failure answers 403 csrf_failed.
func (p *Protector) Handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Locals(localsKey, &state{p: p})
		switch c.Method() {
		case fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch, fiber.MethodDelete:
		default:
			return c.Next()
		}
		if p.exempted(c.Path()) {
			return c.Next()
		}
		if reason := p.check(c); reason != "" {
			p.log.Info("csrf check failed", "reason", reason, "tenant", server.Tenant(c).Slug,
				"request_id", server.RequestID(c), "path", c.Path())
			return server.Fail(c, fiber.StatusForbidden, "csrf_failed", "CSRF verification failed: "+reason)
		}
		return c.Next()
	}
}

func (p *Protector) exempted(path string) bool {
	if p.exempt[path] {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(path, pre) {
			return true
		}
	}
	return false
}

// check returns "" when the request passes, else a short reason.
func (p *Protector) check(c *fiber.Ctx) string {
	t := server.Tenant(c)
	own := ownOrigin(c)
	if origin := c.Get(fiber.HeaderOrigin); origin != "" {
		if !sameOrigin(origin, own) && !t.AllowsOrigin(origin) {
			return "origin not allowed"
		}
	} else if server.IsHTTPS(c) {
		ref := c.Get(fiber.HeaderReferer)
		if ref == "" {
			return "referer missing"
		}
		u, err := url.Parse(ref)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return "referer malformed or insecure"
		}
		ro := u.Scheme + "://" + u.Host
		if !sameOrigin(ro, own) && !t.AllowsOrigin(ro) {
			return "referer not allowed"
		}
	}
	cookie := c.Cookies(CookieName)
	if cookie == "" {
		return "cookie missing"
	}
	key, err := p.tenantKey(c, t)
	if err != nil {
		p.log.Error("csrf key unavailable", "err", err, "tenant", t.Slug)
		return "key unavailable"
	}
	if !validToken(key, cookie) {
		return "cookie not issued here"
	}
	sent := c.Get(HeaderName)
	if sent == "" {
		sent = c.FormValue(FormField)
	}
	if sent == "" {
		return "token missing"
	}
	if subtle.ConstantTimeCompare([]byte(sent), []byte(cookie)) != 1 {
		return "token mismatch"
	}
	return ""
}

// Ensure returns the request's valid token, minting one when the cookie is
// missing or not this tenant's, and (re)sets the cookie with a fresh expiry
// (GET /user/token, GET /user/logged-in). It returns "" only when the tenant's
// key cannot be read (logged).
func Ensure(c *fiber.Ctx) string {
	st := stateOf(c)
	if st.token != "" {
		return st.token
	}
	t := server.Tenant(c)
	key, err := st.p.tenantKey(c, t)
	if err != nil {
		st.p.log.Error("csrf key unavailable", "err", err, "tenant", t.Slug)
		return ""
	}
	tok := c.Cookies(CookieName)
	if !validToken(key, tok) {
		if tok, err = newToken(key); err != nil {
			st.p.log.Error("csrf token", "err", err)
			return ""
		}
	} else {
		tok = strings.Clone(tok)
	}
	st.set(c, tok)
	return tok
}

// Rotate replaces the token with a new one (on login) and returns it.
func Rotate(c *fiber.Ctx) string {
	st := stateOf(c)
	t := server.Tenant(c)
	key, err := st.p.tenantKey(c, t)
	if err != nil {
		st.p.log.Error("csrf key unavailable", "err", err, "tenant", t.Slug)
		return ""
	}
	tok, err := newToken(key)
	if err != nil {
		st.p.log.Error("csrf token", "err", err)
		return ""
	}
	st.set(c, tok)
	return tok
}

func stateOf(c *fiber.Ctx) *state {
	st, ok := c.Locals(localsKey).(*state)
	if !ok {
		panic("csrf: middleware not installed")
	}
	return st
}

func (st *state) set(c *fiber.Ctx, tok string) {
	st.token = tok
	c.Cookie(&fiber.Cookie{
		Name:     CookieName,
		Value:    tok,
		Path:     "/",
		Domain:   server.Tenant(c).Settings.CookieDomain,
		MaxAge:   CookieMaxAge,
		Expires:  time.Now().Add(CookieMaxAge * time.Second),
		Secure:   server.IsHTTPS(c),
		HTTPOnly: false, // the client reads it from document.cookie
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// tenantKey derives the MAC key for the tenant: HMAC(session key, "csrf" +
// tenant id), so the same session key on two tenants still gives two keys.
func (p *Protector) tenantKey(c *fiber.Ctx, t *directory.Tenant) ([]byte, error) {
	raw, err := p.key(c.UserContext(), t)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("tenant %s has no session key", t.Slug)
	}
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("swa/csrf/" + strconv.FormatInt(t.ID, 10)))
	return m.Sum(nil), nil
}

func newToken(key []byte) (string, error) {
	r, err := randomString(randLen)
	if err != nil {
		return "", err
	}
	return r + mac(key, r), nil
}

func validToken(key []byte, tok string) bool {
	if len(tok) != tokenLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if strings.IndexByte(alphabet, tok[i]) < 0 {
			return false
		}
	}
	want := mac(key, tok[:randLen])
	return subtle.ConstantTimeCompare([]byte(want), []byte(tok[randLen:])) == 1
}

// mac encodes the first macLen bytes of HMAC-SHA256(key, r) in the token
// alphabet (about 95 bits).
func mac(key []byte, r string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(r))
	sum := m.Sum(nil)
	out := make([]byte, macLen)
	for i := range out {
		out[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(out)
}

func randomString(n int) (string, error) {
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("csrf token: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// ownOrigin is the request's origin as the server sees it.
func ownOrigin(c *fiber.Ctx) string {
	scheme := "http"
	if server.IsHTTPS(c) {
		scheme = "https"
	}
	return scheme + "://" + c.Hostname()
}

func sameOrigin(a, b string) bool { return strings.EqualFold(a, b) }

// KeyringFunc returns the tenant's keys, newest first: its session key,
// then the ones rotations replaced (secrets.TenantBundle.PreviousSessionKeys).
type KeyringFunc func(ctx context.Context, t *directory.Tenant) ([][]byte, error)

// BundleKey returns a KeyFunc reading the session key from each tenant's
// secret bundle, cached for ttl (default 5 minutes) per tenant generation.
func BundleKey(store secrets.Store, ttl time.Duration) KeyFunc {
	return BundleKeyring(store, ttl).Current()
}

// Current is the KeyFunc of the ring's first, signing key.
func (f KeyringFunc) Current() KeyFunc {
	return func(ctx context.Context, t *directory.Tenant) ([]byte, error) {
		keys, err := f(ctx, t)
		if err != nil {
			return nil, err
		}
		return keys[0], nil
	}
}

// BundleKeyring is BundleKey with the replaced keys after the current one.
func BundleKeyring(store secrets.Store, ttl time.Duration) KeyringFunc {
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	type entry struct {
		keys [][]byte
		gen  int64
		ref  string
		when time.Time
	}
	var mu sync.Mutex
	cache := map[int64]entry{}
	return func(ctx context.Context, t *directory.Tenant) ([][]byte, error) {
		mu.Lock()
		e, ok := cache[t.ID]
		mu.Unlock()
		if ok && e.gen == t.Generation && e.ref == t.SecretsRef && time.Since(e.when) < ttl {
			return e.keys, nil
		}
		b, err := secrets.LoadBundle(ctx, store, t.SecretsRef)
		if err != nil {
			return nil, err
		}
		keys := make([][]byte, 0, 1+len(b.PreviousSessionKeys))
		for i, enc := range append([]string{b.SessionKey}, b.PreviousSessionKeys...) {
			key, err := base64.StdEncoding.DecodeString(enc)
			if err != nil || len(key) == 0 {
				if i == 0 {
					return nil, errors.New("tenant session key missing or not base64")
				}
				continue // a damaged old key only loses what it signed
			}
			keys = append(keys, key)
		}
		mu.Lock()
		cache[t.ID] = entry{keys: keys, gen: t.Generation, ref: t.SecretsRef, when: time.Now()}
		mu.Unlock()
		return keys, nil
	}
}
