// Package storefront is every tenant's built-in shop site: server-rendered
// pages at / and the original StartupWebApp frontend's page paths (/login,
// /cart, /checkout/confirm, /account/, ...), so the links the platform puts
// into mail and Stripe redirects land on a working page when a tenant's
// frontend origin is its own host.
//
// Pages run the API's own endpoints in-process (tenant/account and
// tenant/shop hand them out by name) on the page request, whose forms post
// the API's field names, and render their JSON answers: one implementation
// of every rule, mail and message for both front ends, and the same
// session and cookies, so a member signed in here is signed in for the API.
// Every form works without script (POST, then a redirect to a GET page);
// a small script only makes some of them quicker.
package storefront

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/analytics"
	"github.com/startupwebapp/platform/tenant/shop"
)

//go:embed templates/*
var templateFS embed.FS

//go:embed assets/*
var assetFS embed.FS

// Options configures the storefront.
type Options struct {
	Account   *account.App
	Shop      *shop.App
	Analytics *analytics.App
	// CheckoutOrigins are the payment pages a checkout form may redirect
	// to (the CSP form-action); default Stripe Checkout's.
	CheckoutOrigins []string
	Log             *slog.Logger
}

// App is the storefront; it implements server.App.
type App struct {
	acct      *account.App
	shop      *shop.App
	analytics *analytics.App
	log       *slog.Logger
	csp       string

	pages  map[string]*template.Template
	assets map[string]asset // by fingerprinted name
	urls   map[string]string
	// pagePaths are the paths of the pages and forms (ErrorPage).
	pagePaths map[string]bool

	mu     sync.Mutex
	brands map[int64]brandEntry
}

type asset struct {
	body []byte
	typ  string
}

type brandEntry struct {
	generation int64
	b          brand
}

// New returns the storefront. Account, Shop and Analytics are required.
func New(o Options) (*App, error) {
	if o.Account == nil || o.Shop == nil || o.Analytics == nil {
		return nil, fmt.Errorf("storefront: Options.Account, Shop and Analytics are required")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if len(o.CheckoutOrigins) == 0 {
		o.CheckoutOrigins = []string{"https://checkout.stripe.com"}
	}
	a := &App{acct: o.Account, shop: o.Shop, analytics: o.Analytics, log: o.Log,
		assets: map[string]asset{}, urls: map[string]string{}, pagePaths: map[string]bool{}, brands: map[int64]brandEntry{}}
	a.csp = "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; " +
		"connect-src 'self'; form-action 'self' " + strings.Join(o.CheckoutOrigins, " ") +
		"; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
	files, err := fs.Glob(assetFS, "assets/*")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		body, err := assetFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		base := path.Base(f)
		ext := path.Ext(base)
		name := strings.TrimSuffix(base, ext) + "-" + hex.EncodeToString(sum[:6]) + ext
		a.assets[name] = asset{body: body, typ: mime.TypeByExtension(ext)}
		a.urls[base] = "/_/" + name
	}
	if a.pages, err = parsePages(); err != nil {
		return nil, err
	}
	return a, nil
}

// brand returns the tenant's resolved branding, recomputed when the
// tenant's registry row changes.
func (a *App) brand(t *directory.Tenant) brand {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.brands[t.ID]; ok && e.generation == t.Generation {
		return e.b
	}
	b := brandOf(t)
	a.brands[t.ID] = brandEntry{generation: t.Generation, b: b}
	return b
}

// Mount registers the pages. The API prefixes (/user, /order,
// /clientevent) and /admin are never touched: every path here is a page
// of the original frontend or lives under /_/ and /img/.
func (a *App) Mount(r fiber.Router) {
	r.Get("/_/:file", a.serveAsset)
	r.Get("/img/product/:file", a.productImage)

	page := func(p string, get fiber.Handler) {
		a.pagePaths[p] = true
		r.Get(p, a.guard, get)
	}
	form := func(p string, post fiber.Handler, guards ...fiber.Handler) {
		a.pagePaths[p] = true
		r.Post(p, append(append([]fiber.Handler{a.guard}, guards...), post)...)
	}
	page("/", a.home)
	page("/index.html", a.home)
	page("/products", a.products)
	page("/product", a.product)
	form("/product", a.addToCart)
	page("/cart", a.cart)
	form("/cart", a.cartPost)
	page("/checkout/confirm", a.confirm)
	form("/checkout/confirm", a.confirmPost)
	page("/checkout/success", a.success)
	page("/login", a.login)
	form("/login", a.loginPost, a.acct.Guard("login")...)
	form("/logout", a.logoutPost)
	page("/create-account", a.createAccount)
	form("/create-account", a.createAccountPost, a.acct.Guard("create-account")...)
	page("/forgot-username", a.forgotUsername)
	form("/forgot-username", a.forgotUsernamePost, a.acct.Guard("forgot-username")...)
	page("/reset-password", a.resetPassword)
	form("/reset-password", a.resetPasswordPost, a.acct.Guard("reset-password")...)
	page("/set-new-password", a.setNewPassword)
	form("/set-new-password", a.setNewPasswordPost, a.acct.Guard("set-new-password")...)
	r.Get("/account", func(c *fiber.Ctx) error { return c.Redirect("/account/", http.StatusMovedPermanently) })
	page("/account/", a.account)
	form("/account/", a.accountPost, a.acct.Guard("verify-email-address-response")...)
	page("/account/order", a.order)
	page("/account/edit-my-information", a.editInformation)
	form("/account/edit-my-information", a.editInformationPost, a.acct.Guard("update-my-information")...)
	page("/account/edit-communication-preferences", a.editPreferences)
	form("/account/edit-communication-preferences", a.editPreferencesPost, a.acct.Guard("update-communication-preferences")...)
	page("/account/change-password", a.changePassword)
	form("/account/change-password", a.changePasswordPost, a.acct.Guard("change-my-password")...)
	page("/account/email-unsubscribe", a.unsubscribe)
	form("/account/email-unsubscribe", a.unsubscribePost, a.acct.Guard("email-unsubscribe-confirm")...)
	page("/about", a.static("about", "About us"))
	page("/contact", a.contact)
	form("/contact", a.contactPost, a.acct.Guard("put-chat-message")...)
	page("/privacy-policy", a.static("privacy", "Privacy policy"))
	page("/terms-of-sale", a.static("terms-of-sale", "Terms of sale"))
	page("/terms-of-use", a.termsOfUse)
	form("/terms-of-use", a.termsOfUsePost, a.acct.Guard("terms-of-use-agree")...)
	form("/cookie-notice", a.cookieNoticePost)
}

// guard sets the headers of every page: the content security policy
// (no inline script or style anywhere), and no caching of pages, which
// carry a member's data and a CSRF token.
func (a *App) guard(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", a.csp)
	c.Set(fiber.HeaderCacheControl, "no-store")
	err := c.Next()
	if st, ok := err.(*apiStatus); ok {
		return a.errorPage(c, st.status)
	}
	// A guard of the API (a rate limit, a NUL byte) answered in the API's
	// JSON: a browser gets the page instead.
	resp := c.Response()
	if err == nil && resp.StatusCode() >= 400 && bytes.HasPrefix(resp.Header.ContentType(), []byte(fiber.MIMEApplicationJSON)) {
		status := resp.StatusCode()
		resp.ResetBody()
		return a.errorPage(c, status)
	}
	return err
}

func (a *App) serveAsset(c *fiber.Ctx) error {
	name := c.Params("file")
	if as, ok := a.assets[name]; ok {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
		c.Set(fiber.HeaderContentType, as.typ)
		return c.Send(as.body)
	}
	if h, ok := strings.CutPrefix(name, "theme-"); ok && strings.HasSuffix(h, ".css") {
		b := a.brand(server.Tenant(c))
		// A page rendered before the branding changed asks for the old
		// fingerprint: it gets the current colours, not cached for long.
		if strings.TrimSuffix(h, ".css") == b.ThemeHash {
			c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
		} else {
			c.Set(fiber.HeaderCacheControl, "no-cache")
		}
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		return c.SendString(b.Theme)
	}
	return fiber.ErrNotFound
}

// productImage draws a placeholder for the catalogue's site-relative
// images (/img/product/...), which belonged to the original frontend's
// files: a tenant that deploys its own site serves the real ones first.
func (a *App) productImage(c *fiber.Ctx) error {
	name := c.Params("file")
	label := strings.TrimSuffix(name, path.Ext(name))
	label = strings.NewReplacer("_", " ", "-", " ").Replace(label)
	words := strings.Fields(label)
	for len(words) > 0 && (words[len(words)-1] == "2" || words[len(words)-1] == "main" || words[len(words)-1] == "thumbnail") {
		words = words[:len(words)-1]
	}
	if len(words) > 3 {
		words = words[:3]
	}
	var h uint32
	for _, ch := range name {
		h = h*31 + uint32(ch)
	}
	hue := h % 360
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300" role="img"><rect width="400" height="300" fill="hsl(%d,45%%,88%%)"/>`+
		`<circle cx="200" cy="125" r="60" fill="hsl(%d,45%%,70%%)"/><text x="200" y="245" font-family="sans-serif" font-size="26" text-anchor="middle" fill="#333">`,
		hue, hue)
	template.HTMLEscape(&buf, []byte(strings.Join(words, " ")))
	buf.WriteString(`</text></svg>`)
	c.Set(fiber.HeaderContentType, "image/svg+xml")
	c.Set(fiber.HeaderCacheControl, "public, max-age=86400")
	return c.Send(buf.Bytes())
}

// token returns the request's CSRF token for the forms of the page,
// setting the csrftoken cookie when it is missing or stale.
func token(c *fiber.Ctx) string { return csrf.Ensure(c) }
