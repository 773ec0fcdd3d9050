package storefront_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPagesAnswer: every page of the storefront answers HTML with the
// tenant's branding, a CSP without unsafe-inline and no caching, while the
// API prefixes keep answering as before.
func TestPagesAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.client(t, hostA)
	pages := map[string]string{
		"/":                                      "Paper goods for every desk.",
		"/products":                              "Binder Clips",
		"/product?name=PaperClips&id=bSusp6dBHm": "Add to cart",
		"/cart":                                  "Your cart is empty.",
		"/checkout/confirm":                      "Checkout",
		"/checkout/success":                      "This page needs the checkout session",
		"/login":                                 "Keep me signed in",
		"/create-account":                        "Confirm password",
		"/forgot-username":                       "Send my username",
		"/reset-password":                        "Send the link",
		"/set-new-password?password_reset_code=x": "Set password",
		"/account/order":                        "Find your order",
		"/account/email-unsubscribe?token=nope": "This unsubscribe link is not valid.",
		"/about":                                "About us",
		"/contact":                              "Send us a message",
		"/privacy-policy":                       "Privacy policy",
		"/terms-of-use":                         "Terms of use",
		"/terms-of-sale":                        "Terms of sale",
	}
	for path, want := range pages {
		p := a.get(path)
		if path == "/checkout/confirm" {
			// An empty cart has nothing to confirm: back to the cart.
			if p.status != http.StatusSeeOther || p.location() != "/cart" {
				t.Errorf("GET %s = %d %q, want 303 to /cart", path, p.status, p.location())
			}
			continue
		}
		if p.status != http.StatusOK {
			t.Errorf("GET %s = %d: %s", path, p.status, snippet(mainOf(p.body)))
			continue
		}
		mustContain(t, p, want, "Alpha Paper Co", `<main id="main"`, `name="viewport"`)
		csp := p.header.Get("Content-Security-Policy")
		if csp == "" || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		if cc := p.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if strings.Contains(p.body, "<script>") || strings.Contains(p.body, " style=") || strings.Contains(p.body, "<style") {
			t.Errorf("GET %s: inline script or style", path)
		}
	}
	if p := a.get("/account/"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/login?") {
		t.Errorf("anonymous /account/ = %d %q, want a redirect to sign in", p.status, p.location())
	}
	if p := a.get("/product?id=nosuchthing1"); p.status != http.StatusNotFound || !strings.Contains(p.body, "Page not found") {
		t.Errorf("unknown product = %d %s", p.status, snippet(mainOf(p.body)))
	}
	if p := a.get("/no-such-page"); p.status != http.StatusNotFound || !strings.Contains(p.header.Get("Content-Type"), "json") {
		t.Errorf("unknown path = %d %s (the API's 404 is kept)", p.status, p.body)
	}
	// The API is untouched beside the pages.
	if p := a.get("/order/"); !strings.HasPrefix(p.body, "Hello, you're at the order API") {
		t.Errorf("/order/ = %q", p.body)
	}
	if got := a.api("/user/logged-in"); got["logged_in"] != false {
		t.Errorf("/user/logged-in = %v", got)
	}
	if p := a.get("/order/products"); !strings.Contains(p.body, `"products_data"`) {
		t.Errorf("/order/products = %s", snippet(p.body))
	}
}

var assetRE = regexp.MustCompile(`(?:href|src)="(/_/[^"]+)"`)

// TestAssetsAndThemes: assets are fingerprinted and cached for good; each
// tenant gets its own theme stylesheet; branding text is escaped.
func TestAssetsAndThemes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.client(t, hostA), e.client(t, hostB)
	pa, pb := a.get("/"), b.get("/")
	la, lb := assetRE.FindAllStringSubmatch(pa.body, -1), assetRE.FindAllStringSubmatch(pb.body, -1)
	if len(la) != 3 || len(lb) != 3 {
		t.Fatalf("assets: %v / %v", la, lb)
	}
	var themeA, themeB string
	for i, m := range la {
		asset := a.get(m[1])
		if asset.status != http.StatusOK || asset.header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s = %d, Cache-Control %q", m[1], asset.status, asset.header.Get("Cache-Control"))
		}
		if !regexp.MustCompile(`-[0-9a-f]{12}\.(css|js)$`).MatchString(m[1]) {
			t.Errorf("asset %s is not fingerprinted", m[1])
		}
		if strings.Contains(m[1], "theme-") {
			themeA, themeB = asset.body, b.get(lb[i][1]).body
			if lb[i][1] == m[1] {
				t.Errorf("both tenants link the same theme %s", m[1])
			}
		} else if lb[i][1] != m[1] {
			t.Errorf("shared asset differs: %s vs %s", m[1], lb[i][1])
		}
	}
	if !strings.Contains(themeA, "--primary:#0b7a5c") || !strings.Contains(themeB, "--primary:#4b2a86") {
		t.Errorf("themes:\n%s\n%s", themeA, themeB)
	}
	if p := a.get("/_/theme-000000000000.css"); p.status != http.StatusOK || p.header.Get("Cache-Control") != "no-cache" {
		t.Errorf("stale theme = %d %q", p.status, p.header.Get("Cache-Control"))
	}
	if p := a.get("/_/app-000000000000.css"); p.status != http.StatusNotFound {
		t.Errorf("unknown asset = %d", p.status)
	}
	mustContain(t, pb, "Beta &lt;Binders&gt;", "Binders &amp; bands.")
	if strings.Contains(pb.body, "<Binders>") {
		t.Error("shop name not escaped")
	}
	if p := a.get("/img/product/paper_clip_main_2.jpg"); p.status != http.StatusOK || !strings.HasPrefix(p.body, "<svg") {
		t.Errorf("product image = %d %s", p.status, snippet(p.body))
	}
}

// TestShoppingJourney is the shop without script: two SKUs, a quantity,
// shipping, a discount code, checkout to the (double's) payment page and
// back to the success page, which shows the order; the confirmation is
// mailed. The other tenant's cart stays empty.
func TestShoppingJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.client(t, hostA)
	a.get("/")
	for _, add := range [][3]string{{"PaperClips", "bSusp6dBHm", "1"}, {"BinderClips", "ITHJW3mytn", "6"}} {
		sku := add[2]
		p := a.post("/product", url.Values{"name": {add[0]}, "id": {add[1]}, "sku_id": {sku}, "quantity": {"1"}})
		if p.status != http.StatusSeeOther || !strings.Contains(p.location(), "notice=added") {
			t.Fatalf("add sku %s = %d %q %s", sku, p.status, p.location(), snippet(p.body))
		}
		mustContain(t, a.follow(p), "The item was added to your cart.", `aria-label="`)
	}
	cart := a.get("/cart")
	mustContain(t, cart, "Left Sided Paperclip", "Small Binder Clip", "USPS Retail Ground", `aria-label="2 items in cart"`)
	steps := []url.Values{
		{"action": {"quantity"}, "sku_id": {"1"}, "quantity": {"3"}},
		{"action": {"shipping"}, "shipping_method_identifier": {"FedExGround"}},
		{"action": {"discount"}, "discount_code_id": {"WELCOME10"}},
	}
	for _, f := range steps {
		p := a.post("/cart", f)
		if p.status != http.StatusSeeOther || p.location() != "/cart?notice=cart-updated" {
			t.Fatalf("cart %v = %d %q", f, p.status, p.location())
		}
	}
	bad := a.follow(a.post("/cart", url.Values{"action": {"discount"}, "discount_code_id": {"NOPE"}}))
	mustContain(t, bad, "We do not know that discount code.")
	cart = a.get("/cart")
	mustContain(t, cart, `value="3"`, `value="FedExGround" checked`, "WELCOME10", "Item discount")
	confirm := a.get("/checkout/confirm")
	mustContain(t, confirm, "Review your order", "FedEx Ground", "anonymous_email_address", "terms of sale")
	if p := a.post("/checkout/confirm", url.Values{"anonymous_email_address": {"guest@example.com"}}); !strings.Contains(p.location(), "error=terms-of-sale-required") {
		t.Fatalf("checkout without the terms = %d %q", p.status, p.location())
	}
	buyer := "guest-" + strings.ToLower(randomWord()) + "@example.com"
	p := a.post("/checkout/confirm", url.Values{"anonymous_email_address": {buyer}, "agree_terms_of_sale": {"true"}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), e.stripe.srv.URL+"/pay/") {
		t.Fatalf("checkout = %d %q %s", p.status, p.location(), snippet(mainOf(p.body)))
	}
	// The payment page of the double pays and sends the browser back.
	paid := a.do(mustRequest(p.location()))
	if paid.status != http.StatusSeeOther || !strings.HasPrefix(paid.location(), e.origin(hostA)+"/checkout/success?session_id=cs_test_sf_") {
		t.Fatalf("payment = %d %q", paid.status, paid.location())
	}
	success := a.get(paid.location())
	mustContain(t, success, "Thank you for your order", "Left Sided Paperclip", "1 Main St", "FedEx Ground")
	ident := regexp.MustCompile(`class="order-id">([A-Za-z0-9]{10})<`).FindStringSubmatch(success.body)
	if ident == nil {
		t.Fatalf("no order identifier: %s", snippet(mainOf(success.body)))
	}
	// Reloading the success page finds the same order.
	mustContain(t, a.get(paid.location()), ident[1])
	mustContain(t, a.get("/cart"), "Your cart is empty.")
	msgs := e.deliver(t, `to:"`+buyer+`"`, 1)
	if !strings.Contains(msgs[0].Text, ident[1]) {
		t.Errorf("confirmation lacks %s:\n%s", ident[1], msgs[0].Text)
	}
	link := mailLink(t, msgs[0], "/account/order?identifier=")
	if !strings.HasPrefix(link, e.origin(hostA)) {
		t.Errorf("order link %s is not on the storefront", link)
	}
	mustContain(t, a.get(link), "Order <span class=\"order-id\">"+ident[1])
	// Guest lookup by identifier on a fresh browser.
	mustContain(t, e.client(t, hostA).get("/account/order?identifier="+ident[1]), "Springfield")
	mustContain(t, e.client(t, hostA).get("/account/order?identifier=ZZZZZZZZZZ"), "We could not find that order.")
	// The other tenant knows nothing of it.
	b := e.client(t, hostB)
	mustContain(t, b.get("/account/order?identifier="+ident[1]), "We could not find that order.")
	mustContain(t, b.get("/cart"), "Your cart is empty.")
	// The pages were counted as page views, the first one already with the
	// visitor's anonymous id, and the mail's link as a link event of the
	// template and the prospect who bought.
	waitRows(t, e, "SELECT count(*) FROM pageview WHERE url LIKE '%/checkout/success%' AND account_id IS NULL", 1)
	waitRows(t, e, "SELECT count(*) FROM pageview WHERE url = '"+e.origin(hostA)+"/' AND anonymous_id IS NOT NULL", 1)
	waitRows(t, e, "SELECT count(*) FROM link_event WHERE url LIKE '%/account/order?identifier="+ident[1]+"%' AND email_id IS NOT NULL AND prospect_id IS NOT NULL", 1)
}

func mustRequest(u string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		panic(err)
	}
	return req
}

func randomWord() string { return strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "") }

// waitRows polls tenant alpha's database until query counts at least n.
func waitRows(t *testing.T, e *env, query string, n int) {
	t.Helper()
	waitCount(t, e.dbA, query, n)
}

// waitCount polls db until query counts at least n.
func waitCount(t *testing.T, db *pgxpool.Pool, query string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got int
		if err := db.QueryRow(context.Background(), query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want >= %d", query, got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
