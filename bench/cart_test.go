package bench

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/shop"
)

// BenchmarkCartAndLoggedIn compares the reads a signed-in member's pages
// make on every view, the cart page's GET /order/cart-items,
// cart-shipping-methods, cart-totals and cart-discount-codes and every
// page's GET /user/logged-in, through the whole data plane (the accounts app
// checking the session, the shop reading the cart with fresh prices) with
// a bare Fiber handler answering the same bytes, under the same
// closed-loop load. The member's cart holds three SKUs, a discount code
// and a shipping method. It reports each side's req/s and latency and the
// routed/plain ratio per endpoint.
//
//	go test ./bench -run '^$' -bench 'Cart|LoggedIn' -benchtime 1x
func BenchmarkCartAndLoggedIn(b *testing.B) {
	p := newPlatform(b, 1)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	keyring := csrf.BundleKeyring(secrets.NewCache(p.store, 0, log), 0)
	dp := newDataPlane(b, p, planeOptions{Budget: 50, MaxConns: 4,
		AppsOver: func(pm *pools.Manager, sess *sessions.Store) []server.App {
			accounts := account.New(account.Options{DB: pm, Keyring: account.KeyringFunc(keyring), Sessions: sess, Log: log})
			shopApp := shop.New(shop.Options{Pools: pm, Key: shop.KeyFunc(keyring.Current()), Account: accounts.SessionClaim, Log: log})
			return []server.App{accounts, shopApp}
		}})
	host := p.host(0)

	m := &member{b: b, addr: dp.addr, host: host, cookies: map[string]string{}}
	m.get("/user/token")
	m.post("/user/create-account", "create_account", "true", url.Values{
		"firstname": {"Bench"}, "lastname": {"User"}, "username": {"benchuser"},
		"email_address": {"bench@example.com"}, "password": {"Quiet!Harbour#Lamp42"},
		"confirm_password": {"Quiet!Harbour#Lamp42"}, "newsletter": {"false"}, "remember_me": {"false"},
	})
	for _, sku := range []struct{ id, qty string }{{"1", "2"}, {"4", "1"}, {"5", "3"}} {
		m.post("/order/cart-add-product-sku", "cart_add_product_sku", "success", url.Values{"sku_id": {sku.id}, "quantity": {sku.qty}})
	}
	m.post("/order/cart-apply-discount-code", "cart_apply_discount_code", "success", url.Values{"discount_code_id": {"WELCOME10"}})
	m.post("/order/cart-update-shipping-method", "cart_update_shipping_method", "success",
		url.Values{"shipping_method_identifier": {"USPSRetailGround"}})
	if body := fetchGet(b, dp.addr, host, m.cookie(), "/user/logged-in"); !strings.Contains(string(body), `"cart_item_count":3`) ||
		!strings.Contains(string(body), `"logged_in":true`) {
		b.Fatalf("logged-in: %s", body)
	}

	compareGets(b, dp.addr, host, m.cookie(), []getRoute{
		{"cart-items", "/order/cart-items"},
		{"cart-shipping-methods", "/order/cart-shipping-methods"},
		{"cart-totals", "/order/cart-totals"},
		{"cart-discount-codes", "/order/cart-discount-codes"},
		{"logged-in", "/user/logged-in"},
	})
}

// member is the benchmark's visitor: its cookies, sent with each request.
type member struct {
	b          *testing.B
	addr, host string
	cookies    map[string]string
}

func (m *member) cookie() string {
	parts := make([]string, 0, len(m.cookies))
	for k, v := range m.cookies {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func (m *member) do(method, path string, form url.Values) string {
	m.b.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, "http://"+m.addr+path, body)
	req.Host = m.host
	req.Header.Set("Origin", frontendOrigin)
	req.Header.Set("Cookie", m.cookie())
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-CSRFToken", m.cookies["csrftoken"])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		m.b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(m.cookies, c.Name)
		} else {
			m.cookies[c.Name] = c.Value
		}
	}
	return string(raw)
}

func (m *member) get(path string) string { m.b.Helper(); return m.do(http.MethodGet, path, nil) }

// post sends a form and fails unless the answer says key: want.
func (m *member) post(path, key, want string, form url.Values) {
	m.b.Helper()
	if out := m.do(http.MethodPost, path, form); !strings.Contains(out, `"`+key+`":"`+want+`"`) {
		m.b.Fatalf("POST %s: %s", path, out)
	}
}
