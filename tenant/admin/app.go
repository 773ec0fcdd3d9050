package admin

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
)

// DB runs fn with a connection to a tenant's database; *pools.Manager is one.
type DB interface {
	Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error
}

// KeyFunc returns a tenant's secret key (csrf.BundleKey is one). The TOTP
// secrets are sealed with a key derived from it, and sessions are bound to
// the password hash with it.
type KeyFunc func(ctx context.Context, t *directory.Tenant) ([]byte, error)

// Defaults of Options.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour
	DefaultMaxFailures     = 5
	DefaultLockout         = 15 * time.Minute
	InvitationTTL          = 72 * time.Hour
	ResetTTL               = time.Hour
	totpStageTTL           = 5 * time.Minute
)

// RateDefaults are the back office's rate limits, for the Limiter given in
// Options (ratelimit.Options.Defaults); a tenant's Settings.RateLimits
// entries of the same names override them.
func RateDefaults() map[string]ratelimit.Rate {
	return map[string]ratelimit.Rate{
		"admin_login":         {N: 20, Window: time.Hour}, // per client address
		"admin_login_account": {N: 10, Window: time.Hour}, // per address signed in to
		"admin_reset":         {N: 5, Window: time.Hour},  // reset mails, per client address
		"admin_link":          {N: 20, Window: time.Hour}, // invitation and reset links used, per client address
	}
}

// Options configures the back office.
type Options struct {
	DB  DB
	Key KeyFunc
	// Keyring, when set, is used in place of Key: TOTP secrets sealed under
	// a key a rotation replaced still open (and are sealed again under the
	// current one at their next use).
	Keyring account.KeyringFunc
	Redis   redis.UniversalClient
	// Payments hands out the tenant's Stripe client, for refunds; nil
	// means refunds are refused.
	Payments *payments.Clients
	// Prefix starts every Redis key (the tenant id follows).
	Prefix string
	// Limiter applies RateDefaults' limits; nil means none (tests of other
	// things). Lockout after MaxFailures holds regardless.
	Limiter *ratelimit.Limiter
	// Hasher hashes passwords (default account.NewHasher(account.DefaultArgon2)).
	Hasher *account.Hasher
	// DefaultFrom is the From of the mails when the tenant names none.
	DefaultFrom string
	Log         *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// IdleTimeout and AbsoluteTimeout end a session after that long unused,
	// or that long after sign-in whatever the use.
	IdleTimeout, AbsoluteTimeout time.Duration
	// MaxFailures consecutive wrong passwords or codes lock an account for
	// Lockout.
	MaxFailures int
	Lockout     time.Duration
	// Sessions is the member session store; deactivating a member ends
	// their sessions in it.
	Sessions *sessions.Store
	// MaxImportBytes is the largest CSV upload (default MaxImportBytes);
	// the server's body limit of the upload routes must allow it
	// (UploadBodyLimits).
	MaxImportBytes int
	// JobTimeout is the deadline of an import's apply job (default
	// DefaultJobTimeout).
	JobTimeout time.Duration
	// Registry is the data plane's registry connection, for the shop's
	// settings; nil means the settings cannot be changed (503).
	Registry Registry
	// BaseDomain is the platform's: owners may not add names under it as
	// domains of their own.
	BaseDomain string
}

// App is the back office; it implements server.App.
type App struct {
	db          DB
	registry    Registry
	baseDomain  string
	keyring     account.KeyringFunc
	rdb         redis.UniversalClient
	payments    *payments.Clients
	prefix      string
	limiter     *ratelimit.Limiter
	hasher      *account.Hasher
	from        string
	log         *slog.Logger
	now         func() time.Time
	idle        time.Duration
	absolute    time.Duration
	maxFailures int
	lockout     time.Duration
	sessions    *sessions.Store
	maxImport   int
	jobTimeout  time.Duration
	jobs        sync.Map // import jobs running in this process, by tenant and id
}

// New returns the back office. DB, Key and Redis are required.
func New(o Options) *App {
	if o.DB == nil || (o.Key == nil && o.Keyring == nil) || o.Redis == nil {
		panic("admin: Options.DB, Key and Redis are required")
	}
	if o.Keyring == nil {
		o.Keyring = account.KeyFunc(o.Key).Ring()
	}
	a := &App{db: o.DB, registry: o.Registry, baseDomain: strings.Trim(strings.ToLower(o.BaseDomain), "."), keyring: o.Keyring, rdb: o.Redis, payments: o.Payments, prefix: o.Prefix, limiter: o.Limiter, hasher: o.Hasher,
		from: o.DefaultFrom, log: o.Log, now: o.Now, idle: o.IdleTimeout, absolute: o.AbsoluteTimeout,
		maxFailures: o.MaxFailures, lockout: o.Lockout,
		sessions: o.Sessions, maxImport: o.MaxImportBytes, jobTimeout: o.JobTimeout}
	if a.maxImport <= 0 {
		a.maxImport = MaxImportBytes
	}
	if a.jobTimeout <= 0 {
		a.jobTimeout = DefaultJobTimeout
	}
	if a.hasher == nil {
		a.hasher = account.NewHasher(account.DefaultArgon2)
	}
	if a.from == "" {
		a.from = "StartUpWebApp <noreply@localhost>"
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.idle <= 0 {
		a.idle = DefaultIdleTimeout
	}
	if a.absolute <= 0 {
		a.absolute = DefaultAbsoluteTimeout
	}
	if a.maxFailures <= 0 {
		a.maxFailures = DefaultMaxFailures
	}
	if a.lockout <= 0 {
		a.lockout = DefaultLockout
	}
	return a
}

// APIPrefix is where the JSON API is mounted.
const APIPrefix = "/admin/api/v1"

// route is one API route; the OpenAPI test walks the same table.
type route struct {
	method, path string
	access       access
	limits       []limit
	h            fiber.Handler
}

type limit struct {
	name string
	key  ratelimit.KeyFunc
}

// access says who may call a route.
type access int

const (
	public      access = iota // anyone (sign-in, links from mails)
	anyStaff                  // a signed-in staff member or their token
	sessionOnly               // a signed-in staff member, not a token
	ownerOnly                 // an owner, by session or token
	totpStage                 // a session waiting for its second factor
)

func (a *App) routes() []route {
	byIP := limit{"admin_login", ratelimit.ByClientIP}
	byAccount := limit{"admin_login_account", bodyEmail}
	resetByIP := limit{"admin_reset", ratelimit.ByClientIP}
	linkByIP := limit{"admin_link", ratelimit.ByClientIP}
	return append([]route{
		{"GET", "/openapi.json", public, nil, a.apiOpenAPI},
		{"POST", "/session", public, []limit{byIP, byAccount}, a.apiSignIn},
		{"POST", "/session/totp", totpStage, []limit{byIP}, a.apiSignInTOTP},
		{"DELETE", "/session", sessionOnly, nil, a.apiSignOut},
		{"GET", "/me", anyStaff, nil, a.apiMe},
		{"POST", "/me/password", sessionOnly, nil, a.apiChangePassword},
		{"POST", "/me/totp", sessionOnly, nil, a.apiTOTPEnrol},
		{"POST", "/me/totp/confirm", sessionOnly, nil, a.apiTOTPConfirm},
		{"DELETE", "/me/totp", sessionOnly, nil, a.apiTOTPDisable},
		{"POST", "/me/recovery-codes", sessionOnly, nil, a.apiRecoveryCodes},
		{"GET", "/staff", anyStaff, nil, a.apiStaffList},
		{"PATCH", "/staff/:id", ownerOnly, nil, a.apiStaffUpdate},
		{"GET", "/staff/invitations", ownerOnly, nil, a.apiInvitationList},
		{"POST", "/staff/invitations", ownerOnly, nil, a.apiInvite},
		{"DELETE", "/staff/invitations/:id", ownerOnly, nil, a.apiInvitationRevoke},
		{"POST", "/invitations/accept", public, []limit{linkByIP}, a.apiAcceptInvitation},
		{"POST", "/password/forgot", public, []limit{resetByIP}, a.apiForgotPassword},
		{"POST", "/password/reset", public, []limit{linkByIP}, a.apiResetPassword},
		{"GET", "/tokens", anyStaff, nil, a.apiTokenList},
		{"POST", "/tokens", sessionOnly, nil, a.apiTokenCreate},
		{"DELETE", "/tokens/:id", anyStaff, nil, a.apiTokenRevoke},
		{"GET", "/audit", ownerOnly, nil, a.apiAudit},
		{"GET", "/settings", ownerOnly, nil, a.apiSettingsGet},
		{"PUT", "/settings", ownerOnly, nil, a.apiSettingsPut},
		{"GET", "/domains", ownerOnly, nil, a.apiDomainList}, {"POST", "/domains", ownerOnly, nil, a.apiDomainAdd}, {"DELETE", "/domains/:hostname", ownerOnly, nil, a.apiDomainRemove},
		{"GET", "/site", ownerOnly, nil, a.apiSiteGet}, {"POST", "/site/deploys", ownerOnly, nil, a.apiSiteDeploy}, {"POST", "/site/rollbacks", ownerOnly, nil, a.apiSiteRollback},
		// Catalogue (catalog.go, catalog_rules.go).
		{"GET", "/products", anyStaff, nil, a.apiProductList},
		{"POST", "/products", anyStaff, nil, a.apiProductCreate},
		{"GET", "/products/:id", anyStaff, nil, a.apiProductGet},
		{"PATCH", "/products/:id", anyStaff, nil, a.apiProductUpdate},
		{"PUT", "/products/:id/skus/:sku", anyStaff, nil, a.apiProductSKULink},
		{"DELETE", "/products/:id/skus/:sku", anyStaff, nil, a.apiProductSKULink},
		{"POST", "/skus", anyStaff, nil, a.apiSKUCreate},
		{"GET", "/skus/:id", anyStaff, nil, a.apiSKUGet},
		{"PATCH", "/skus/:id", anyStaff, nil, a.apiSKUUpdate},
		{"POST", "/skus/:id/prices", anyStaff, nil, a.apiSKUPrice},
		{"GET", "/shipping-methods", anyStaff, nil, a.apiShippingList},
		{"PATCH", "/shipping-methods/:id", anyStaff, nil, a.apiShippingUpdate},
		{"GET", "/discount-codes", anyStaff, nil, a.apiDiscountList},
		{"POST", "/discount-codes", anyStaff, nil, a.apiDiscountCreate},
		{"GET", "/discount-codes/:id", anyStaff, nil, a.apiDiscountGet},
		{"PATCH", "/discount-codes/:id", anyStaff, nil, a.apiDiscountUpdate},
		{"GET", "/terms", anyStaff, nil, a.apiTermsList},
		{"POST", "/terms", ownerOnly, nil, a.apiTermsCreate},
		// Orders and refunds (orders.go, refunds.go), dashboard figures (dashboard.go).
		{"GET", "/orders", anyStaff, nil, a.apiOrderList},
		{"GET", "/orders/:identifier", anyStaff, nil, a.apiOrderGet},
		{"POST", "/orders/:identifier/status", anyStaff, nil, a.apiOrderStatus},
		{"POST", "/orders/:identifier/refunds", anyStaff, nil, a.apiOrderRefund},
		{"GET", "/dashboard", anyStaff, nil, a.apiDashboard},
		{"GET", "/insight", anyStaff, nil, a.apiInsight},
		{"GET", "/ads", anyStaff, nil, a.apiAdList},
		{"POST", "/ads", anyStaff, nil, a.apiAdCreate},
		{"PATCH", "/ads/:id", anyStaff, nil, a.apiAdUpdate},
		{"GET", "/insight/reports/:report", anyStaff, nil, a.apiInsightReport},
	}, append(a.peopleRoutes(), a.campaignRoutes()...)...)
}

// Mount registers the back office: the API under APIPrefix and the pages
// under /admin/.
func (a *App) Mount(r fiber.Router) {
	g := r.Group("/admin", a.frame)
	api := g.Group("/api/v1")
	for _, rt := range a.routes() {
		hs := []fiber.Handler{}
		if a.limiter != nil {
			for _, l := range rt.limits {
				hs = append(hs, a.limiter.Handler(l.name, l.key))
			}
		}
		hs = append(hs, a.guard(rt.access), rt.h)
		api.Add(rt.method, rt.path, hs...)
	}
	g.Get("/handoff", a.pageHandoff)
	a.mountPages(g)
}

// frame runs around every /admin request: who is asking, no caching, a
// strict CSP, no CORS, and client errors in the API's shape.
func (a *App) frame(c *fiber.Ctx) error {
	// Fiber's prefix match also takes /administrator and the like.
	if p := c.Path(); p != "/admin" && !strings.HasPrefix(p, "/admin/") {
		return c.Next()
	}
	h := &c.Response().Header
	h.Set(fiber.HeaderCacheControl, "no-store")
	h.Set(fiber.HeaderContentSecurityPolicy, csp)
	err := a.identify(c)
	if err == nil {
		err = c.Next()
	}
	if ae, ok := asAPIError(err); ok {
		c.Status(ae.Status)
		err = c.JSON(ae)
	}
	// The member API trusts the tenant's frontend origins with credentials;
	// the back office trusts no other origin.
	h.Del(fiber.HeaderAccessControlAllowOrigin)
	h.Del(fiber.HeaderAccessControlAllowCredentials)
	h.Del(fiber.HeaderAccessControlAllowHeaders)
	h.Del(fiber.HeaderAccessControlAllowMethods)
	return err
}

// csp: nothing but our own stylesheet, data: images (the QR code) and forms
// to ourselves; no script at all.
const csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// principal is who a request acts as.
type principal struct {
	staff   *staffRow
	sess    *staffSession // nil for a token
	sessID  string
	tokenID int64
}

func (p *principal) signedIn() bool { return p != nil && (p.tokenID != 0 || p.sess.Stage == stageFull) }

const localsReq = "swa.admin.req"

// req is what a handler needs: the tenant, its key, who is asking.
type req struct {
	c         *fiber.Ctx
	ctx       context.Context
	tenant    *directory.Tenant
	key       []byte
	oldKeys   [][]byte // replaced by rotations, newest first
	who       *principal
	clientIP  string
	requestID string
}

func (a *App) r(c *fiber.Ctx) *req { return c.Locals(localsReq).(*req) }

// identify finds the request's staff member: a bearer token, else the
// session cookie. Neither is an anonymous request; a stale one too.
func (a *App) identify(c *fiber.Ctx) error {
	t := server.Tenant(c)
	keys, err := a.keyring(c.UserContext(), t)
	if err != nil {
		return fmt.Errorf("tenant key: %w", err)
	}
	if len(keys) == 0 || len(keys[0]) == 0 {
		return errors.New("tenant key is empty")
	}
	r := &req{c: c, ctx: c.UserContext(), tenant: t, key: keys[0], oldKeys: keys[1:], clientIP: server.ClientIP(c), requestID: server.RequestID(c)}
	c.Locals(localsReq, r)
	if auth := c.Get(fiber.HeaderAuthorization); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			return errUnauthenticated
		}
		r.who, err = a.byToken(r, strings.TrimSpace(tok))
		if err != nil {
			return err
		}
		if r.who == nil {
			return &apiError{Status: fiber.StatusUnauthorized, Code: "token-invalid", Detail: "the API token is unknown or revoked"}
		}
		return nil
	}
	id := c.Cookies(CookieName)
	sess, err := a.loadSession(r.ctx, t.ID, id)
	if err != nil || sess == nil {
		return err
	}
	var s *staffRow
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		s, err = staffByID(r.ctx, conn, sess.StaffID)
		return err
	}); err != nil {
		return err
	}
	if s == nil || !s.Active || !hmac.Equal([]byte(sess.AuthHash), []byte(sessions.AuthHash(r.key, s.PasswordHash))) {
		a.rdb.Del(r.ctx, a.sessKey(t.ID, id))
		return nil
	}
	r.who = &principal{staff: s, sess: sess, sessID: strings.Clone(id)}
	return nil
}

// guard enforces a route's access and, for sessions, the request's origin
// and CSRF token on every unsafe method.
func (a *App) guard(acc access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		r := a.r(c)
		if err := a.checkUnsafe(r, acc != public); err != nil {
			return err
		}
		switch acc {
		case public:
			return c.Next()
		case totpStage:
			if r.who == nil || r.who.sess == nil || r.who.sess.Stage != stageTOTP {
				return errUnauthenticated
			}
			return c.Next()
		}
		if !r.who.signedIn() {
			return errUnauthenticated
		}
		switch {
		case acc == sessionOnly && r.who.sess == nil:
			return errSessionOnl
		case acc == ownerOnly && r.who.staff.Role != RoleOwner:
			return errForbidden
		}
		return c.Next()
	}
}

// checkUnsafe refuses an unsafe request from another origin, and one made
// with a session (when withSession: every route but the public ones, which
// act on no session) that lacks the session's token. Bearer requests carry
// no ambient credential and need neither.
func (a *App) checkUnsafe(r *req, withSession bool) error {
	switch r.c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return nil
	}
	if r.who != nil && r.who.tokenID != 0 {
		return nil
	}
	if o := r.c.Get(fiber.HeaderOrigin); o != "" && !strings.EqualFold(o, ownOrigin(r.c)) {
		return errOrigin
	}
	if r.c.Get("Sec-Fetch-Site") == "cross-site" {
		return errOrigin
	}
	if withSession && r.who != nil && r.who.sess != nil {
		sent := r.c.Get("X-CSRF-Token")
		if sent == "" {
			sent = r.c.FormValue("csrf_token")
		}
		if !csrfMatches(r.who.sess, sent) {
			return errCSRF
		}
	}
	return nil
}

// ownOrigin is the origin the request was made to.
func ownOrigin(c *fiber.Ctx) string {
	scheme := "http"
	if server.IsHTTPS(c) {
		scheme = "https"
	}
	return scheme + "://" + c.Hostname()
}

// conn runs fn on the tenant's database, with the request's deadline.
func (a *App) conn(r *req, fn func(*pgxpool.Conn) error) error {
	return a.db.Do(r.ctx, r.tenant, fn)
}

// tx runs fn in a transaction on the tenant's database.
func (a *App) tx(r *req, fn func(pgx.Tx) error) error {
	return a.conn(r, func(c *pgxpool.Conn) error { return pgx.BeginFunc(r.ctx, c, fn) })
}

// body decodes a JSON request body into v; an empty body is {}.
func body(c *fiber.Ctx, v any) error {
	raw := c.Body()
	if len(raw) == 0 {
		return nil
	}
	if ct := c.Get(fiber.HeaderContentType); !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return &apiError{Status: fiber.StatusUnsupportedMediaType, Code: "unsupported-media-type", Detail: "send application/json"}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return invalid(te.Field, te.Field+" has the wrong type")
		}
		return &apiError{Status: fiber.StatusBadRequest, Code: "invalid-json", Detail: "the body is not valid JSON"}
	}
	return nil
}

// bodyEmail keys the per-account sign-in limit by the address signed in to.
func bodyEmail(c *fiber.Ctx) string {
	var b struct {
		Email string `json:"email"`
	}
	if json.Unmarshal(c.Body(), &b) != nil || b.Email == "" {
		b.Email = c.FormValue("email")
	}
	return strings.ToLower(strings.TrimSpace(b.Email))
}
