package admin_test

import (
	"net/url"
	"strconv"
	"testing"
)

// TestArchiveProduct: archiving takes a product off sale on the shop (not
// listed, its page the contract's not-found, its SKUs not addable to a
// cart) without deleting anything; restoring puts it back. A product made
// archived is a draft. Both are audited.
func TestArchiveProduct(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	visitor := f.client(hostA)
	p := owner.must(201, "POST", api+"/products", map[string]any{"title": "Lamp", "title_url": "Lamp"})
	pid := strconv.FormatInt(int64(p["id"].(float64)), 10)
	ident := p["identifier"].(string)
	sku := owner.must(201, "POST", api+"/skus", map[string]any{"product_id": p["id"], "color": "White", "inventory": "in-stock", "price": "30"})
	skuID := strconv.FormatInt(int64(sku["id"].(float64)), 10)
	listed := func() bool {
		_, ok := shopGet(visitor, "/order/products")["products_data"].(map[string]any)[ident]
		return ok
	}
	shown := func() bool { return shopGet(visitor, "/order/product/"+ident)["product"] != "error" }
	eventually(t, "the new product on sale", func() bool { return listed() && shown() })

	if got := owner.must(200, "PATCH", api+"/products/"+pid, map[string]any{"archived": true}); got["archived_at"] == nil {
		t.Fatalf("archived = %s", owner.raw)
	}
	eventually(t, "the archived product off the shop", func() bool { return !listed() && !shown() })
	if out := shopGet(visitor, "/order/product/"+ident); out["errors"].(map[string]any)["error"] != "product-identifier-not-found" {
		t.Errorf("archived product page = %s", visitor.raw)
	}
	if out := shopPost(visitor, "/order/cart-add-product-sku", url.Values{"sku_id": {skuID}, "quantity": {"1"}}); out["cart_add_product_sku"] != "error" {
		t.Errorf("added an archived product's SKU: %s", visitor.raw)
	}
	// The back office still has it, and can filter.
	if items := owner.must(200, "GET", api+"/products?archived=true", nil)["items"].([]any); len(items) != 1 {
		t.Errorf("archived list = %s", owner.raw)
	}
	for _, it := range owner.must(200, "GET", api+"/products?archived=false", nil)["items"].([]any) {
		if it.(map[string]any)["identifier"] == ident {
			t.Errorf("archived product in the on-sale list")
		}
	}
	owner.refused(400, "invalid", "archived", "GET", api+"/products?archived=maybe", nil)
	owner.refused(400, "invalid", "archived", "PATCH", api+"/products/"+pid, map[string]any{"archived": "yes"})

	// Archiving again changes nothing; restoring puts it back.
	again := owner.must(200, "PATCH", api+"/products/"+pid, map[string]any{"archived": true, "headline": "Bright"})
	if again["archived_at"] == nil || again["headline"] != "Bright" {
		t.Errorf("second archive = %s", owner.raw)
	}
	if got := owner.must(200, "PATCH", api+"/products/"+pid, map[string]any{"archived": false}); got["archived_at"] != nil {
		t.Fatalf("restored = %s", owner.raw)
	}
	eventually(t, "the restored product on sale", func() bool { return listed() && shown() })
	if out := shopPost(visitor, "/order/cart-add-product-sku", url.Values{"sku_id": {skuID}, "quantity": {"1"}}); out["cart_add_product_sku"] != "success" {
		t.Errorf("add after restore: %s", visitor.raw)
	}

	// A draft is made off sale.
	draft := owner.must(201, "POST", api+"/products", map[string]any{"title": "Next season", "title_url": "Next", "archived": true})
	if draft["archived_at"] == nil {
		t.Errorf("draft = %s", owner.raw)
	}
	audit := owner.must(200, "GET", api+"/audit", nil)["items"].([]any)
	seen := map[string]int{}
	for _, e := range audit {
		seen[e.(map[string]any)["action"].(string)]++
	}
	if seen["product.archived"] != 1 || seen["product.restored"] != 1 {
		t.Errorf("audit actions %v", seen)
	}
}

// TestDiscountCodeEdits: a code's fields change under the create rules, a
// cart holding it totals with the new amount at once, and a refused change
// writes nothing.
func TestDiscountCodeEdits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	code := owner.must(201, "POST", api+"/discount-codes", map[string]any{"code": "TAKE5", "description": "5 off", "start_date_time": "2026-01-01T00:00:00Z",
		"end_date_time": "2036-01-01T00:00:00Z", "discount_amount": "5", "discount_type": "dollar-amt-off"})
	path := api + "/discount-codes/" + strconv.FormatInt(int64(code["id"].(float64)), 10)
	if got := owner.must(200, "GET", path, nil); got["code"] != "TAKE5" {
		t.Fatalf("get = %s", owner.raw)
	}

	visitor := f.client(hostA)
	shopPost(visitor, "/order/cart-add-product-sku", url.Values{"sku_id": {"1"}, "quantity": {"3"}})
	if out := shopPost(visitor, "/order/cart-apply-discount-code", url.Values{"discount_code_id": {"TAKE5"}}); out["cart_apply_discount_code"] != "success" {
		t.Fatalf("apply = %s", visitor.raw)
	}
	discount := func() any {
		return shopGet(visitor, "/order/cart-totals")["cart_totals_data"].(map[string]any)["item_discount"]
	}
	if d := discount(); d != "5.00" {
		t.Fatalf("discount %v: %s", d, visitor.raw)
	}

	for _, tc := range []struct {
		body        map[string]any
		code, field string
	}{
		{map[string]any{"end_date_time": "2025-01-01T00:00:00Z"}, "invalid", "end_date_time"},
		{map[string]any{"discount_type": "percent-off", "discount_amount": 150}, "invalid", "discount_amount"},
		{map[string]any{"discount_type": "free-lunch"}, "invalid", "discount_type"},
		{map[string]any{"discount_amount": "-1"}, "invalid", "discount_amount"},
		{map[string]any{"code": ""}, "required", "code"},
		{map[string]any{"combinable": "yes"}, "invalid", "combinable"},
		{map[string]any{"code": "WELCOME10"}, "code-taken", "code"},
	} {
		status := 400
		if tc.code == "code-taken" {
			status = 409
		}
		owner.refused(status, tc.code, tc.field, "PATCH", path, tc.body)
	}
	owner.refused(404, "not-found", "", "PATCH", api+"/discount-codes/999999", map[string]any{"description": "x"})
	if d := discount(); d != "5.00" {
		t.Fatalf("refused edits changed the discount: %v", d)
	}

	got := owner.must(200, "PATCH", path, map[string]any{"discount_amount": "7.50", "description": "7.50 off"})
	if got["description"] != "7.50 off" || got["code"] != "TAKE5" || got["discount_type"] != "dollar-amt-off" {
		t.Fatalf("patched = %s", owner.raw)
	}
	if d := discount(); d != "7.50" {
		t.Errorf("discount after the edit %v: %s", d, visitor.raw)
	}
	// Ended, it can no longer be applied (a cart that holds it keeps it, as
	// upstream's totals do not look at the dates).
	owner.must(200, "PATCH", path, map[string]any{"end_date_time": "2026-01-02T00:00:00Z"})
	late := f.client(hostA)
	shopPost(late, "/order/cart-add-product-sku", url.Values{"sku_id": {"1"}, "quantity": {"1"}})
	if out := shopPost(late, "/order/cart-apply-discount-code", url.Values{"discount_code_id": {"TAKE5"}}); out["cart_apply_discount_code"] == "success" {
		t.Errorf("an ended code was applied: %s", late.raw)
	}
	audit := owner.must(200, "GET", api+"/audit?action=discount_code.updated", nil)["items"].([]any)
	if len(audit) != 2 || audit[1].(map[string]any)["before"] == nil {
		t.Errorf("audit = %s", owner.raw)
	}
}
