// Package shop is the /order/* API of StartupWebApp (docs/api.md §5,
// §7, §11): catalogue, cart, shipping, discount codes, Stripe Checkout and
// orders. Carts live in tenant/cart; Stripe clients and webhook signatures
// in platform/payments; the confirmation e-mail goes through platform/mail's
// outbox in the order's own transaction.
//
// Every JSON answer carries "order-api-version": "0.0.1" (except the Stripe
// webhook) and every application outcome is HTTP 200, as the unchanged
// frontend expects. Money is decimal end to end and written as two-decimal
// strings; totals are computed here, never taken from the client.
package shop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/platform/usage"
	"github.com/startupwebapp/platform/tenant/cart"
)

// APIVersion is the value of "order-api-version".
const APIVersion = "0.0.1"

// RootText is the body of GET /order/.
const RootText = "Hello, you're at the order API (version 0.0.1) root. Nothing to see here..."

// DB runs fn with a connection to a tenant's database; *pools.Manager is one.
type DB interface {
	Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error
}

// KeyFunc returns the tenant's signing key (its session key); csrf.BundleKey
// is one. It signs the an_ct cookie and prospects' unsubscribe tokens.
type KeyFunc func(ctx context.Context, t *directory.Tenant) ([]byte, error)

// Options configures the shop.
type Options struct {
	// Pools gives access to tenant databases.
	Pools DB
	// Payments hands out the tenant's Stripe client and keys.
	Payments *payments.Clients
	// Key is the tenant's signing key.
	Key KeyFunc
	// Keyring, when set, is used in place of Key: its first key signs, and
	// an an_ct cookie signed under one a rotation replaced still names its
	// cart (account.KeyringFunc; csrf.BundleKeyring is one).
	Keyring func(ctx context.Context, t *directory.Tenant) ([][]byte, error)
	// Account returns the account the request's session claims, checked
	// by the shop against the account's row in the batch that reads the
	// cart. Default: the session's user (platform/sessions), unchecked.
	// The accounts app should pass its SessionClaim, which checks the
	// session's password hash.
	Account func(c *fiber.Ctx) cart.Claim
	// CatalogCacheBytes bounds the catalogue answers kept in memory across
	// tenants (default DefaultCatalogCacheBytes; negative: no cache), and
	// CatalogFresh is how long a tenant's catalogue version, once read, is
	// trusted (default DefaultCatalogFresh): a catalogue write shows on
	// every replica within it.
	CatalogCacheBytes int64
	CatalogFresh      time.Duration
	// Metrics receives the catalogue cache's counters; nil: not collected.
	Metrics prometheus.Registerer
	Log     *slog.Logger
	// Registry, when set, is where orders past the plan's orders_per_month
	// are flagged (quota.go); nil: they are not.
	Registry Registry
	// Usage counts every order placed, once its transaction has committed;
	// nil counts nothing.
	Usage usage.Recorder
}

// App is the /order app; it implements server.App.
type App struct {
	db       DB
	payments *payments.Clients
	keyring  func(ctx context.Context, t *directory.Tenant) ([][]byte, error)
	account  func(c *fiber.Ctx) cart.Claim
	catalog  *catalogCache // nil: catalogue answers are always built
	log      *slog.Logger
	registry Registry
	flags    flagged
	usage    usage.Recorder
}

// New returns the shop app.
func New(o Options) *App {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Account == nil {
		o.Account = sessionAccount
	}
	if o.Keyring == nil {
		key := o.Key
		o.Keyring = func(ctx context.Context, t *directory.Tenant) ([][]byte, error) {
			k, err := key(ctx, t)
			return [][]byte{k}, err
		}
	}
	a := &App{db: o.Pools, payments: o.Payments, keyring: o.Keyring, account: o.Account, log: o.Log, registry: o.Registry,
		usage: usage.Or(o.Usage)}
	if o.CatalogCacheBytes >= 0 {
		a.catalog = newCatalogCache(cmp.Or(o.CatalogCacheBytes, DefaultCatalogCacheBytes), cmp.Or(o.CatalogFresh, DefaultCatalogFresh), o.Metrics, o.Log)
	}
	return a
}

// key is the tenant's signing key, the first of its keyring.
func (a *App) key(ctx context.Context, t *directory.Tenant) ([]byte, error) {
	keys, err := a.keyring(ctx, t)
	if err != nil {
		return nil, err
	}
	return firstKey(keys)
}

func firstKey(keys [][]byte) ([]byte, error) {
	if len(keys) == 0 || len(keys[0]) == 0 {
		return nil, errors.New("the key is empty")
	}
	return keys[0], nil
}

func sessionAccount(c *fiber.Ctx) cart.Claim {
	s, err := sessions.Load(c)
	if s == nil || err != nil {
		return cart.Claim{}
	}
	return cart.Claim{AccountID: s.UserID}
}

var identifierRE = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// Mount registers the /order routes. Fixed names come first, then
// /order/product/<identifier>, then the catalogue-wide catch-all
// /order/<order identifier> (§1.1). Identifiers other than ASCII letters and
// digits are 404. Views answer every method, as upstream; form fields are
// read only from POST bodies.
func (a *App) Mount(r fiber.Router) {
	r.All("/order/", a.root)
	for _, f := range a.fixed() {
		r.All("/order/"+f.name, f.h)
	}
	r.All("/order/product/:identifier", func(c *fiber.Ctx) error {
		if !identifierRE.MatchString(c.Params("identifier")) {
			return fiber.ErrNotFound
		}
		return a.product(c, c.Params("identifier"))
	})
	r.All("/order/:identifier", func(c *fiber.Ctx) error {
		if !identifierRE.MatchString(c.Params("identifier")) {
			return fiber.ErrNotFound
		}
		return a.orderDetail(c, c.Params("identifier"))
	})
}

type endpoint struct {
	name string
	h    fiber.Handler
}

// fixed lists the fixed names under /order/, in routing order.
func (a *App) fixed() []endpoint {
	return []endpoint{
		{"products", a.products},
		{"cart-items", a.cartItems},
		{"cart-shipping-methods", a.cartShippingMethods},
		{"cart-totals", a.cartTotals},
		{"cart-update-sku-quantity", a.cartUpdateSKUQuantity},
		{"cart-remove-sku", a.cartRemoveSKU},
		{"cart-update-shipping-method", a.cartUpdateShippingMethod},
		{"cart-delete-cart", a.cartDeleteCart},
		{"cart-add-product-sku", a.cartAddProductSKU},
		{"cart-discount-codes", a.cartDiscountCodes},
		{"cart-apply-discount-code", a.cartApplyDiscountCode},
		{"cart-remove-discount-code", a.cartRemoveDiscountCode},
		{"checkout-allowed", a.checkoutAllowed},
		{"confirm-items", a.confirmItems},
		{"confirm-shipping-method", a.confirmShippingMethod},
		{"confirm-totals", a.confirmTotals},
		{"confirm-discount-codes", a.confirmDiscountCodes},
		{"create-checkout-session", a.createCheckoutSession},
		{"checkout-session-success", a.checkoutSessionSuccess},
		{"stripe-webhook", a.stripeWebhook},
		{"anonymous-email-address-payment-lookup", a.anonymousEmailLookup},
		{"change-confirmation-email-address", a.changeConfirmationEmail},
	}
}

// Endpoint returns the handler of /order/<name>, one of the fixed names
// Mount registers, or nil. The built-in storefront runs these in-process
// on its own page requests (its forms post the API's field names) and
// renders their answers, so the pages and the API share every rule and
// message. Like the route, the handler writes its JSON answer into c.
func (a *App) Endpoint(name string) fiber.Handler {
	for _, f := range a.fixed() {
		if f.name == name {
			return f.h
		}
	}
	return nil
}

// ProductEndpoint is Endpoint for O2, the product with the given
// identifier.
func (a *App) ProductEndpoint(ident string) fiber.Handler {
	return func(c *fiber.Ctx) error { return a.product(c, ident) }
}

// OrderEndpoint is Endpoint for O20, the order with the given identifier
// and the order page's access rule.
func (a *App) OrderEndpoint(ident string) fiber.Handler {
	return func(c *fiber.Ctx) error { return a.orderDetail(c, ident) }
}

func (a *App) root(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "max-age=0, no-cache, no-store, must-revalidate, private")
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	return c.SendString(RootText)
}

// request is one handler's view of the tenant database and the visitor.
type request struct {
	a      *App
	c      *fiber.Ctx
	ctx    context.Context
	tenant *directory.Tenant
	conn   *pgxpool.Conn

	claim     cart.Claim // the session's account, read before the connection
	accountID int64      // the claim's account once it holds (who)
	key       []byte
	keys      [][]byte // key, then those rotations replaced
	keyErr    error

	resolved bool
	owner    cart.Owner
}

// newRequest reads what a request needs from outside the tenant database
// (the session's claim; the signing key from the secrets store) before any
// connection is taken, so none is held while they are fetched.
func (a *App) newRequest(c *fiber.Ctx) *request {
	rq := &request{a: a, c: c, ctx: c.UserContext(), tenant: server.Tenant(c)}
	rq.claim = a.account(c)
	rq.keys, rq.keyErr = a.keyring(rq.ctx, rq.tenant)
	if rq.keyErr == nil {
		rq.key, rq.keyErr = firstKey(rq.keys)
	}
	return rq
}

// with runs fn with a tenant connection; a pool that cannot give one in time
// answers 503.
func (a *App) with(c *fiber.Ctx, fn func(rq *request) error) error {
	rq := a.newRequest(c)
	return server.Conn(c, func(conn *pgxpool.Conn) error {
		rq.conn = conn
		return fn(rq)
	})
}

// withCatalog is with for the catalogue, which does not depend on who asks:
// the visitor is not resolved.
func (a *App) withCatalog(c *fiber.Ctx, fn func(rq *request) error) error {
	rq := &request{a: a, c: c, ctx: c.UserContext(), tenant: server.Tenant(c), keyErr: errNoVisitor}
	return server.Conn(c, func(conn *pgxpool.Conn) error {
		rq.conn = conn
		rq.resolved = true
		return fn(rq)
	})
}

// errNoVisitor is the signing-key error of a catalogue request.
var errNoVisitor = errors.New("catalogue requests do not resolve the visitor")

// conn runs fn with a tenant connection held only while fn runs. It
// reports false when none could be had in time: the 503 is then answered
// and the caller returns nil.
func conn(c *fiber.Ctx, fn func(conn *pgxpool.Conn) error) (bool, error) {
	ran := false
	err := server.Conn(c, func(conn *pgxpool.Conn) error {
		ran = true
		return fn(conn)
	})
	return ran, err
}

// signingKey returns the tenant's signing key.
func (rq *request) signingKey() ([]byte, error) {
	if rq.keyErr != nil {
		return nil, fmt.Errorf("tenant signing key: %w", rq.keyErr)
	}
	return rq.key, nil
}

// who resolves the visitor: a member (signed in, with a member row) or an
// anonymous visitor with the id from a valid an_ct cookie.
func (rq *request) who() (cart.Owner, error) {
	if rq.resolved {
		return rq.owner, nil
	}
	var m cart.Member
	if rq.claim.AccountID > 0 {
		var err error
		if m, err = cart.MemberOf(rq.ctx, rq.conn, rq.claim.AccountID); err != nil {
			return cart.Owner{}, err
		}
	}
	return rq.resolve(m)
}

// resolve settles who the visitor is given the member read for the
// session's claim: the member when the claim holds, else the anonymous
// visitor of the an_ct cookie.
func (rq *request) resolve(m cart.Member) (cart.Owner, error) {
	rq.owner, rq.accountID = cart.Owner{}, 0
	if rq.claim.Holds(m) {
		rq.owner.MemberID, rq.accountID = m.ID, rq.claim.AccountID
	} else if rq.c.Cookies(cart.CookieName) != "" {
		if _, err := rq.signingKey(); err != nil {
			return cart.Owner{}, err
		}
		rq.owner.AnonymousID = cart.CookieID(rq.c, rq.keys...)
	}
	rq.resolved = true
	return rq.owner, nil
}

// currentCart returns the visitor's cart, false when there is none.
func (rq *request) currentCart() (cart.Cart, bool, error) {
	o, err := rq.who()
	if err != nil {
		return cart.Cart{}, false, err
	}
	return cart.Find(rq.ctx, rq.conn, o)
}

// readCart runs, in one round trip, the reads queue adds for the
// visitor's cart, which it names by its owner (cart.Of) before its id is
// known: for a signed-in visitor the member is read in the same batch and
// the session checked on the row read. Only when the claim does not hold
// (the password changed, the account was closed) is queue run again, on a
// second batch, for the anonymous cart. A visitor with no cart to name
// (anonymous, without a valid an_ct) reads nothing: queue is not run and
// its destinations keep their zero values, which mean "no cart".
func (rq *request) readCart(queue func(b *pgx.Batch, of cart.Of)) error {
	if !rq.resolved && rq.claim.AccountID > 0 {
		var m cart.Member
		b := &pgx.Batch{}
		cart.QueueMember(b, rq.claim.AccountID, &m)
		queue(b, cart.OfAccount(rq.claim.AccountID))
		if err := rq.conn.SendBatch(rq.ctx, b).Close(); err != nil {
			return err
		}
		if o, err := rq.resolve(m); err != nil || o.MemberID > 0 {
			return err
		}
	}
	o, err := rq.who()
	if err != nil {
		return err
	}
	of, ok := cart.OfOwner(o)
	if !ok {
		return nil
	}
	b := &pgx.Batch{}
	queue(b, of)
	return rq.conn.SendBatch(rq.ctx, b).Close()
}

// readContents is readCart for the cart's contents: its lines and,
// withTotals, what its totals depend on.
func (rq *request) readContents(withTotals bool) (cart.Contents, bool, error) {
	var r cart.Read
	err := rq.readCart(func(b *pgx.Batch, of cart.Of) { cart.QueueRead(b, of, withTotals, &r) })
	return r.Contents, r.Found, err
}

// reply writes a JSON object with the API version appended.
func reply(c *fiber.Ctx, o object) error {
	o = append(o, kv{"order-api-version", APIVersion})
	return c.JSON(o)
}

// badRequest answers a request the frontend never sends (a required form
// field missing): upstream answered 500, we answer 400 (§12 Q16).
func badRequest(c *fiber.Ctx, field string) error {
	return server.Fail(c, http.StatusBadRequest, "bad-request", field+" is required")
}

// formValue returns a POST form field and whether it was sent at all.
// Invalid UTF-8 and NUL bytes (which no column can hold) are dropped.
func formValue(c *fiber.Ctx, name string) (string, bool) {
	v, ok := rawFormValue(c, name)
	if ok && (strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v)) {
		v = strings.ReplaceAll(strings.ToValidUTF8(v, ""), "\x00", "")
	}
	return v, ok
}

func rawFormValue(c *fiber.Ctx, name string) (string, bool) {
	if c.Method() != fiber.MethodPost {
		return "", false
	}
	args := c.Request().PostArgs()
	if v := args.Peek(name); v != nil || args.Has(name) {
		return string(v), true
	}
	if f, err := c.MultipartForm(); err == nil && f != nil {
		if vs, ok := f.Value[name]; ok && len(vs) > 0 {
			return vs[0], true
		}
	}
	return "", false
}
