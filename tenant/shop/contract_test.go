package shop_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/tenant/shop"
)

// seedOrder inserts an order with fixed values for the O20 and U5 checks:
// one product line (sku 1 × 2 at 3.50), a payment without card details,
// both addresses, the accepted status and, when method is not "", a
// shipping method. memberAccount 0 makes a prospect (guest) order.
func seedOrder(t *testing.T, db *pgxpool.Pool, ident string, memberAccount int64, method, when string) int64 {
	t.Helper()
	ctx := context.Background()
	var member, prospect *int64
	if memberAccount > 0 {
		var m int64
		if err := db.QueryRow(ctx, `SELECT id FROM member WHERE account_id = $1`, memberAccount).Scan(&m); err != nil {
			t.Fatal(err)
		}
		member = &m
	} else {
		var p int64
		if err := db.QueryRow(ctx, `INSERT INTO prospect (email, pr_cd) VALUES ($1, $2) RETURNING id`, ident+"@example.com", ident+"prcd").Scan(&p); err != nil {
			t.Fatal(err)
		}
		prospect = &p
	}
	var id int64
	err := db.QueryRow(ctx, `
WITH p AS (INSERT INTO order_payment (email, payment_type, card_name) VALUES ('john@example.com', 'card', 'John Doe') RETURNING id),
     s AS (INSERT INTO order_shipping_address (name, address_line1, city, state, zip, country, country_code)
           VALUES ('John Doe', '1 Main St', 'Springfield', 'IL', '62701', 'US', 'US') RETURNING id),
     b AS (INSERT INTO order_billing_address (name, address_line1, city, state, zip, country, country_code)
           VALUES ('John Doe', '1 Main St', 'Springfield', 'IL', '62701', 'US', 'US') RETURNING id)
INSERT INTO customer_order (identifier, member_id, prospect_id, payment_id, shipping_address_id, billing_address_id,
  item_subtotal, shipping_amt, order_total, agreed_with_terms_of_sale, order_date_time)
SELECT $1, $2, $3, p.id, s.id, b.id, 7.00, $4::numeric, 7.00 + $4::numeric, true, $5::timestamptz FROM p, s, b
RETURNING id`, ident, member, prospect, map[bool]string{true: "9.56", false: "0"}[method != ""], when).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO order_sku (order_id, sku_id, quantity, price_each) VALUES ($1, 1, 2, 3.50)`,
		`INSERT INTO order_status_history (order_id, order_status_id, created_date_time) VALUES ($1, 1, '2026-01-02T08:05:00.001Z')`,
	} {
		if _, err := db.Exec(ctx, q, id); err != nil {
			t.Fatal(err)
		}
	}
	if method != "" {
		if _, err := db.Exec(ctx, `INSERT INTO order_shipping_method (order_id, shipping_method_id) SELECT $1, id FROM shipping_method WHERE identifier = $2`, id, method); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

const (
	retailGround = `{"identifier":"USPSRetailGround","carrier":"USPS Retail Ground","shipping_cost":"9.56","tracking_code_base_url":"https://tools.usps.com/go/TrackConfirmAction.action?tRef=fullpage\u0026tLc=1\u0026text28777=\u0026tLabels="}`
	orderLine    = `{"sku_id":1,"sku_type__title":"product","sku_inventory__title":"In Stock","color":"Silver","size":"Medium","description":"Left Sided Paperclip","price":"3.50","quantity":2,"parent_product__title":"Paper Clips","parent_product__title_url":"PaperClips","parent_product__identifier":"bSusp6dBHm","sku_image_url":"/img/product/paper_clip_left_2.jpg"}`
	orderRest    = `"order_statuses":{"0":{"identifier":"accepted","title":"Accepted","description":"The order has been accepted by StartUpWebApp.com and is being processed.","created_date_time":"2026-01-02T08:05:00.001Z"}},` +
		`"order_shipping_address":{"name":"John Doe","address_line1":"1 Main St","city":"Springfield","state":"IL","zip":"62701","country":"US","country_code":"US"},` +
		`"order_billing_address":{"name":"John Doe","address_line1":"1 Main St","city":"Springfield","state":"IL","zip":"62701","country":"US","country_code":"US"},` +
		`"order_payment_info":{"email":"john@example.com","payment_type":"card","card_name":"John Doe","card_brand":null,"card_last4":null,"card_exp_month":null,"card_exp_year":null,"card_zip":null}}`
)

// TestOrderDetailAccess pins O20 (§5 O20, §12 Q26): the exact success body,
// and who may see which order.
func TestOrderDetailAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	owner := newMember(t, e.db, "owner1", "owner@example.com")
	stranger := newMember(t, e.db, "stranger1", "stranger@example.com")
	seedOrder(t, e.db, "mEmBeR0001", owner, "USPSRetailGround", "2026-01-02T08:05:00Z")
	seedOrder(t, e.db, "gUeSt00001", 0, "", "2026-01-02T08:05:00.123456Z")

	anon := e.browser(t, hostA)
	own := e.browser(t, hostA)
	own.login(owner)
	other := e.browser(t, hostA)
	other.login(stranger)

	memberOrder := `{"order_detail":"success","order_data":{"order_attributes":{"identifier":"mEmBeR0001","order_date_time":"2026-01-02T08:05:00Z","sales_tax_amt":"0.00"},` +
		`"order_items":{"product_sku_data":{"0":` + orderLine + `}},"order_shipping_method":` + retailGround + `,` +
		`"order_totals":{"item_subtotal":"7.00","shipping_subtotal":"9.56","order_total":"16.56"},` + orderRest + v
	guestOrder := `{"order_detail":"success","order_data":{"order_attributes":{"identifier":"gUeSt00001","order_date_time":"2026-01-02T08:05:00.123Z","sales_tax_amt":"0.00"},` +
		`"order_items":{"product_sku_data":{"0":` + orderLine + `}},"order_shipping_method":{},` +
		`"order_totals":{"item_subtotal":"7.00","shipping_subtotal":"0.00","order_total":"7.00"},` + orderRest + v
	fail := func(ident, code string) string {
		return `{"order_detail":"error","errors":{"error":"` + code + `"},"order_identifier":"` + ident + `"` + v
	}
	tests := []struct {
		name string
		b    *browser
		path string
		want string
	}{
		{"owner sees own order", own, "/order/mEmBeR0001", memberOrder},
		{"anonymous, member order", anon, "/order/mEmBeR0001", fail("mEmBeR0001", "log-in-required-to-view-order")},
		{"another member's order", other, "/order/mEmBeR0001", fail("mEmBeR0001", "order-not-in-account")},
		{"anonymous sees guest order", anon, "/order/gUeSt00001", guestOrder},
		{"member, guest order", own, "/order/gUeSt00001", fail("gUeSt00001", "order-not-in-account")},
		{"unknown", anon, "/order/nOsUcHoRdEr", fail("nOsUcHoRdEr", "order-not-found")},
		{"identifier is case-sensitive", anon, "/order/GUEST00001", fail("GUEST00001", "order-not-found")},
		{"a fixed name in another case is an order lookup", anon, "/order/Products", fail("Products", "order-not-found")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.b.get(tc.path)
			if a.status != 200 || a.raw != tc.want {
				t.Errorf("GET %s\n got %d %s\nwant %s", tc.path, a.status, a.raw, tc.want)
			}
		})
	}

}

// TestCheckoutGate pins §5.1 "Checkout allowed" for O11-O15, O18 and O19:
// the configured lists, "*", exact usernames and an_ct values, and NULL.
func TestCheckoutGate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	listed := newMember(t, e.db, "listed", "listed@example.com")
	unlisted := newMember(t, e.db, "unlisted", "unlisted@example.com")

	anonListed := e.browser(t, hostA)
	anonListed.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
	anonOther := e.browser(t, hostA)
	anonOther.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
	var listedID string
	if err := e.db.QueryRow(t.Context(), `SELECT anonymous_cart_id FROM cart ORDER BY id LIMIT 1`).Scan(&listedID); err != nil {
		t.Fatal(err)
	}
	m1 := e.browser(t, hostA)
	m1.login(listed)
	m2 := e.browser(t, hostA)
	m2.login(unlisted)

	setLists := func(t *testing.T, users, anons *string) {
		t.Helper()
		for k, val := range map[string]*string{"usernames_allowed_to_checkout": users, "an_ct_values_allowed_to_checkout": anons} {
			if _, err := e.db.Exec(t.Context(), `UPDATE order_configuration SET string_value = $2 WHERE key = $1`, k, val); err != nil {
				t.Fatal(err)
			}
		}
	}
	str := func(s string) *string { return &s }
	const no = `{"checkout_allowed":false` + v
	gated := []struct {
		method, path string
	}{
		{"GET", "/order/confirm-items"}, {"GET", "/order/confirm-shipping-method"}, {"GET", "/order/confirm-totals"},
		{"POST", "/order/anonymous-email-address-payment-lookup"}, {"GET", "/order/change-confirmation-email-address"},
	}
	tests := []struct {
		name         string
		users, anons *string
		allowed      map[*browser]bool
	}{
		{"stars", str("*"), str("*"), map[*browser]bool{anonListed: true, anonOther: true, m1: true, m2: true}},
		{"exact values", str("someone,listed"), str("x," + listedID), map[*browser]bool{anonListed: true, anonOther: false, m1: true, m2: false}},
		{"star among others", str("a,*"), str("b,*"), map[*browser]bool{anonListed: true, anonOther: true, m1: true, m2: true}},
		{"no trimming", str(" listed"), str(" " + listedID), map[*browser]bool{anonListed: false, anonOther: false, m1: false, m2: false}},
		{"null lists", nil, nil, map[*browser]bool{anonListed: false, anonOther: false, m1: false, m2: false}},
		{"empty lists", str(""), str(""), map[*browser]bool{anonListed: false, anonOther: false, m1: false, m2: false}},
	}
	names := map[*browser]string{anonListed: "anonymous listed", anonOther: "anonymous other", m1: "member listed", m2: "member unlisted"}
	for _, tc := range tests {
		setLists(t, tc.users, tc.anons)
		for b, ok := range tc.allowed {
			t.Run(tc.name+"/"+names[b], func(t *testing.T) {
				want := map[bool]string{true: `{"checkout_allowed":true` + v, false: no}[ok]
				if a := b.get("/order/checkout-allowed"); a.raw != want {
					t.Errorf("O11: got %s, want %s", a.raw, want)
				}
				for _, g := range gated {
					var a answer
					if g.method == "GET" {
						a = b.get(g.path)
					} else {
						a = b.post(g.path, form("anonymous_email_address", "gate@example.com"))
					}
					if got := a.raw == no; got == ok {
						t.Errorf("%s %s allowed=%v: %s", g.method, g.path, ok, a.raw)
					}
				}
				cs := b.post("/order/create-checkout-session", nil).raw
				if got := strings.Contains(cs, `"checkout-not-allowed"`); got == ok {
					t.Errorf("O15 allowed=%v: %s", ok, cs)
				}
			})
		}
	}
}

// TestConfirmPageFlow pins what checkout/confirm reads: O12-O14 exact
// bodies with and without a cart, O18's three outcomes and its prospect,
// O19 with and without a cart (§12 Q19), and O4 re-selecting the default
// method after O7 cleared it (§12 Q23).
func TestConfirmPageFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	newMember(t, e.db, "taken", "taken@example.com")
	b := e.browser(t, hostA)
	line := `{"sku_id":1,"sku_type__title":"product","sku_inventory__title":"In Stock","sku_inventory__identifier":"in-stock","color":"Silver","size":"Medium","description":"Left Sided Paperclip","price":"3.50","quantity":2,"parent_product__title":"Paper Clips","parent_product__title_url":"PaperClips","parent_product__identifier":"bSusp6dBHm","sku_image_url":"/img/product/paper_clip_left_2.jpg"}`
	lookup := `"anonymous_email_address_payment_lookup":`
	memberErr := `{"checkout_allowed":true,` + lookup + `"error","errors":{"error":"email-address-is-associated-with-member","description":"This email address is already associated with a member account. Please \u003cspan class=\"login-form-error-link\"\u003e\u003ca href=\"/login?next=checkout/confirm\"\u003elogin\u003c/a\u003e\u003c/span\u003e to continue."}` + v
	steps := []struct {
		name, method, path string
		form               map[string]string
		want               string
	}{
		{"O12 no cart", "GET", "/order/confirm-items", nil, `{"checkout_allowed":true,"cart_found":false,"item_data":{}` + v},
		{"O13 no cart", "GET", "/order/confirm-shipping-method", nil, `{"checkout_allowed":true,"cart_found":false,"confirm_shipping_method":{}` + v},
		{"O14 no cart", "GET", "/order/confirm-totals", nil, `{"checkout_allowed":true,"cart_found":false,"confirm_totals_data":{"item_subtotal":0,"shipping_subtotal":0,"cart_total":0}` + v},
		{"O19 no cart", "GET", "/order/change-confirmation-email-address", nil, `{"checkout_allowed":true,"change_confirmation_email_address":"success"` + v},
		{"O15 no cart", "POST", "/order/create-checkout-session", nil, `{"create_checkout_session":"error","errors":{"error":"cart-not-found"}` + v},
		{"add", "POST", "/order/cart-add-product-sku", map[string]string{"sku_id": "1", "quantity": "2"}, `{"cart_add_product_sku":"success","sku_id":"1","cart_item_count":1` + v},
		{"O13 nothing selected, no default applied", "GET", "/order/confirm-shipping-method", nil, `{"checkout_allowed":true,"cart_found":true,"confirm_shipping_method":{}` + v},
		{"O14 no method", "GET", "/order/confirm-totals", nil, `{"checkout_allowed":true,"cart_found":true,"confirm_totals_data":{"item_subtotal":"7.00","shipping_subtotal":0,"cart_total":"7.00"}` + v},
		{"O12", "GET", "/order/confirm-items", nil, `{"checkout_allowed":true,"cart_found":true,"item_data":{"product_sku_data":{"0":` + line + `}}` + v},
		{"O4 selects the default", "GET", "/order/cart-shipping-methods", nil, `"shipping_method_selected":"USPSRetailGround"` + v},
		{"O8 another method", "POST", "/order/cart-update-shipping-method", map[string]string{"shipping_method_identifier": "UPSGround"}, `"cart_totals_data":{"item_subtotal":"7.00","shipping_subtotal":"11.34","cart_total":"18.34"}` + v},
		{"O4 keeps a chosen method", "GET", "/order/cart-shipping-methods", nil, `"shipping_method_selected":"UPSGround"` + v},
		{"add a second line", "POST", "/order/cart-add-product-sku", map[string]string{"sku_id": "6", "quantity": "1"}, `"cart_item_count":2` + v},
		{"O7 clears the method", "POST", "/order/cart-remove-sku", map[string]string{"sku_id": "6", "quantity": "2"}, `"shipping_method_selected":null,"cart_totals_data":{"item_subtotal":"7.00","shipping_subtotal":0,"cart_total":"7.00"}` + v},
		{"O13 after O7", "GET", "/order/confirm-shipping-method", nil, `{"checkout_allowed":true,"cart_found":true,"confirm_shipping_method":{}` + v},
		{"O4 re-applies the default", "GET", "/order/cart-shipping-methods", nil, `"shipping_method_selected":"USPSRetailGround"` + v},
		{"O5 with the default", "GET", "/order/cart-totals", nil, `{"cart_found":true,"cart_totals_data":{"item_subtotal":"7.00","shipping_subtotal":"9.56","cart_total":"16.56"}` + v},
		{"O13 after O4", "GET", "/order/confirm-shipping-method", nil, `{"checkout_allowed":true,"cart_found":true,"confirm_shipping_method":` + retailGround + v},
		{"O18 missing", "POST", "/order/anonymous-email-address-payment-lookup", map[string]string{}, `{"checkout_allowed":true,` + lookup + `"error","errors":{"error":"anonymous-email-address-required","description":"Anonymous email address is required"}` + v},
		{"O18 by GET", "GET", "/order/anonymous-email-address-payment-lookup?anonymous_email_address=guest@example.com", nil, `{"checkout_allowed":true,` + lookup + `"error","errors":{"error":"anonymous-email-address-required","description":"Anonymous email address is required"}` + v},
		{"O18 member's address", "POST", "/order/anonymous-email-address-payment-lookup", map[string]string{"anonymous_email_address": "taken@example.com"}, memberErr},
		{"O18 success", "POST", "/order/anonymous-email-address-payment-lookup", map[string]string{"anonymous_email_address": "guest@example.com"}, `{"checkout_allowed":true,` + lookup + `"success","stripe_publishable_key":"pk_test_alpha","customer_data":null` + v},
		{"O18 again", "POST", "/order/anonymous-email-address-payment-lookup", map[string]string{"anonymous_email_address": "guest@example.com"}, `{"checkout_allowed":true,` + lookup + `"success","stripe_publishable_key":"pk_test_alpha","customer_data":null` + v},
		{"O19 with a cart", "GET", "/order/change-confirmation-email-address", nil, `{"checkout_allowed":true,"change_confirmation_email_address":"success"` + v},
	}
	for _, s := range steps {
		var a answer
		if s.method == "GET" {
			a = b.get(s.path)
		} else {
			f := form()
			for k, val := range s.form {
				f.Set(k, val)
			}
			a = b.post(s.path, f)
		}
		if a.status != 200 || !strings.HasSuffix(a.raw, s.want) || (strings.HasPrefix(s.want, "{") && a.raw != s.want) {
			t.Errorf("%s: %s %s\n got %d %s\nwant %s", s.name, s.method, s.path, a.status, a.raw, s.want)
		}
	}
	var n int
	err := e.db.QueryRow(t.Context(), `SELECT count(*) FROM prospect WHERE email = 'guest@example.com' AND email_unsubscribed
		AND length(pr_cd) = 20 AND length(email_unsubscribe_string) = 20 AND length(email_unsubscribe_string_signed) = 43
		AND swa_comment = 'Captured from incomplete anonymous order'`).Scan(&n)
	if err != nil || n != 1 {
		t.Errorf("O18 prospect: %d rows (%v)", n, err)
	}
	if c := count(t, e.db, `SELECT count(*) FROM prospect`); c != 1 {
		t.Errorf("%d prospects, want 1 (the member's address and the repeat make none)", c)
	}
}

// TestMethodsAndCookies pins §1.1/§1.2/§1.5 transport details: views answer
// any method (form fields come only from POST bodies), and the an_ct
// cookie's attributes.
func TestMethodsAndCookies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.browser(t, hostA)
	tests := []struct {
		name, method, path string
		status             int
		want               string
	}{
		{"GET on a POST view reads no query fields", "GET", "/order/cart-add-product-sku?sku_id=1&quantity=1", 200, `{"cart_add_product_sku":"error","errors":{"error":"sku-id-required"},"sku_id":null` + v},
		{"GET O6 without a cart", "GET", "/order/cart-update-sku-quantity?sku_id=1", 200, `{"cart_update_sku_quantity":"error","errors":{"error":"cart-not-found"}` + v},
		{"POST on a GET view", "POST", "/order/cart-items", 200, `{"cart_found":false,"item_data":{}` + v},
		{"POST on the root", "POST", "/order/", 200, shop.RootText},
		{"PUT on O11", "PUT", "/order/checkout-allowed", 200, `{"checkout_allowed":true` + v},
		{"HEAD", "HEAD", "/order/products", 200, ""},
		{"trailing slash on a product", "GET", "/order/product/bSusp6dBHm/", 404, ""},
		{"trailing slash on an order", "GET", "/order/abcdef/", 404, ""},
		{"deeper path", "GET", "/order/product/bSusp6dBHm/x", 404, ""},
		{"encoded hyphen", "GET", "/order/abc%2Ddef", 404, ""},
		{"underscore", "GET", "/order/abc_def", 404, ""},
		{"non-ASCII letter", "GET", "/order/%C3%A9t%C3%A9", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.method == "POST" || tc.method == "PUT" {
				b.get("/test/token")
				a = b.do(tc.method, tc.path, form(), map[string]string{"Origin": frontend, "X-CSRFToken": b.cookie("csrftoken")})
			} else {
				a = b.do(tc.method, tc.path, nil, nil)
			}
			if a.status != tc.status || (tc.want != "" && a.raw != tc.want) {
				t.Errorf("%s %s\n got %d %s\nwant %d %s", tc.method, tc.path, a.status, a.raw, tc.status, tc.want)
			}
		})
	}

	t.Run("an_ct attributes", func(t *testing.T) {
		a := b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
		var set string
		for _, h := range a.header.Values("Set-Cookie") {
			if strings.HasPrefix(h, "an_ct=") {
				set = h
			}
		}
		attrs := map[string]bool{}
		for _, p := range strings.Split(set, ";")[1:] {
			k, _, _ := strings.Cut(strings.TrimSpace(p), "=")
			attrs[strings.ToLower(k)] = true
		}
		for _, want := range []string{"max-age=31536000", "path=/"} {
			if !strings.Contains(strings.ToLower(set), want) {
				t.Errorf("an_ct %q lacks %s", set, want)
			}
		}
		for _, bad := range []string{"httponly", "secure", "samesite"} {
			if attrs[bad] {
				t.Errorf("an_ct %q has %s", set, bad)
			}
		}
	})
	t.Run("O9 leaves an_ct as is", func(t *testing.T) {
		a := b.post("/order/cart-delete-cart", nil)
		if a.raw != `{"cart_delete_cart":"success"`+v || len(a.header.Values("Set-Cookie")) != 0 && strings.Contains(strings.Join(a.header.Values("Set-Cookie"), ";"), "an_ct") {
			t.Errorf("O9: %s %v", a.raw, a.header.Values("Set-Cookie"))
		}
	})
	t.Run("sign-in expires an_ct", func(t *testing.T) {
		b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
		a := b.post("/test/login/"+strconv.FormatInt(newMember(t, e.db, "cookieuser", "cookie@example.com"), 10), nil)
		var set string
		for _, h := range a.header.Values("Set-Cookie") {
			if strings.HasPrefix(h, "an_ct=") {
				set = h
			}
		}
		low := strings.ToLower(set)
		if set == "" || !strings.Contains(low, "expires=thu, 01 jan 1970 00:00:00 gmt") || !strings.Contains(low, "path=/") ||
			strings.Contains(low, "samesite") || strings.Contains(low, "max-age=3") {
			t.Errorf("an_ct expiry %q", set)
		}
	})
}
