package storefront_test

import (
	"context"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// One headless Chromium serves every journey of the test binary; each
// journey gets a browser context of its own (its own cookies), in a tab.
var chromium struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	dir    string
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chromium.cancel != nil {
		chromium.cancel()
	}
	if chromium.dir != "" {
		os.RemoveAll(chromium.dir)
	}
	os.Exit(code)
}

// tab opens a fresh browser context (no cookies) on the shared browser.
func tab(t *testing.T) context.Context {
	t.Helper()
	path := pgtest.Require(t, "SWA_CHROMIUM")
	chromium.once.Do(func() {
		chromium.dir, chromium.err = os.MkdirTemp("", "sf-chromium-")
		if chromium.err != nil {
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.UserDataDir(chromium.dir), chromedp.Flag("disable-quic", true))
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(actx)
		chromium.ctx, chromium.cancel = ctx, func() { cancelCtx(); cancelAlloc() }
		chromium.err = chromedp.Do(ctx)
	})
	if chromium.err != nil {
		t.Fatalf("start chromium: %v", chromium.err)
	}
	tctx, cancelT := context.WithTimeout(chromium.ctx, 3*time.Minute)
	ctx, cancel := chromedp.NewContext(tctx, chromedp.WithNewBrowserContext())
	t.Cleanup(func() { cancel(); cancelT() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// artifacts is where screenshots go: SWA_ARTIFACTS_DIR when set (kept), else
// the test's temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWA_ARTIFACTS_DIR")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, strings.NewReplacer("/", "-").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// journey drives one tab at one viewport width and shoots each page.
type journey struct {
	t     *testing.T
	ctx   context.Context
	base  string
	dir   string
	width int64
	n     int
}

func newJourney(t *testing.T, e *env, host string, width int64) *journey {
	j := &journey{t: t, ctx: tab(t), base: e.origin(host), dir: artifacts(t), width: width}
	j.do(chromedp.EmulateViewport(width, 900))
	return j
}

// dismissCookies closes the cookie notice the way a visitor does: the
// script closes it in place and sets the cookie.
func (j *journey) dismissCookies() {
	j.t.Helper()
	j.open("/about")
	j.do(chromedp.Click(chromedp.CSS(`#cookie-notice button`)), chromedp.WaitNotVisible(chromedp.ID("cookie-notice")))
}

func (j *journey) do(steps ...chromedp.Action[chromedp.Void]) {
	j.t.Helper()
	if err := chromedp.Do(j.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(j.ctx, chromedp.Location())
		j.t.Fatalf("at %s: %v", loc, err)
	}
}

func (j *journey) open(path string) {
	j.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = j.base + path
	}
	j.do(chromedp.Navigate(path))
}

// submit clicks sel (as the page's own click, so no overlay can catch
// it) and waits for the page it leads to.
func (j *journey) submit(sel string) {
	j.t.Helper()
	ctx, cancel := context.WithTimeout(j.ctx, 20*time.Second)
	defer cancel()
	click := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.click(); return true; })()`, sel))
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, click)); err != nil {
		body, _ := chromedp.Run(j.ctx, chromedp.Text(chromedp.CSS("main")))
		j.t.Fatalf("at %s: click %s: %v\n%s", j.location(), sel, err, body)
	}
}

// check ticks a checkbox or radio.
func (j *journey) check(sel string) {
	j.t.Helper()
	ok, err := chromedp.Run(j.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.click(); return el.checked; })()`, sel)))
	if err != nil || !ok {
		j.t.Fatalf("at %s: check %s: %v", j.location(), sel, err)
	}
}

func (j *journey) fill(sel, value string) {
	j.t.Helper()
	j.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

// text answers the text of sel. A query can meet the document of the page
// being left (the node it found is gone when its text is asked for), so it
// tries again until the page settles.
func (j *journey) text(sel string) string {
	j.t.Helper()
	s, err := j.textWithin(sel, 10*time.Second, func(string) bool { return true })
	if err != nil {
		j.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// textWithin reads the text of sel until done accepts it or the time is
// up, and answers the last text read.
func (j *journey) textWithin(sel string, limit time.Duration, done func(string) bool) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(j.ctx, 5*time.Second)
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if (err == nil && done(s)) || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (j *journey) location() string {
	loc, _ := chromedp.Run(j.ctx, chromedp.Location())
	return loc
}

// see fails unless the main region shows every text.
func (j *journey) see(want ...string) {
	j.t.Helper()
	got, err := j.textWithin("main", 10*time.Second, func(s string) bool {
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	})
	if err != nil {
		j.t.Fatalf("at %s: text of main: %v", j.location(), err)
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			j.t.Fatalf("at %s: page lacks %q:\n%s", j.location(), w, got)
		}
	}
}

// shot saves a full-page screenshot and checks the page is styled: both
// stylesheets applied under the CSP, the header in the tenant's colour.
func (j *journey) shot(name string, primary string) {
	j.t.Helper()
	styled, err := chromedp.Run(j.ctx, chromedp.Evaluate[string](`(() => {
		const sheets = [...document.styleSheets].filter(s => s.cssRules.length > 0).length;
		return sheets + " " + getComputedStyle(document.querySelector('.site-header')).backgroundColor;
	})()`))
	if err != nil {
		j.t.Fatalf("style check: %v", err)
	}
	if want := "2 " + rgbOf(primary); styled != want {
		j.t.Errorf("%s: styles %q, want %q", name, styled, want)
	}
	j.accessible(name)
	img, err := chromedp.Run(j.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		j.t.Fatalf("screenshot: %v", err)
	}
	j.n++
	p := filepath.Join(j.dir, fmt.Sprintf("%02d-%s-%d.png", j.n, name, j.width))
	if err := os.WriteFile(p, img, 0o644); err != nil {
		j.t.Fatal(err)
	}
	j.t.Logf("screenshot %s", p)
}

// axeSource is axe-core, vendored from its npm package (see testdata).
//
//go:embed testdata/axe-core-4.14.1.min.js
var axeSource string

// axeRun runs axe-core's WCAG 2.1 A and AA rules and answers the serious
// and critical violations as JSON.
const axeRun = `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
	.then(r => JSON.stringify(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
		.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))`

// accessible runs axe-core in the page (WCAG 2.1 A and AA rules) and fails
// on serious or critical violations.
func (j *journey) accessible(name string) {
	j.t.Helper()
	if _, err := chromedp.Run(j.ctx, chromedp.Evaluate[bool](axeSource+";true")); err != nil {
		j.t.Fatalf("inject axe-core: %v", err)
	}
	found, err := chromedp.Run(j.ctx, chromedp.Evaluate[string](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		j.t.Fatalf("axe-core on %s: %v", name, err)
	}
	if found != "[]" {
		j.t.Errorf("%s (%dpx): accessibility violations: %s", name, j.width, found)
	}
}

func rgbOf(hex string) string {
	var r, g, b int
	fmt.Sscanf(hex, "#%02x%02x%02x", &r, &g, &b)
	return fmt.Sprintf("rgb(%d, %d, %d)", r, g, b)
}

var orderIDRE = regexp.MustCompile(`[A-Za-z0-9]{10}`)

// shop is the shopping journey of one visitor on one tenant.
func shopJourney(t *testing.T, e *env, host, primary string, width int64) {
	j := newJourney(t, e, host, width)
	j.open("/")
	j.shot("home", primary)
	j.dismissCookies()
	j.open("/products")
	j.shot("products", primary)
	j.submit(`.card a[href*="PaperClips"]`)
	j.see("Paper Clips", "Left Sided Paperclip", "$3.50")
	j.shot("product", primary)
	j.submit(`.add button[type=submit]`)
	j.see("The item was added to your cart.")
	j.open("/product?name=BinderClips&id=ITHJW3mytn")
	j.check(`input[name=sku_id][value="6"]`)
	j.fill("#quantity", "2")
	j.submit(`.add button[type=submit]`)
	j.see("The item was added to your cart.")
	j.open("/cart")
	j.see("Left Sided Paperclip", "Small Binder Clip", "USPS Retail Ground")
	j.fill("#qty-1", "3")
	j.submit(`form.qty:has(#qty-1) button`)
	j.see("Your cart was updated.")
	// The shipping radios send themselves (the page script).
	j.submit(`input[value="UPSGround"]`)
	j.see("Your cart was updated.")
	j.fill("#discount_code", "WELCOME10")
	j.submit(`form.discount button`)
	j.see("WELCOME10", "Item discount")
	j.shot("cart", primary)
	// 3 x 3.50 + 2 x 3.99 = 18.48, less 10% = 16.63, UPS 11.34: 27.97.
	j.see("$18.48", "$1.85", "$11.34", "$27.97")
	j.submit(`a[href="/checkout/confirm"]`)
	j.see("Review your order", "UPS Ground")
	buyer := "browser-" + randomWord() + "@example.com"
	j.fill("#email", buyer)
	j.check(`input[name=agree_terms_of_sale]`)
	j.shot("checkout-confirm", primary)
	// The form goes to the payment page (the Stripe double), which sends
	// the browser back to the success page.
	j.submit(`button[data-track=continue-to-payment]`)
	if !strings.HasPrefix(j.location(), j.base+"/checkout/success?session_id=") {
		t.Fatalf("after payment at %s", j.location())
	}
	j.see("Thank you for your order", "Left Sided Paperclip", "Small Binder Clip", "$27.97", "1 Main St")
	j.shot("checkout-success", primary)
	ident := orderIDRE.FindString(j.text(".order-id"))
	msg := e.deliver(t, `to:"`+buyer+`"`, 1)[0]
	if ident == "" || !strings.Contains(msg.Text, ident) {
		t.Fatalf("confirmation for order %q:\n%s", ident, msg.Text)
	}
	j.open(mailLink(t, msg, "/account/order?identifier="))
	j.see("Order "+ident, "UPS Ground")
	j.shot("order", primary)
	// The page script sent the button clicks to the analytics beacon, as
	// the original frontend did.
	db := e.dbA
	if host == hostB {
		db = e.dbB
	}
	waitCount(t, db, `SELECT count(*) FROM button_click WHERE button_id IN ('add-to-cart', 'continue-to-payment') AND anonymous_id IS NOT NULL`, 3)
}

// TestBrowserShopping runs the shopping journey on two tenants at once,
// each with its own branding, one at desktop width and one at phone width.
func TestBrowserShopping(t *testing.T) {
	e := newEnv(t)
	t.Run("alpha-desktop", func(t *testing.T) {
		t.Parallel()
		shopJourney(t, e, hostA, "#0b7a5c", 1280)
	})
	t.Run("beta-phone", func(t *testing.T) {
		t.Parallel()
		shopJourney(t, e, hostB, "#4b2a86", 390)
	})
}

// TestBrowserAccount: sign up, verify with the mailed link, sign out, fill
// a cart and sign in (the carts merge), the account pages, a password
// change, a newsletter's unsubscribe link; then the other pages, shot at
// phone width.
func TestBrowserAccount(t *testing.T) {
	e := newEnv(t)
	const primary = "#0b7a5c"
	j := newJourney(t, e, hostA, 1280)
	j.dismissCookies()
	user, email := "browser"+randomWord(), "browser-"+randomWord()+"@example.com"
	j.open("/create-account")
	j.fill("#firstname", "Bea")
	j.fill("#lastname", "Rowser")
	j.fill("#username", user)
	j.fill("#email_address", email)
	j.fill("#password", "Xq7!browser#Pw")
	j.fill("#confirm_password", "Xq7!browser#Pw")
	j.shot("create-account", primary)
	j.submit(`form[action="/create-account"] button[type=submit]`)
	j.see("Your account was created", user, "not verified")
	j.shot("account", primary)
	link := mailLink(t, e.deliver(t, `to:"`+email+`"`, 1)[0], "email_verification_code=")
	j.open(link)
	j.see("Verify your e-mail address")
	j.shot("account-verify", primary)
	j.submit(`form[action="/account/"] button`)
	j.see("your e-mail address is verified")
	j.submit(`form[action="/logout"] button`)
	if !strings.HasPrefix(j.location(), j.base+"/login") {
		t.Fatalf("after sign-out at %s", j.location())
	}
	// Signed out, the visitor fills a cart; signing in merges it into the
	// member's.
	j.open("/product?name=RubberBands&id=v26ujdy3N1")
	j.submit(`.add button[type=submit]`)
	j.see("The item was added to your cart.")
	j.open("/login")
	j.fill("#username", user)
	j.fill("#password", "Xq7!browser#Pw")
	j.shot("login", primary)
	j.submit(`form[action="/login"] button`)
	j.see("You are signed in.", "Bea Rowser")
	j.open("/cart")
	j.see("Rubber Bands")
	j.shot("cart-merged", primary)
	j.open("/account/")
	j.submit(`a[href="/account/edit-my-information"]`)
	j.see("Edit my information")
	j.shot("edit-information", primary)
	j.open("/account/edit-communication-preferences")
	j.shot("edit-preferences", primary)
	j.open("/account/change-password")
	j.fill("#current_password", "Xq7!browser#Pw")
	j.fill("#new_password", "Xq7!changed#Pw")
	j.fill("#confirm_new_password", "Xq7!changed#Pw")
	j.shot("change-password", primary)
	j.submit(`form[action="/account/change-password"] button`)
	j.see("Your password was changed.")
	e.deliver(t, `to:"`+email+`" subject:"Password Changed"`, 1)

	// The unsubscribe link a newsletter carries (its token is the member's
	// signed unsubscribe string), followed from a fresh browser.
	var token string
	if err := e.dbA.QueryRow(context.Background(), `SELECT m.email_unsubscribe_string_signed FROM member m
		JOIN account a ON a.id = m.account_id WHERE a.username = $1`, user).Scan(&token); err != nil {
		t.Fatal(err)
	}
	mail := newJourney(t, e, hostA, 1280)
	mail.dismissCookies()
	mail.open("/account/email-unsubscribe?token=" + url.QueryEscape(token))
	mail.see("Yes, remove me")
	mail.shot("unsubscribe", primary)
	mail.submit(`form[action="/account/email-unsubscribe"] button`)
	mail.see("is unsubscribed")
	mail.shot("unsubscribed", primary)

	phone := newJourney(t, e, hostA, 390)
	for _, p := range []struct{ name, path string }{
		{"home", "/"}, {"product", "/product?name=RubberBands&id=v26ujdy3N1"}, {"cart-empty", "/cart"},
		{"login", "/login"}, {"forgot-username", "/forgot-username"}, {"reset-password", "/reset-password"},
		{"set-new-password", "/set-new-password?password_reset_code=x"}, {"order-lookup", "/account/order"},
		{"about", "/about"}, {"contact", "/contact"}, {"privacy-policy", "/privacy-policy"},
		{"terms-of-use", "/terms-of-use"}, {"terms-of-sale", "/terms-of-sale"},
		{"unsubscribe-invalid", "/account/email-unsubscribe?token=" + url.QueryEscape("nope")}, {"not-found", "/product?id=nothing"},
	} {
		phone.open(p.path)
		phone.shot(p.name, primary)
	}
	phone.dismissCookies()
	phone.open("/contact")
	if n, _ := chromedp.Run(phone.ctx, chromedp.Evaluate[int](`document.querySelectorAll('#cookie-notice').length`)); n != 0 {
		t.Error("the cookie notice is back after it was dismissed")
	}
}

// TestAccessibilityCheckFails shows the check used by the journeys finds
// what it is meant to: a page with an unlabelled field and an image
// without alternative text fails it.
func TestAccessibilityCheckFails(t *testing.T) {
	j := &journey{t: t, ctx: tab(t), width: 1280}
	j.do(chromedp.Navigate(`data:text/html,<!doctype html><html lang="en"><title>t</title><main><img src="x.png"><input id="f"></main></html>`))
	if _, err := chromedp.Run(j.ctx, chromedp.Evaluate[bool](axeSource+";true")); err != nil {
		t.Fatal(err)
	}
	found, err := chromedp.Run(j.ctx, chromedp.Evaluate[string](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{`"image-alt"`, `"label"`} {
		if !strings.Contains(found, id) {
			t.Errorf("axe-core did not report %s: %s", id, found)
		}
	}
}
