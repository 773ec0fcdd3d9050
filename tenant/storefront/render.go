package storefront

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/server"
)

// view is what every page template gets.
type view struct {
	Brand  brand
	Title  string
	Path   string
	CSRF   string
	Assets map[string]string
	// Header is the answer of GET /user/logged-in (U2).
	Header    *Obj
	LoggedIn  bool
	CartCount int64
	// Terms is the terms-of-use check of a signed-in member who has not
	// agreed to the newest version (nil otherwise).
	Terms        *Obj
	CookieNotice bool
	Notice       string
	Error        string
	Data         map[string]any
}

var funcs = template.FuncMap{
	"get":    get,
	"obj":    obj,
	"str":    str,
	"money":  money,
	"truthy": truthy,
	"number": number,
	"items":  func(v any) []Item { o, _ := v.(*Obj); return o.Items() },
	"date": func(v any) string {
		t, err := time.Parse(time.RFC3339Nano, str(v))
		if err != nil {
			return str(v)
		}
		return t.UTC().Format("January 2, 2006")
	},
	"fieldErrors": fieldErrors,
	"productURL": func(titleURL, ident any) string {
		return "/product?" + url.Values{"name": {str(titleURL)}, "id": {str(ident)}}.Encode()
	},
	"join": strings.Join,
	// nonzero is an amount that is not zero, else nil (a discount row
	// with nothing off is not shown).
	"nonzero": func(v any) any {
		if d, err := decimal.NewFromString(str(v)); err != nil || d.IsZero() {
			return nil
		}
		return v
	},
	// times is a line's subtotal: price times quantity, exactly.
	"times": func(price, qty any) string {
		p, err := decimal.NewFromString(str(price))
		if err != nil {
			return ""
		}
		return p.Mul(decimal.NewFromInt(number(qty))).StringFixed(2)
	},
	// lines splits catalogue text on the <br> tags the original frontend
	// inserted as HTML; the pieces are escaped like any other text.
	"lines": func(s string) []string {
		var out []string
		for _, p := range brRE.Split(s, -1) {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	},
}

var brRE = regexp.MustCompile(`(?i)(<br\s*/?>\s*)+|\n{2,}`)

// fieldErrors is the list of messages of a field's validation result: the
// contract writes true for a valid field and a list of {type,
// description} otherwise.
func fieldErrors(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range list {
		switch t := e.(type) {
		case *Obj:
			out = append(out, str(t.Get("description")))
		case []any: // O10's doubly nested quantity errors
			for _, x := range t {
				if o, ok := x.(*Obj); ok {
					out = append(out, str(o.Get("description")))
				}
			}
		default:
			out = append(out, str(t))
		}
	}
	return out
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.tmpl")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, fmt.Errorf("storefront: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes page name with the layout: it asks U2 for the header (who
// is signed in, the cart badge; it also refreshes csrftoken), U18 for a
// signed-in member's terms of use, and records the pageview.
func (a *App) render(c *fiber.Ctx, status int, name, title string, data map[string]any) error {
	t := a.pages[name]
	if t == nil {
		return fmt.Errorf("storefront: no page %s", name)
	}
	hdr, err := call(c, a.acct.Endpoint("logged-in"))
	if err != nil {
		return err
	}
	v := view{
		Brand: a.brand(server.Tenant(c)), Title: title, Path: c.Path(), CSRF: token(c),
		Assets: a.urls, Header: hdr, LoggedIn: truthy(hdr.Get("logged_in")),
		CartCount: number(hdr.Get("cart_item_count")), Data: data,
		Notice: notices[c.Query("notice")],
	}
	if v.LoggedIn {
		if tc, err := call(c, a.acct.Endpoint("terms-of-use-agree-check")); err == nil && tc.Get("terms_of_use_agree_check") == false {
			v.Terms = tc
		}
	} else {
		v.CookieNotice = c.Cookies("termsofserviceagreed") == ""
	}
	if msg, ok := data["error"].(string); ok {
		v.Error = msg
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("storefront: render %s: %w", name, err)
	}
	if c.Method() == fiber.MethodGet && status == http.StatusOK {
		a.recordVisit(c, hdr)
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(buf.Bytes())
}

// recordVisit records the pageview the original's page script sent, and
// the link event of an arrival from a mail or an ad.
func (a *App) recordVisit(c *fiber.Ctx, hdr *Obj) {
	u := c.BaseURL() + c.OriginalURL()
	anon := c.Cookies("anonymousclientevent")
	// A first visit gets its cookie from U2 in this very response.
	var ck fasthttp.Cookie
	ck.SetKey("anonymousclientevent")
	if c.Response().Header.Cookie(&ck) {
		anon = string(ck.Value())
	}
	if truthy(hdr.Get("log_client_events")) || hdr.Get("log_client_events") == nil {
		a.analytics.Pageview(c, u, anon, number(hdr.Get("client_event_id")))
	}
	mb, pr, em, ad := c.Query("mb_cd"), c.Query("pr_cd"), c.Query("em_cd"), c.Query("ad_cd")
	if ((mb != "" || pr != "") && (em != "" || ad != "")) || ad != "" {
		a.analytics.LinkEvent(c, u, anon, mb, pr, em, ad)
	}
}

var statusText = map[int][2]string{
	http.StatusBadRequest:         {"Something is missing", "The form was sent incomplete. Please go back and try again."},
	http.StatusForbidden:          {"Please try again", "The form expired or there were too many attempts. Please reload the page and try again in a while."},
	http.StatusNotFound:           {"Page not found", "There is no page at this address."},
	http.StatusServiceUnavailable: {"We are busy", "The shop is very busy right now. Please try again in a moment."},
}

// errorText is the title and message of the error page for status.
func errorText(status int) (title string, data map[string]any) {
	txt, ok := statusText[status]
	if !ok {
		txt = [2]string{"Something went wrong", "Please try again in a moment."}
	}
	return txt[0], map[string]any{"message": txt[1]}
}

// errorPage answers status with a page of the site.
func (a *App) errorPage(c *fiber.Ctx, status int) error {
	title, data := errorText(status)
	return a.render(c, status, "error", title, data)
}

// apiPrefixes are the paths whose answers stay the API's JSON whatever the
// client asks for.
var apiPrefixes = []string{"/user/", "/order/", "/clientevent/", "/admin/", "/admin", "/healthz", "/readyz", "/metrics"}

// browserNotFound reports a browser's page request that found nothing: a
// GET or HEAD answered 404, outside the API, accepting HTML.
func (a *App) browserNotFound(c *fiber.Ctx, status int) bool {
	if status != fiber.StatusNotFound || (c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead) ||
		!strings.Contains(c.Get(fiber.HeaderAccept), "text/html") {
		return false
	}
	p := c.Path()
	for _, pre := range apiPrefixes {
		if p == strings.TrimSuffix(pre, "/") || strings.HasPrefix(p, pre) {
			return false
		}
	}
	return true
}

// ErrorPage answers a request for one of the storefront's pages that ended
// in the platform's JSON error outside the page's own handling (a CSRF
// check refused before it, a panic, a 5xx) with the shop's error page,
// status kept (server.ErrorPages). It calls nothing, reads no database
// (the failure may be the database's) and says nothing of the cause; the
// API's paths and a host served by the tenant's own site keep the JSON.
//
// A browser's GET of a path nobody serves (a 404 outside the API's prefixes,
// asking for HTML) gets the shop's not-found page too, not JSON.
func (a *App) ErrorPage(c *fiber.Ctx, status int) bool {
	t := server.Tenant(c)
	if t == nil || !(a.pagePaths[c.Path()] || a.browserNotFound(c, status)) {
		return false
	}
	if m := c.Method(); m == fiber.MethodGet || m == fiber.MethodHead {
		if _, ok := t.SiteOn(strings.TrimSpace(c.Hostname())); ok {
			return false
		}
	}
	title, data := errorText(status)
	v := view{Brand: a.brand(t), Title: title, Path: c.Path(), Assets: a.urls, Data: data}
	var buf bytes.Buffer
	if err := a.pages["error"].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		a.log.Error("storefront: render error page", "err", err, "tenant", t.Slug, "request_id", server.RequestID(c))
		return false
	}
	c.Set("Content-Security-Policy", a.csp)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Status(status)
	_ = c.Send(buf.Bytes())
	return true
}

// notices are the messages a redirect after a form carries in ?notice=.
var notices = map[string]string{
	"added":             "The item was added to your cart.",
	"cart-updated":      "Your cart was updated.",
	"signed-in":         "You are signed in.",
	"signed-out":        "You are signed out.",
	"account-created":   "Welcome! Your account was created. We sent you an e-mail to verify your address.",
	"verified":          "Thank you: your e-mail address is verified.",
	"verification-sent": "We sent you a new verification e-mail.",
	"information-saved": "Your information was saved.",
	"preferences-saved": "Your communication preferences were saved.",
	"password-updated":  "Your password was changed.",
	"password-set":      "Your new password is set. Please sign in with it.",
	"message-sent":      "Thank you for your message. We will get back to you soon.",
	"terms-agreed":      "Thank you for agreeing to the terms of use.",
	"username-sent":     "If an account uses that address, we sent its username there.",
	"reset-sent":        "If the username and address match an account, we sent a link to reset the password.",
}

// redirect answers a form post with 303 to a page (POST, redirect, GET).
func redirect(c *fiber.Ctx, to string) error { return c.Redirect(to, http.StatusSeeOther) }

// localNext makes a next= parameter a path on this site: the original
// frontend passes them without the leading slash ("checkout/confirm").
func localNext(next, def string) string {
	next = strings.TrimSpace(next)
	if next == "" {
		return def
	}
	if !strings.HasPrefix(next, "/") {
		next = "/" + next
	}
	if strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return def
	}
	if strings.HasPrefix(next, "/user/") || strings.HasPrefix(next, "/order/") {
		return def
	}
	if next == "/account" {
		next = "/account/"
	}
	return next
}
