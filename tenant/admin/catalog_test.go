package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shopGet and shopPost call the storefront's API (/order/...) as a visitor
// with the client's cookies and the member CSRF token.
func shopGet(c *client, path string) map[string]any {
	c.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://"+c.host+path, nil)
	c.prepare(req, http.MethodGet)
	status, out := c.send(req)
	if status != 200 {
		c.t.Fatalf("GET %s = %d %s", path, status, c.raw)
	}
	return out
}

func shopPost(c *client, path string, form url.Values) map[string]any {
	c.t.Helper()
	if c.cookies["csrftoken"] == "" {
		shopGet(c, "/user/token")
	}
	req := httptest.NewRequest(http.MethodPost, "http://"+c.host+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c.prepare(req, http.MethodGet)
	req.Header.Set("Origin", frontend)
	req.Header.Set("X-CSRFToken", c.cookies["csrftoken"])
	status, out := c.send(req)
	if status != 200 {
		c.t.Fatalf("POST %s = %d %s", path, status, c.raw)
	}
	return out
}

// eventually polls fn for up to 0.5 s (plus slack for a loaded machine):
// the shop serves the catalogue from memory and rechecks its version.
func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCatalogReachesShop: a product with two SKUs and prices made through
// the admin API shows on GET /order/products with nothing more to do (the
// catalogue version the tenant database bumps); a new price is a new
// sku_price row, and the cart shows it.
func TestCatalogReachesShop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.logs.String())
		}
	})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	visitor := f.client(hostA)
	shopGet(visitor, "/order/products") // warm the shop's cache first

	p := owner.must(201, "POST", api+"/products", map[string]any{"title": "Stapler <script>alert(1)</script>", "title_url": "Stapler",
		"headline": "Staples paper", "description_part_1": "Metal", "display_order": -1,
		"images": []map[string]any{{"url": "/img/product/stapler.jpg", "main": true, "caption": "A stapler"}},
		"videos": []map[string]any{{"url": "https://video.example/stapler.mp4", "thumbnail_url": "/img/stapler-thumb.jpg"}}})
	ident, _ := p["identifier"].(string)
	if len(ident) != 10 || strings.Trim(ident, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		t.Fatalf("identifier %q is not 10 ASCII letters or digits", ident)
	}
	if p["title"] != "Stapler <script>alert(1)</script>" {
		t.Fatalf("title stored as %q", p["title"])
	}
	pid := int64(p["id"].(float64))
	path := api + "/products/" + strconv.FormatInt(pid, 10)
	red := owner.must(201, "POST", api+"/skus", map[string]any{"product_id": pid, "color": "Red", "size": "Small", "inventory": "in-stock", "price": "12.50"})
	blue := owner.must(201, "POST", api+"/skus", map[string]any{"product_id": pid, "color": "Blue", "size": "Large", "inventory": "back-ordered", "price": 14})
	got := owner.must(200, "GET", path, nil)
	if skus := got["skus"].([]any); len(skus) != 2 || len(got["images"].([]any)) != 1 || len(got["videos"].([]any)) != 1 {
		t.Fatalf("product = %s", owner.raw)
	}

	eventually(t, "the product on /order/products", func() bool {
		out := shopGet(visitor, "/order/products")
		pd, _ := out["products_data"].(map[string]any)[ident].(map[string]any)
		if pd == nil || pd["price_low"] != "12.50" || pd["price_high"] != "14.00" {
			t.Logf("products: %s", visitor.raw)
			return false
		}
		return true
	})

	// In the cart at 12.50, then at the new price.
	redID := strconv.FormatInt(int64(red["id"].(float64)), 10)
	out := shopPost(visitor, "/order/cart-add-product-sku", url.Values{"sku_id": {redID}, "quantity": {"2"}})
	if out["cart_add_product_sku"] != "success" {
		t.Fatalf("add to cart: %s", visitor.raw)
	}
	if tot := shopGet(visitor, "/order/cart-totals")["cart_totals_data"].(map[string]any); tot["item_subtotal"] != "25.00" {
		t.Fatalf("cart totals = %s", visitor.raw)
	}
	np := owner.must(201, "POST", api+"/skus/"+redID+"/prices", map[string]any{"price": "9.99"})
	if np["price"] != "9.99" || len(np["prices"].([]any)) != 2 {
		t.Fatalf("new price = %s", owner.raw)
	}
	var rows int
	if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT count(*) FROM sku_price WHERE sku_id = $1`, redID).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("sku_price rows = %d, %v; want the history of 2", rows, err)
	}
	if tot := shopGet(visitor, "/order/cart-totals")["cart_totals_data"].(map[string]any); tot["item_subtotal"] != "19.98" {
		t.Fatalf("cart totals after the new price = %s", visitor.raw)
	}
	eventually(t, "the new low price on /order/products", func() bool {
		pd, _ := shopGet(visitor, "/order/products")["products_data"].(map[string]any)[ident].(map[string]any)
		return pd != nil && pd["price_low"] == "9.99"
	})

	// The title is escaped on the dashboard's low-stock list (blue is back-ordered).
	_ = blue
	status, page := owner.get("/admin/")
	if status != 200 {
		t.Fatalf("dashboard = %d", status)
	}
	if strings.Contains(page, "<script>alert(1)</script>") || !strings.Contains(page, "Stapler &lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("dashboard does not show the title escaped:\n%s", page)
	}
}

// TestCatalogValidation: bad input is a 400 naming the field, and nothing
// is written.
func TestCatalogValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.logs.String())
		}
	})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	var before int
	_ = f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT (SELECT count(*) FROM product) + (SELECT count(*) FROM sku) + (SELECT count(*) FROM sku_price) + (SELECT count(*) FROM discount_code)`).Scan(&before)
	cases := []struct {
		method, path string
		body         any
		code, field  string
	}{
		{"POST", "/products", map[string]any{"title_url": "X"}, "required", "title"},
		{"POST", "/products", map[string]any{"title": "X"}, "required", "title_url"},
		{"POST", "/products", map[string]any{"title": "X", "title_url": "a b"}, "invalid", "title_url"},
		{"POST", "/products", map[string]any{"title": strings.Repeat("x", 201), "title_url": "X"}, "invalid", "title"},
		{"POST", "/products", map[string]any{"title": "X", "title_url": "X", "images": []map[string]any{{"url": "javascript:alert(1)"}}}, "invalid", "images[0].url"},
		{"POST", "/products", map[string]any{"title": "X", "title_url": "X", "videos": []map[string]any{{"url": "/v.mp4"}}}, "required", "videos[0].thumbnail_url"},
		{"POST", "/products", map[string]any{"title": 5}, "invalid", "title"},
		{"POST", "/skus", map[string]any{"price": "1.00"}, "required", "inventory"},
		{"POST", "/skus", map[string]any{"inventory": "in-stock"}, "required", "price"},
		{"POST", "/skus", map[string]any{"inventory": "in-stock", "price": "-1"}, "invalid", "price"},
		{"POST", "/skus", map[string]any{"inventory": "in-stock", "price": "1.005"}, "invalid", "price"},
		{"POST", "/skus", map[string]any{"inventory": "lost", "price": "1"}, "invalid", "inventory"},
		{"POST", "/skus", map[string]any{"inventory": "in-stock", "price": "1", "product_id": 999}, "invalid", "product_id"},
		{"PATCH", "/skus/1", map[string]any{"price": "1"}, "invalid", "price"},
		{"POST", "/skus/1/prices", map[string]any{"price": "abc"}, "invalid", "price"},
		{"PATCH", "/shipping-methods/1", map[string]any{"shipping_cost": "-2"}, "invalid", "shipping_cost"},
		{"PATCH", "/shipping-methods/1", map[string]any{}, "required", "active"},
		{"POST", "/discount-codes", map[string]any{"description": "d"}, "required", "code"},
		{"POST", "/discount-codes", map[string]any{"code": "WELCOME10", "description": "d", "start_date_time": "2026-01-01T00:00:00Z", "end_date_time": "2025-01-01T00:00:00Z", "discount_amount": 5, "discount_type": "percent-off"}, "invalid", "end_date_time"},
		{"POST", "/discount-codes", map[string]any{"code": "BIG", "description": "d", "start_date_time": "2026-01-01T00:00:00Z", "end_date_time": "2027-01-01T00:00:00Z", "discount_amount": 101, "discount_type": "percent-off"}, "invalid", "discount_amount"},
		{"POST", "/discount-codes", map[string]any{"code": "ODD", "description": "d", "start_date_time": "2026-01-01T00:00:00Z", "end_date_time": "2027-01-01T00:00:00Z", "discount_amount": 1, "discount_type": "free-lunch"}, "invalid", "discount_type"},
		{"POST", "/discount-codes", map[string]any{"code": "WELCOME10", "description": "d", "start_date_time": "2026-01-01T00:00:00Z", "end_date_time": "2027-01-01T00:00:00Z", "discount_amount": 1, "discount_type": "dollar-amt-off"}, "code-taken", "code"},
		{"POST", "/terms", map[string]any{}, "required", "version_note"},
	}
	for _, tc := range cases {
		status := 400
		if tc.code == "code-taken" {
			status = 409
		}
		owner.refused(status, tc.code, tc.field, tc.method, api+tc.path, tc.body)
	}
	var after int
	_ = f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT (SELECT count(*) FROM product) + (SELECT count(*) FROM sku) + (SELECT count(*) FROM sku_price) + (SELECT count(*) FROM discount_code)`).Scan(&after)
	if after != before {
		t.Fatalf("refused requests wrote rows: %d before, %d after", before, after)
	}
	// The good ones.
	owner.must(201, "POST", api+"/discount-codes", map[string]any{"code": "SPRING5", "description": "{} off", "start_date_time": "2026-01-01T00:00:00Z",
		"end_date_time": "2027-01-01T00:00:00Z", "discount_amount": "5.00", "order_minimum": "20", "discount_type": "dollar-amt-off", "combinable": true})
	sm := owner.must(200, "PATCH", api+"/shipping-methods/3", map[string]any{"active": false, "shipping_cost": "11.00"})
	if sm["active"] != false || sm["shipping_cost"] != "11" && sm["shipping_cost"] != "11.00" {
		t.Fatalf("shipping method = %s", owner.raw)
	}
	tv := owner.must(201, "POST", api+"/terms", map[string]any{"version_note": "New terms"})
	if tv["version"] != float64(2) {
		t.Fatalf("terms = %s", owner.raw)
	}
	staff := f.signIn(hostA, f.addStaff(owner, "staff"), staffPassword)
	staff.refused(403, "forbidden", "", "POST", api+"/terms", map[string]any{"version_note": "Mine"})
	// Another tenant's back office sees none of it.
	otherOwner := f.signIn(hostB, f.owner[f.b.ID], ownerPassword)
	if items := otherOwner.must(200, "GET", api+"/discount-codes", nil)["items"].([]any); len(items) != 1 {
		t.Fatalf("tenant b sees %d codes", len(items))
	}
}
