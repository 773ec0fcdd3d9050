package account

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/cart"
)

// APIVersion is the value of "user-api-version" in every /user/* answer.
const APIVersion = "0.0.1"

// RootText is the body of GET /user/.
const RootText = "Hello, you're at the user API (version 0.0.1) root. Nothing to see here..."

// DB runs fn with a connection to a tenant's database; *pools.Manager is one.
type DB interface {
	Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error
}

// KeyFunc returns a tenant's secret key (its decoded session key);
// csrf.BundleKey is one. It signs codes, tokens and cookies and keys the
// sessions' password-hash check.
type KeyFunc func(ctx context.Context, t *directory.Tenant) ([]byte, error)

// KeyringFunc returns a tenant's keys, newest first (csrf.BundleKeyring is
// one): the first signs, and codes and tokens signed under the others (keys
// a rotation replaced) still verify.
type KeyringFunc func(ctx context.Context, t *directory.Tenant) ([][]byte, error)

// Ring is f as a keyring of one key.
func (f KeyFunc) Ring() KeyringFunc {
	return func(ctx context.Context, t *directory.Tenant) ([][]byte, error) {
		k, err := f(ctx, t)
		if err != nil {
			return nil, err
		}
		return [][]byte{k}, nil
	}
}

// Options configures the accounts app.
type Options struct {
	DB  DB
	Key KeyFunc
	// Keyring, when set, is used in place of Key, so mailed links and
	// unsubscribe tokens outlive a rotation of the tenant's key.
	Keyring KeyringFunc
	// Sessions is the store behind the sessions middleware; it ends a
	// member's other sessions when the password changes.
	Sessions *sessions.Store
	// Limiter applies the login, create_account, reset_password, chat and
	// notify_me limits; nil means no limits.
	Limiter *ratelimit.Limiter
	// Hasher hashes passwords (default NewHasher(DefaultArgon2)).
	Hasher *Hasher
	// DefaultFrom is the From of a tenant's mail when its settings name none.
	DefaultFrom string
	Log         *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

// App is the /user app; it implements server.App.
type App struct {
	db       DB
	keyring  KeyringFunc
	sessions *sessions.Store
	limiter  *ratelimit.Limiter
	hasher   *Hasher
	from     string
	log      *slog.Logger
	now      func() time.Time
}

// New returns the accounts app. DB, Key (or Keyring) and Sessions are required.
func New(o Options) *App {
	if o.DB == nil || (o.Key == nil && o.Keyring == nil) || o.Sessions == nil {
		panic("account: Options.DB, Key and Sessions are required")
	}
	if o.Keyring == nil {
		o.Keyring = o.Key.Ring()
	}
	if o.Hasher == nil {
		o.Hasher = NewHasher(DefaultArgon2)
	}
	if o.DefaultFrom == "" {
		o.DefaultFrom = "StartUpWebApp <noreply@localhost>"
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &App{db: o.DB, keyring: o.Keyring, sessions: o.Sessions, limiter: o.Limiter, hasher: o.Hasher,
		from: o.DefaultFrom, log: o.Log, now: o.Now}
}

// Mount registers the /user routes. Views answer every method, as
// upstream's did; form fields are read from POST bodies only.
func (a *App) Mount(r fiber.Router) {
	r.Get("/user/", a.root)
	for _, rt := range a.routes() {
		r.All("/user/"+rt.name, append(a.guard(rt), rt.h)...)
	}
}

type route struct {
	name  string
	limit string
	key   ratelimit.KeyFunc
	h     fiber.Handler
}

func (a *App) routes() []route {
	return []route{
		{"token", "", nil, a.token},
		{"logged-in", "", nil, a.loggedIn},
		{"login", "login", ratelimit.ByClientIP, a.login},
		{"logout", "", nil, a.logout},
		{"account-content", "", nil, a.accountContent},
		{"create-account", "create_account", ratelimit.ByClientIP, a.createAccount},
		{"verify-email-address", "", nil, a.verifyEmailAddress},
		{"verify-email-address-response", "", nil, a.verifyEmailAddressResponse},
		{"reset-password", "reset_password", postField("username"), a.resetPassword},
		{"set-new-password", "", nil, a.setNewPassword},
		{"forgot-username", "", nil, a.forgotUsername},
		{"update-my-information", "", nil, a.updateMyInformation},
		{"update-communication-preferences", "", nil, a.updateCommunicationPreferences},
		{"change-my-password", "", nil, a.changeMyPassword},
		{"email-unsubscribe-lookup", "", nil, a.unsubscribeLookup},
		{"email-unsubscribe-confirm", "", nil, a.unsubscribeConfirm},
		{"email-unsubscribe-why", "", nil, a.unsubscribeWhy},
		{"email-unsubscribe-one-click", "", nil, a.unsubscribeOneClick},
		{"terms-of-use-agree-check", "", nil, a.termsCheck},
		{"terms-of-use-agree", "", nil, a.termsAgree},
		{"put-chat-message", "chat", ratelimit.ByClientIP, a.putChatMessage},
		{"pythonabot-notify-me", "notify_me", ratelimit.ByClientIP, a.notifyMe},
	}
}

// guard is the middleware in front of a route: its rate limit, if any, and
// the NUL-byte refusal.
func (a *App) guard(rt route) []fiber.Handler {
	handlers := []fiber.Handler{refuseNUL}
	if rt.limit != "" && a.limiter != nil {
		handlers = append([]fiber.Handler{a.limiter.Handler(rt.limit, rt.key)}, handlers...)
	}
	return handlers
}

// Endpoint returns the handler of /user/<name>, or nil for an unknown
// name. The built-in storefront runs these in-process on its own page
// requests (its forms post the API's field names) and renders their
// answers, so pages and API share every rule, mail and message. The
// handler writes its JSON answer into c; Guard gives what must run before
// it.
func (a *App) Endpoint(name string) fiber.Handler {
	for _, rt := range a.routes() {
		if rt.name == name {
			return rt.h
		}
	}
	return nil
}

// Guard returns the middleware /user/<name> runs before its handler (the
// endpoint's rate limit and the NUL-byte refusal), for a page route that
// calls Endpoint(name) to mount in front of its own handler, so a form
// post counts against the same limit as the API call.
func (a *App) Guard(name string) []fiber.Handler {
	for _, rt := range a.routes() {
		if rt.name == name {
			return a.guard(rt)
		}
	}
	return nil
}

// postField keys a limit by a field of the POST body (missing or empty: one
// shared bucket, as upstream).
func postField(name string) ratelimit.KeyFunc {
	return func(c *fiber.Ctx) string { return string(c.Request().PostArgs().Peek(name)) }
}

func (a *App) root(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "max-age=0, no-cache, no-store, must-revalidate, private")
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	return c.SendString(RootText)
}

// refuseNUL answers 400 for a form or query value holding a NUL byte:
// PostgreSQL cannot store or compare one (upstream answered 500, §12 Q16).
func refuseNUL(c *fiber.Ctx) error {
	bad := false
	check := func(k, v []byte) {
		if bytes.IndexByte(k, 0) >= 0 || bytes.IndexByte(v, 0) >= 0 {
			bad = true
		}
	}
	c.Request().PostArgs().VisitAll(check)
	c.Context().QueryArgs().VisitAll(check)
	if bad {
		return server.Fail(c, fiber.StatusBadRequest, "field-invalid", "a form or query value holds a NUL character")
	}
	return c.Next()
}

// text is a form value as a string; bytes that are not UTF-8 become
// U+FFFD, as Django decoded them, so they never reach the database.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// reply writes a /user JSON answer with its API version.
func reply(c *fiber.Ctx, m fiber.Map) error {
	m["user-api-version"] = APIVersion
	return c.JSON(m)
}

// errMissing is a required form field that was not sent: upstream
// answered 500; we answer 400 (§12 Q16).
type errMissing struct{ field string }

func (e errMissing) Error() string { return "missing form field " + e.field }

// fields reads required POST fields, in order.
func fields(c *fiber.Ctx, names ...string) (map[string]string, error) {
	args := c.Request().PostArgs()
	out := make(map[string]string, len(names))
	for _, n := range names {
		if !args.Has(n) {
			return nil, errMissing{n}
		}
		out[n] = text(args.Peek(n))
	}
	return out, nil
}

// postValue reads an optional POST field.
func postValue(c *fiber.Ctx, name string) (string, bool) {
	args := c.Request().PostArgs()
	if !args.Has(name) {
		return "", false
	}
	return text(args.Peek(name)), true
}

// fail turns a handler error into the answer: 400 for a missing field,
// otherwise the server's error handler (500 or 503, detail logged only).
func fail(c *fiber.Ctx, err error) error {
	var m errMissing
	if errors.As(err, &m) {
		return server.Fail(c, fiber.StatusBadRequest, "field-required", "missing form field: "+m.field)
	}
	return err
}

// req is what a handler needs about its request: tenant, signer, keys.
type req struct {
	a      *App
	c      *fiber.Ctx
	ctx    context.Context
	tenant *directory.Tenant
	key    []byte
	keys   [][]byte // key, then those rotations replaced
	signer *Signer
}

func (a *App) request(c *fiber.Ctx) (*req, error) {
	t := server.Tenant(c)
	keys, err := a.keyring(c.UserContext(), t)
	if err != nil {
		return nil, fmt.Errorf("tenant key: %w", err)
	}
	if len(keys) == 0 || len(keys[0]) == 0 {
		return nil, errors.New("tenant key is empty")
	}
	return &req{a: a, c: c, ctx: c.UserContext(), tenant: t, key: keys[0], keys: keys, signer: NewSigner(keys[0], keys[1:]...).WithClock(a.now)}, nil
}

// queue writes one of the account mails to the outbox in tx.
func (r *req) queue(tx pgx.Tx, kind string, to []string, d emailData) error {
	return r.a.queueMail(r.ctx, tx, r.tenant, kind, templates[kind], to, d)
}

// conn runs fn on the tenant's database.
func (a *App) conn(r *req, fn func(*pgxpool.Conn) error) error {
	return a.db.Do(r.ctx, r.tenant, fn)
}

// tx runs fn in a transaction on the tenant's database.
func (a *App) tx(r *req, fn func(pgx.Tx) error) error {
	return a.conn(r, func(c *pgxpool.Conn) error {
		return pgx.BeginFunc(r.ctx, c, fn)
	})
}

// signedIn returns the request's member, or nil when anonymous. A session
// whose account is gone, inactive, without a member row (§12 Q17), or
// whose password changed since it signed in is signed out (§1.6).
func (a *App) signedIn(r *req) (*member, error) {
	sess := sessions.Get(r.c)
	if sess.UserID == 0 {
		return nil, nil
	}
	var m *member
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var err error
		m, err = memberByAccount(r.ctx, c, sess.UserID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return holds(r, sess, m), nil
}

// holds applies signedIn's rule to the member read for the session's
// account: the member when the session stands, else nil with the session
// signed out.
func holds(r *req, sess *sessions.Session, m *member) *member {
	if m == nil || !m.IsActive || !sess.AuthMatches(r.key, m.PasswordHash) {
		sess.Flush()
		return nil
	}
	return m
}

// AccountID is the signed-in account of the request, 0 when anonymous,
// with the checks of the accounts app.
func (a *App) AccountID(c *fiber.Ctx) int64 {
	r, err := a.request(c)
	if err != nil {
		a.log.Error("account lookup", "err", err, "request_id", server.RequestID(c))
		return 0
	}
	m, err := a.signedIn(r)
	if err != nil || m == nil {
		return 0
	}
	return m.AccountID
}

// SessionClaim is the shop's Options.Account: the session's account with
// the accounts app's check of its password hash, which the shop runs on
// the row it reads in the same batch as the cart (no round trip of its
// own). A session that fails the check is signed out, as signedIn does.
func (a *App) SessionClaim(c *fiber.Ctx) cart.Claim {
	sess := sessions.Get(c)
	if sess.UserID == 0 {
		return cart.Claim{}
	}
	r, err := a.request(c)
	if err != nil {
		a.log.Error("account lookup", "err", err, "request_id", server.RequestID(c))
		return cart.Claim{}
	}
	return cart.Claim{AccountID: sess.UserID, Check: func(passwordHash string) bool {
		if !sess.AuthMatches(r.key, passwordHash) {
			sess.Flush()
			return false
		}
		return true
	}}
}

// logIn makes the session the member's: a new session id (no fixation), a
// new CSRF token, the cookie lifetime of remember_me, and the hash that
// ends the session when the password changes.
func (a *App) logIn(r *req, m *member, remember bool) error {
	if err := sessions.Regenerate(r.c); err != nil {
		return err
	}
	sess := sessions.Get(r.c)
	sess.Flush()
	sess.UserID = m.AccountID
	sess.AuthHash = sessions.AuthHash(r.key, m.PasswordHash)
	sess.SetPersistent(remember)
	rotateCSRF(r.c)
	// Stored now, not after the handler: a sign-in whose session cannot be
	// written (Redis unreachable) must fail rather than answer success to a
	// visitor who is not signed in.
	return sessions.Save(r.c)
}

// isoTime formats a time as the contract's UTC ISO-8601: milliseconds
// when there is a sub-second part, none otherwise.
func isoTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

func isoTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return isoTime(*t)
}
