package shop_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/tenant/shop"
)

// TestCatalogueWritesShowOnEveryReplica: two data planes keep the catalogue
// in memory; a price changed by plain SQL in the tenant database (no
// platform code is told) shows on both once the fresh window has passed,
// and the cart uses the new price at once.
func TestCatalogueWritesShowOnEveryReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{replica: true})
	one := e.browser(t, hostA)
	two := e.browser(t, hostA)
	two.base = e.replica
	const product = "/order/product/bSusp6dBHm"
	price := func(b *browser) string {
		t.Helper()
		a := b.get(product)
		if a.status != 200 {
			t.Fatalf("GET %s: %d %s", product, a.status, a.raw)
		}
		// SKU 1 is the first of the product's SKUs.
		i := strings.Index(a.raw, `"1":{"color"`)
		j := strings.Index(a.raw[i:], `"price":"`)
		if i < 0 || j < 0 {
			t.Fatalf("no SKU 1 price in %s", a.raw)
		}
		rest := a.raw[i+j+len(`"price":"`):]
		return rest[:strings.IndexByte(rest, '"')]
	}
	listed := func(b *browser) string {
		t.Helper()
		return b.get("/order/products").raw
	}
	if p1, p2 := price(one), price(two); p1 != "3.50" || p2 != "3.50" {
		t.Fatalf("before: replica prices %s and %s, want 3.50", p1, p2)
	}
	before := listed(two)

	// A cart made before the change, read after it.
	cartB := e.browser(t, hostA)
	cartB.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "2"))

	written := time.Now()
	if _, err := e.db.Exec(context.Background(), `INSERT INTO sku_price (sku_id, price) VALUES (1, 4.25)`); err != nil {
		t.Fatal(err)
	}
	if tot := cartB.get("/order/cart-totals").raw; !strings.Contains(tot, `"item_subtotal":"8.50"`) {
		t.Errorf("cart totals right after the price change: %s, want the new price (2 x 4.25 = 8.50)", tot)
	}
	time.Sleep(time.Until(written.Add(shop.DefaultCatalogFresh + 50*time.Millisecond)))
	if p1, p2 := price(one), price(two); p1 != "4.25" || p2 != "4.25" {
		t.Errorf("after the fresh window: replica prices %s and %s, want 4.25 on both", p1, p2)
	}
	if after := listed(two); after == before || !strings.Contains(after, `"price_low":"3.50"`) {
		// The paper clips' other SKU still costs 3.50; the listing changed
		// all the same (its high price).
		t.Errorf("product list after the change:\n%s\nbefore:\n%s", after, before)
	}
}
