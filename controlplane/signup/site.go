// Package signup is the platform's own site, where a founder signs up and
// gets a live shop: a landing page, the plans, the sign-up form, email
// verification, and the page that waits for the new shop and then signs
// the founder into its back office.
//
// It runs in the control plane, on the platform's own hostnames (Options.Hosts,
// e.g. www.{SWA_BASE_DOMAIN}): a sign-up writes the registry and creates a
// tenant, which only the control plane may do; the data plane reads the
// registry through a SELECT-only role. In production the data plane forwards
// the platform hosts to it (platform/siteproxy, SWA_PLATFORM_SITE_URL), so
// the control plane stays the registry's only writer and the data plane the
// one edge, with the certificates, for every hostname; the site then reads
// the client address from X-Forwarded-For of the data plane's replicas,
// which the control plane's SWA_TRUSTED_PROXIES must list. Both match hosts
// with siteproxy.Hosts.
//
// Pages are server-rendered, without script, under a strict CSP; every form
// carries a CSRF token.
//
// A sign-up is recorded pending with the password's argon2id hash and the
// SHA-256 of a verification token (single use, valid 24 hours) mailed to the
// address. Following the link and confirming marks it verified, which claims
// the subdomain; a worker then creates the tenant through the provisioning
// workflow, makes the founder its owner, and the waiting page hands the
// founder a single-use link into /admin on the shop's host. Each step is
// idempotent and a restarted control plane resumes unfinished ones.
//
// The founder then has an account on the site (founder.go): sign-in,
// /shops with each shop's back office and plan, paid plans billed through
// the platform's own Stripe account and its webhook (billing.go).
package signup

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/siteproxy"
	"github.com/startupwebapp/platform/platform/tenancy"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/admin"
)

// Options configures the site.
type Options struct {
	// Provision creates the tenants; its registry's pool holds the sign-ups.
	Provision *provision.Service
	DB        *pgxpool.Pool // the platform database
	// Redis counts sign-ups per client and holds back-office handoffs, under
	// RedisPrefix (the data plane's SWA_REDIS_PREFIX: its back office reads
	// the handoffs).
	Redis       redis.UniversalClient
	RedisPrefix string
	// Hosts are the platform site's hostnames (no port), e.g. www.example.com.
	Hosts []string
	// SiteURL is the site's own base URL, used in the verification mail,
	// e.g. https://www.example.com.
	SiteURL string
	// BaseDomain gives new shops {slug}.{BaseDomain}.
	BaseDomain string
	// TenantURL is the base URL of a shop's host (default https://{slug}.{BaseDomain}).
	TenantURL func(slug string) string
	// Mail sends one message (default: SMTP to SMTP).
	Mail func(ctx context.Context, m mail.Message) error
	SMTP mail.SMTPSettings
	From string
	// StarterTenant is the tenant whose catalogue a new shop starts with,
	// when it is live (default startupwebapp); otherwise the shop is empty.
	StarterTenant string
	// Secure marks cookies Secure (off only for plain-HTTP development).
	Secure bool
	// RateLimit bounds sign-up attempts per client address (default 10 an
	// hour); ResendRate and ResendEmailRate bound requests for a new link
	// per client address (default 10 an hour) and per email address
	// (default 3 an hour). The zero Rate is the default; one with a Window
	// and no N is off.
	RateLimit, ResendRate, ResendEmailRate ratelimit.Rate
	// MaxPending caps an address's unverified sign-ups (default 3).
	MaxPending int
	// Workers create this many shops at a time (default 2); the rest wait.
	Workers int
	// RequestTimeout bounds every request (default 10 s), OperationTimeout
	// the creation of one shop (default 10 min).
	RequestTimeout, OperationTimeout time.Duration
	// SignInRate bounds founders' sign-in attempts, per client address and
	// per email (default DefaultSignInRate); SessionTTL is how long a
	// founder stays signed in (default DefaultSessionTTL).
	SignInRate ratelimit.Rate
	SessionTTL time.Duration
	// Billing is the platform's own Stripe account, for paid plans.
	Billing Billing
	// TrustedProxies may set X-Forwarded-For: the data plane's replicas
	// that forward the platform hosts, and any proxy between them.
	TrustedProxies []string
	Hasher         *account.Hasher
	Log            *slog.Logger
	Now            func() time.Time
}

// Defaults.
const (
	TokenTTL          = 24 * time.Hour
	DefaultMaxPending = 3
	handoffTTL        = 2 * time.Minute
	planForSignUps    = "free"
	progressCookie    = "swa_signup"
	csrfCookie        = "swa_site_csrf"
)

// DefaultRateLimit is 10 sign-up attempts an hour per client address.
var DefaultRateLimit = ratelimit.Rate{N: 10, Window: time.Hour}

// Reserved are subdomains no sign-up may take: the platform's own names and
// names people would mistake for it.
var Reserved = []string{"www", "api", "admin", "app", "mail", "smtp", "imap", "pop", "static", "assets", "cdn",
	"status", "help", "support", "docs", "blog", "billing", "signup", "login", "account", "accounts", "dashboard",
	"platform", "controlplane", "dev", "staging", "test", "ns1", "ns2", "webmail", "ftp", "root", "security"}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed templates/site.css
var stylesheet []byte

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// csp: our stylesheet, forms to ourselves, no script at all.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Site is the platform site.
type Site struct {
	opts  Options
	db    *pgxpool.Pool
	prov  *provision.Service
	reg   *registry.Registry
	log   *slog.Logger
	app   *fiber.App
	hosts siteproxy.Hosts
	// trusted are the proxies whose X-Forwarded-For hops are believed.
	trusted server.Proxies
	// billing is the platform's Stripe account, nil when not configured.
	billing *billing
	// crashAt, when set, runs between the steps of finishing a sign-up
	// (after the tenant, after the owner); an error stops there as if the
	// process died (tests).
	crashAt func(point string) error

	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New builds the site and resumes the shops of verified sign-ups a previous
// process left unfinished.
func New(ctx context.Context, o Options) (*Site, error) {
	if o.Provision == nil || o.DB == nil || o.Redis == nil {
		return nil, errors.New("signup: Options.Provision, DB and Redis are required")
	}
	if o.BaseDomain == "" {
		o.BaseDomain = "localhost"
	}
	if len(o.Hosts) == 0 {
		o.Hosts = []string{"www." + o.BaseDomain}
	}
	if o.SiteURL == "" {
		o.SiteURL = "https://" + o.Hosts[0]
	}
	if o.TenantURL == nil {
		o.TenantURL = func(slug string) string { return "https://" + slug + "." + o.BaseDomain }
	}
	if o.Mail == nil {
		relay := o.SMTP
		o.Mail = func(ctx context.Context, m mail.Message) error {
			return mail.SMTP{Timeout: 10 * time.Second}.Send(ctx, relay, m)
		}
	}
	if o.From == "" {
		o.From = "StartupWebApp <no-reply@" + o.BaseDomain + ">"
	}
	if o.StarterTenant == "" {
		o.StarterTenant = "startupwebapp"
	}
	if o.RateLimit.N == 0 && o.RateLimit.Window == 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.ResendRate == (ratelimit.Rate{}) {
		o.ResendRate = DefaultResendRate
	}
	if o.ResendEmailRate == (ratelimit.Rate{}) {
		o.ResendEmailRate = DefaultResendEmailRate
	}
	if o.SignInRate.N == 0 && o.SignInRate.Window == 0 {
		o.SignInRate = DefaultSignInRate
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.OperationTimeout <= 0 {
		o.OperationTimeout = 10 * time.Minute
	}
	if o.Hasher == nil {
		o.Hasher = account.NewHasher(account.DefaultArgon2)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	trusted, err := server.ParseProxies(o.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	s := &Site{trusted: trusted, opts: o, db: o.DB, prov: o.Provision, reg: o.Provision.Registry(), log: o.Log,
		hosts: siteproxy.NewHosts(o.Hosts), slots: make(chan struct{}, o.Workers), billing: newBilling(o.Billing)}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.app = fiber.New(fiber.Config{
		AppName:                 "swa platform site",
		BodyLimit:               64 << 10,
		DisableStartupMessage:   true,
		EnableTrustedProxyCheck: true,
		TrustedProxies:          o.TrustedProxies,
		ProxyHeader:             fiber.HeaderXForwardedFor,
		ErrorHandler:            s.handleError,
		ReadTimeout:             30 * time.Second,
		WriteTimeout:            30 * time.Second,
	})
	s.routes()
	if err := s.resume(ctx); err != nil {
		s.Close(context.Background())
		return nil, err
	}
	return s, nil
}

// Close stops taking sign-ups to finish and waits for the running ones
// until ctx ends; those cut off are resumed by the next start.
func (s *Site) Close(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
}

// App is the site's Fiber app.
func (s *Site) App() *fiber.App { return s.app }

// clientIP is the visitor's address, as the data plane computes it
// (server.Proxies.ClientAddr): the peer, or behind trusted proxies the
// nearest X-Forwarded-For hop that is not one, so a visitor cannot pick a
// new address per request by writing the header (Fiber's c.IP() would
// answer the header as written).
func (s *Site) clientIP(c *fiber.Ctx) string {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return s.trusted.ClientAddr(peer, c.Request().Header.Peek(fiber.HeaderXForwardedFor)).String()
}

// IsSiteHost reports whether host (with or without a port) is one of the
// site's hostnames: the match the data plane forwards them by, too
// (platform/siteproxy).
func (s *Site) IsSiteHost(host string) bool { return s.hosts.Match(host) }

// Front returns a fasthttp handler that sends the site's hosts to the site
// and every other request to next: how a listener that also serves other
// things (the admin API, or the data plane under swa dev) takes the site in.
func (s *Site) Front(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	site := s.app.Handler()
	return func(ctx *fasthttp.RequestCtx) {
		if s.IsSiteHost(string(ctx.Host())) {
			site(ctx)
			return
		}
		next(ctx)
	}
}

func (s *Site) routes() {
	app := s.app
	app.Use(s.frame)
	app.Get("/static/site.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.Send(stylesheet)
	})
	app.Get("/", func(c *fiber.Ctx) error { return s.render(c, 200, "landing", nil) })
	app.Get("/pricing", s.getPricing)
	app.Get("/signup", func(c *fiber.Ctx) error { return s.render(c, 200, "signup", &form{}) })
	app.Post("/signup", s.checkCSRF, s.postSignUp)
	app.Get("/signup/sent", func(c *fiber.Ctx) error { return s.render(c, 200, "sent", nil) })
	app.Get("/signup/resend", func(c *fiber.Ctx) error { return s.render(c, 200, "resend", &resendForm{}) })
	app.Post("/signup/resend", s.checkCSRF, s.postResend)
	app.Get("/verify", s.getVerify)
	app.Post("/verify", s.checkCSRF, s.postVerify)
	app.Get("/welcome", s.getWelcome)
	app.Get("/signin", s.getSignIn)
	app.Post("/signin", s.checkCSRF, s.postSignIn)
	app.Post("/signout", s.checkCSRF, s.postSignOut)
	app.Get("/shops", s.signedIn, s.getShops)
	app.Post("/shops/:slug/back-office", s.checkCSRF, s.signedIn, s.postBackOffice)
	app.Post("/shops/:slug/plan", s.checkCSRF, s.signedIn, s.postPlan)
	app.Post("/billing/webhook", s.postBillingWebhook)
	app.Use(func(c *fiber.Ctx) error {
		return s.render(c, 404, "message", msg("Page not found", "There is no page here."))
	})
}

// frame: the request deadline, a strict CSP, no caching of personal pages,
// and one log line per request (its path without the query, which may hold
// a token).
func (s *Site) frame(c *fiber.Ctx) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.UserContext(), s.opts.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	h := &c.Response().Header
	h.Set(fiber.HeaderContentSecurityPolicy, csp)
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	h.Set(fiber.HeaderCacheControl, "no-store")
	err := c.Next()
	if err != nil {
		err = s.handleError(c, err)
	}
	status := c.Response().StatusCode()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(ctx, level, "platform site request", slog.String("method", c.Method()),
		slog.String("path", strings.Clone(c.Path())), slog.String("client", s.clientIP(c)), slog.Int("status", status),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	return err
}

func (s *Site) handleError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) && fe.Code < 500 {
		return s.render(c, fe.Code, "message", msg("Something is wrong with the request", fe.Message))
	}
	if errors.Is(c.UserContext().Err(), context.DeadlineExceeded) {
		return s.render(c, 503, "message", msg("That took too long", "Please try again in a moment."))
	}
	s.log.Error("platform site", "path", c.Path(), "err", err)
	return s.render(c, 500, "message", msg("Something went wrong", "Please try again in a moment."))
}

// view is what every page template gets.
type view struct {
	Title string
	CSRF  string
	Data  any
	// Founder is the signed-in founder on the pages that look for one.
	Founder *founder
	// Refresh, when set, is where the page moves on to by itself after
	// RefreshAfter seconds (a meta refresh: no script).
	Refresh      string
	RefreshAfter int
}

type message struct {
	Heading, Text  string
	Link, LinkText string
	Refresh        string // a URL the page moves on to by itself
	RefreshAfter   int
}

func msg(h, t string) *message { return &message{Heading: h, Text: t} }

func (s *Site) render(c *fiber.Ctx, status int, name string, data any) error {
	v := view{Title: titles[name], CSRF: s.csrfToken(c), Data: data}
	v.Founder, _ = c.Locals(founderCookie).(*founder)
	if m, ok := data.(*message); ok {
		v.Title, v.Refresh, v.RefreshAfter = m.Heading, m.Refresh, m.RefreshAfter
	}
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	return c.SendString(b.String())
}

var titles = map[string]string{
	"landing": "Start your shop", "pricing": "Pricing", "signup": "Create your shop",
	"sent": "Check your email", "verify": "Confirm your email", "resend": "Send the link again",
	"signin": "Sign in", "shops": "Your shops",
}

// csrfToken is the double-submit token: a random value in a cookie on the
// site's host, repeated in every form.
func (s *Site) csrfToken(c *fiber.Ctx) string {
	if v, ok := c.Locals(csrfCookie).(string); ok {
		return v
	}
	tok := c.Cookies(csrfCookie)
	if len(tok) != 43 {
		tok, _ = newToken()
		c.Cookie(&fiber.Cookie{Name: csrfCookie, Value: tok, Path: "/", HTTPOnly: true, Secure: s.opts.Secure,
			SameSite: fiber.CookieSameSiteLaxMode})
	}
	c.Locals(csrfCookie, tok)
	return tok
}

// checkCSRF refuses a form whose token does not match the cookie's, or that
// comes from another origin.
func (s *Site) checkCSRF(c *fiber.Ctx) error {
	if o := c.Get(fiber.HeaderOrigin); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !s.IsSiteHost(u.Host) {
			return s.render(c, 403, "message", msg("This form came from elsewhere", "Please use the form on this site."))
		}
	}
	cookie, field := c.Cookies(csrfCookie), c.FormValue("csrf")
	if cookie == "" || subtle.ConstantTimeCompare([]byte(cookie), []byte(field)) != 1 {
		return s.render(c, 403, "message", &message{Heading: "Your session expired",
			Text: "Please reload the form and send it again.", Link: "/signup", LinkText: "Back to the form"})
	}
	return c.Next()
}

// form is the sign-up form and its errors, by field.
type form struct {
	Email, ShopName, Slug string
	Errors                map[string]string
}

func (f *form) fail(field, m string) {
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	if _, ok := f.Errors[field]; !ok {
		f.Errors[field] = m
	}
}

// CheckSlug says what is wrong with a subdomain, "" when it may be asked for.
func CheckSlug(slug string) string {
	switch {
	case slug == "":
		return "Choose a subdomain for your shop."
	case !tenancy.ValidSlug(slug):
		return "Use 2 to 40 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
	case slices.Contains(Reserved, slug):
		return "That subdomain is reserved; please choose another."
	}
	return ""
}

func (s *Site) postSignUp(c *fiber.Ctx) error {
	ctx := c.UserContext()
	f := &form{
		Email:    strings.TrimSpace(c.FormValue("email")),
		ShopName: strings.TrimSpace(c.FormValue("shop_name")),
		Slug:     strings.ToLower(strings.TrimSpace(c.FormValue("subdomain"))),
	}
	password := c.FormValue("password")
	limited, err := s.limited(ctx, s.clientIP(c))
	if err != nil {
		return err
	}
	if limited {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(s.opts.RateLimit.Window.Seconds())))
		return s.render(c, 429, "message", msg("Too many sign-ups", "Too many sign-ups came from your network; please try again later."))
	}
	if r := account.ValidateEmail(f.Email); !r.OK() {
		f.fail("email", "Enter a valid email address.")
	}
	if r := account.ValidatePassword(password, password); !r.OK() {
		f.fail("password", r[0].Description)
	} else if r := account.PasswordRules(password, account.PasswordUser{Username: f.Email, Email: f.Email}); !r.OK() {
		f.fail("password", r[0].Description)
	}
	if f.ShopName == "" || utf8.RuneCountInString(f.ShopName) > 100 || strings.ContainsAny(f.ShopName, "\r\n<>") {
		f.fail("shop_name", "Give your shop a name of 1 to 100 characters.")
	}
	if m := CheckSlug(f.Slug); m != "" {
		f.fail("subdomain", m)
	}
	if len(f.Errors) > 0 {
		return s.render(c, 400, "signup", f)
	}
	if taken, err := slugTaken(ctx, s.db, f.Slug); err != nil {
		return err
	} else if taken {
		f.fail("subdomain", f.Slug+"."+s.opts.BaseDomain+" is taken; please choose another.")
		return s.render(c, 409, "signup", f)
	}
	now := s.opts.Now()
	n, err := pendingFor(ctx, s.db, f.Email, now)
	if err != nil {
		return err
	}
	if n >= s.opts.MaxPending {
		return s.render(c, 429, "message", msg("Check your email",
			"We have already sent several confirmation links to this address. Use one of them, or try again tomorrow."))
	}
	// An address that has a shop already gets the same answer as a new
	// one (the page does not tell who has a shop); the mail says which.
	shop, err := activeShopOf(ctx, s.db, f.Email)
	if err != nil {
		return err
	}
	if shop != "" {
		if err := s.send(ctx, f.Email, "You already have a shop",
			"Someone (probably you) tried to sign up again with this address, which already has a shop:\n\n  "+
				s.opts.TenantURL(shop)+"/admin/sign-in\n\nSign in there. If this was not you, you can ignore this email.\n"); err != nil {
			return err
		}
		return c.Redirect("/signup/sent", fiber.StatusSeeOther)
	}
	hash, err := s.opts.Hasher.Hash(password)
	if err != nil {
		return err
	}
	tok, sum := newToken()
	_, err = s.db.Exec(ctx, `INSERT INTO signups (email, password_hash, shop_name, slug, token_hash, expires_at, client_addr)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, f.Email, hash, f.ShopName, f.Slug, sum, now.Add(TokenTTL), s.clientIP(c))
	if err != nil {
		return fmt.Errorf("record sign-up: %w", err)
	}
	if err := s.sendVerification(ctx, f.Email, f.ShopName, f.Slug, tok); err != nil {
		return err
	}
	return c.Redirect("/signup/sent", fiber.StatusSeeOther)
}

// send mails one message; it is called with no transaction open.
func (s *Site) send(ctx context.Context, to, subject, text string) error {
	m := mail.Message{Kind: "platform_signup", From: s.opts.From, To: []string{to}, Subject: subject, Text: text}
	if err := s.opts.Mail(ctx, m); err != nil {
		return fmt.Errorf("send sign-up mail: %w", err)
	}
	return nil
}

// limited counts one sign-up attempt from addr and reports whether it is
// over the rate. A Redis failure fails closed: sign-ups are rare and
// creating shops is expensive.
func (s *Site) limited(ctx context.Context, addr string) (bool, error) {
	return s.over(ctx, "signup-rl", addr, s.opts.RateLimit)
}

// getVerify is the link in the mail: a page with one button, so that mail
// scanners that fetch links do not use the token.
func (s *Site) getVerify(c *fiber.Ctx) error {
	tok := c.Query("token")
	r, err := scanRecord(s.db.QueryRow(c.UserContext(), `SELECT `+recordColumns+` WHERE token_hash = $1`, digest(tok)))
	if err != nil {
		return err
	}
	if r == nil || tok == "" {
		return s.render(c, 400, "message", badLink)
	}
	if r.Status != statusPending {
		return c.Redirect("/welcome", fiber.StatusSeeOther)
	}
	if !s.opts.Now().Before(r.ExpiresAt) {
		return s.render(c, 410, "message", expiredLink)
	}
	return s.render(c, 200, "verify", map[string]string{"Token": tok, "Shop": r.ShopName, "Host": r.Slug + "." + s.opts.BaseDomain})
}

var (
	badLink = &message{Heading: "This link does not work", Text: "The confirmation link is incomplete or unknown. Copy the whole link from the email, or sign up again.",
		Link: "/signup", LinkText: "Sign up"}
	expiredLink = &message{Heading: "This link has expired", Text: "Confirmation links work for 24 hours. Please sign up again.",
		Link: "/signup", LinkText: "Sign up"}
)

// postVerify uses the token: the sign-up becomes verified, which claims its
// subdomain, and its shop is started. Using the token again changes
// nothing: it leads to the waiting page.
func (s *Site) postVerify(c *fiber.Ctx) error {
	ctx := c.UserContext()
	tok := c.FormValue("token")
	progress, progressSum := newToken()
	var (
		r      *record
		status int
		page   *message
	)
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		r, err = scanRecord(tx.QueryRow(ctx, `SELECT `+recordColumns+` WHERE token_hash = $1 FOR UPDATE`, digest(tok)))
		switch {
		case err != nil:
			return err
		case r == nil || tok == "":
			status, page = 400, badLink
			return nil
		case r.Status != statusPending:
			return nil
		case !s.opts.Now().Before(r.ExpiresAt):
			status, page = 410, expiredLink
			return nil
		}
		taken, err := slugTaken(ctx, tx, r.Slug)
		if err != nil {
			return err
		}
		if !taken {
			_, err = tx.Exec(ctx, `UPDATE signups SET status = 'verified', verified_at = now(), progress_hash = $2 WHERE id = $1`, r.ID, progressSum)
		}
		if taken || isUniqueViolation(err) {
			status, page = 409, &message{Heading: "That subdomain was taken",
				Text: r.Slug + "." + s.opts.BaseDomain + " went to another shop before you confirmed. Please sign up again with another subdomain.",
				Link: "/signup", LinkText: "Sign up"}
			return errTaken
		}
		return err
	})
	if errors.Is(err, errTaken) {
		// The claim failed; the record stays pending and expires.
		err = nil
	}
	if err != nil {
		return err
	}
	if page != nil {
		return s.render(c, status, "message", page)
	}
	if r.Status == statusPending {
		c.Cookie(&fiber.Cookie{Name: progressCookie, Value: progress, Path: "/welcome", HTTPOnly: true, Secure: s.opts.Secure,
			SameSite: fiber.CookieSameSiteLaxMode, Expires: s.opts.Now().Add(TokenTTL)})
		s.start(r.ID)
	}
	return c.Redirect("/welcome", fiber.StatusSeeOther)
}

var errTaken = errors.New("subdomain taken")

// getWelcome waits for the shop of the browser's verified sign-up, then
// signs the founder into its back office through a single-use handoff.
func (s *Site) getWelcome(c *fiber.Ctx) error {
	ctx := c.UserContext()
	tok := c.Cookies(progressCookie)
	var r *record
	if tok != "" {
		var err error
		if r, err = scanRecord(s.db.QueryRow(ctx, `SELECT `+recordColumns+` WHERE progress_hash = $1`, digest(tok))); err != nil {
			return err
		}
	}
	if r == nil {
		return s.render(c, 200, "message", &message{Heading: "Your email is confirmed",
			Text: "If your shop is ready, sign in to its back office at /admin/ on your shop's address with the email and password you chose."})
	}
	shopURL := s.opts.TenantURL(r.Slug)
	switch {
	case r.Status == statusFailed:
		return s.render(c, 200, "message", &message{Heading: "We could not create your shop",
			Text: "Something went wrong creating " + r.Slug + "." + s.opts.BaseDomain + ". Please sign up again, perhaps with another subdomain.",
			Link: "/signup", LinkText: "Sign up"})
	case r.Status != statusActive:
		return s.render(c, 200, "message", &message{Heading: "Your shop is being created",
			Text:    "We are setting up " + r.ShopName + " at " + r.Slug + "." + s.opts.BaseDomain + ". This page moves on by itself in a few seconds.",
			Refresh: "/welcome", RefreshAfter: 1})
	case r.HandedOffAt != nil || r.TenantID == nil:
		return s.render(c, 200, "message", &message{Heading: "Your shop is ready",
			Text: "Sign in to your back office with the email and password you chose.", Link: shopURL + "/admin/sign-in", LinkText: "Sign in"})
	}
	staffID, err := s.ownerID(ctx, r)
	if err != nil {
		return err
	}
	handoff, err := admin.IssueHandoff(ctx, s.opts.Redis, s.opts.RedisPrefix, *r.TenantID, staffID, handoffTTL)
	if err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, `UPDATE signups SET handed_off_at = now() WHERE id = $1 AND handed_off_at IS NULL`, r.ID)
	if err != nil {
		return fmt.Errorf("record handoff: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return c.Redirect("/welcome", fiber.StatusSeeOther) // another tab took it
	}
	c.Cookie(&fiber.Cookie{Name: progressCookie, Value: "", Path: "/welcome", HTTPOnly: true, Secure: s.opts.Secure,
		Expires: time.Unix(0, 0).UTC()})
	link := shopURL + admin.HandoffPath + "?token=" + url.QueryEscape(handoff)
	return s.render(c, 200, "message", &message{Heading: "Your shop is ready",
		Text: r.ShopName + " is live at " + shopURL + ". Taking you to its back office…", Link: link, LinkText: "Open your back office",
		Refresh: link})
}

// ownerID is the founder's staff id in their shop.
func (s *Site) ownerID(ctx context.Context, r *record) (int64, error) {
	var id int64
	err := s.prov.InTenant(ctx, r.Slug, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		id, err = admin.OwnerID(ctx, tx, r.Email)
		return err
	})
	if err == nil && id == 0 {
		err = fmt.Errorf("sign-up %d: the shop has no owner %s", r.ID, r.Email)
	}
	return id, err
}
