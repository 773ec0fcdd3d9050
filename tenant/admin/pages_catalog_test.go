package admin_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// TestCatalogPages: the catalogue editor's forms do what the API does:
// a product's fields, archiving with its confirmation, a SKU's inventory,
// a shipping method's cost, discount codes created and edited, terms
// published by an owner only. Refusals name the field and change nothing.
func TestCatalogPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	p := owner.must(201, "POST", api+"/products", map[string]any{"title": "Mug", "title_url": "Mug"})
	pid := strconv.FormatInt(int64(p["id"].(float64)), 10)
	sku := owner.must(201, "POST", api+"/skus", map[string]any{"product_id": p["id"], "color": "Blue", "inventory": "in-stock", "price": "8"})
	skuID := strconv.FormatInt(int64(sku["id"].(float64)), 10)

	status, html := owner.get("/admin/products/" + pid)
	m := csrfFieldRE.FindStringSubmatch(html)
	if status != 200 || m == nil || !strings.Contains(html, "On sale.") {
		t.Fatalf("product page = %d %s", status, html)
	}
	tok := m[1]
	form := func(path string, kv ...string) (int, string) {
		t.Helper()
		return owner.form(path, append([]string{"csrf_token", tok}, kv...)...)
	}
	if code, html := form("/admin/products/"+pid, "title", "Mug", "title_url", "bad url", "display_order", "2"); code != 400 ||
		!strings.Contains(html, `aria-invalid="true"`) {
		t.Errorf("bad URL title: %d %s", code, html)
	}
	if code, html := form("/admin/products/"+pid, "title", "Big mug", "title_url", "BigMug", "headline", "Holds more",
		"description_part_1", "One", "description_part_2", "Two", "display_order", "3"); code != 200 || !strings.Contains(html, "Product saved") {
		t.Errorf("save: %d %s", code, html)
	}
	got := owner.must(200, "GET", api+"/products/"+pid, nil)
	if got["title"] != "Big mug" || got["description_part_2"] != "Two" || got["display_order"] != float64(3) {
		t.Errorf("after the form: %s", owner.raw)
	}
	if code, _ := form("/admin/products/"+pid+"/archive", "action", "archive"); code != 400 {
		t.Errorf("archive without confirmation: %d", code)
	}
	if owner.must(200, "GET", api+"/products/"+pid, nil)["archived_at"] != nil {
		t.Fatal("archived without confirmation")
	}
	if code, html := form("/admin/products/"+pid+"/archive", "action", "archive", "confirm", "yes"); code != 200 || !strings.Contains(html, "Archived") {
		t.Errorf("archive: %d %s", code, html)
	}
	if _, html := owner.get("/admin/products?archived=true"); !strings.Contains(html, "Big mug") {
		t.Errorf("archived list lacks the product:\n%s", html)
	}
	if _, html := owner.get("/admin/products?archived=false"); strings.Contains(html, "Big mug") {
		t.Errorf("on-sale list has the archived product")
	}
	if code, _ := form("/admin/products/"+pid+"/skus/"+skuID, "color", "Navy", "size", "L", "description", "", "inventory", "out-of-stock"); code != 200 {
		t.Errorf("SKU form: %d", code)
	}
	if s := owner.must(200, "GET", api+"/skus/"+skuID, nil); s["inventory"] != "out-of-stock" || s["color"] != "Navy" {
		t.Errorf("SKU after the form: %s", owner.raw)
	}

	// Shipping, discount codes, terms.
	if status, html := owner.get("/admin/shop-rules"); status != 200 || !strings.Contains(html, "WELCOME10") {
		t.Fatalf("rules page = %d %s", status, html)
	}
	if code, _ := form("/admin/shipping-methods/1", "shipping_cost", "3.5x", "active", "yes"); code != 400 {
		t.Errorf("bad cost: %d", code)
	}
	if code, _ := form("/admin/shipping-methods/1", "shipping_cost", "4.25"); code != 200 {
		t.Errorf("cost form: %d", code)
	}
	var cost string
	var active bool
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT shipping_cost::text, active FROM shipping_method WHERE id = 1`).Scan(&cost, &active); err != nil || cost != "4.25" || active {
		t.Errorf("shipping method 1: %s active %v %v", cost, active, err)
	}
	discount := []string{"code", "AUTUMN", "description", "Autumn <sale>", "discount_type", "percent-off", "discount_amount", "15",
		"start_date_time", "2026-09-01T00:00", "end_date_time", "2026-11-30T23:59", "combinable", "yes"}
	bad := append([]string{}, discount...)
	bad[len(bad)-3] = "2026-08-01T00:00" // ends before it starts
	if code, html := form("/admin/discount-codes", bad...); code != 400 || !strings.Contains(html, `id="end_date_time" name="end_date_time" type="datetime-local" required value="2026-08-01T00:00" aria-invalid="true"`) {
		t.Errorf("bad dates: %d %s", code, html)
	}
	if code, html := form("/admin/discount-codes", discount...); code != 200 || !strings.Contains(html, "Discount code AUTUMN created") ||
		!strings.Contains(html, "Autumn &lt;sale&gt;") {
		t.Errorf("create: %d %s", code, html)
	}
	var id int64
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT id FROM discount_code WHERE code = 'AUTUMN' AND combinable`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	path := "/admin/discount-codes/" + strconv.FormatInt(id, 10)
	if _, html := owner.get(path); !strings.Contains(html, `value="2026-11-30T23:59"`) || !strings.Contains(html, `value="percent-off" selected`) {
		t.Errorf("edit page does not show the code:\n%s", html)
	}
	edited := append([]string{}, discount[:len(discount)-2]...) // unticked: no longer combinable
	edited[7] = "20"
	if code, html := form(path, edited...); code != 200 || !strings.Contains(html, "Saved.") {
		t.Errorf("edit: %d %s", code, html)
	}
	var amount string
	var combinable bool
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT discount_amount::text, combinable FROM discount_code WHERE id = $1`, id).Scan(&amount, &combinable); err != nil ||
		amount != "20.00" || combinable {
		t.Errorf("after the edit: %s combinable %v %v", amount, combinable, err)
	}
	if code, html := form("/admin/terms", "version_note", "Clearer returns"); code != 200 || !strings.Contains(html, "version 2 published") {
		t.Errorf("terms: %d %s", code, html)
	}
	staff := f.signIn(hostA, f.addStaff(owner, "staff"), staffPassword)
	_, html = staff.get("/admin/shop-rules")
	if strings.Contains(html, `action="/admin/terms"`) {
		t.Error("staff see the terms form")
	}
	st := csrfFieldRE.FindStringSubmatch(html)[1]
	if code, _ := staff.form("/admin/terms", "csrf_token", st, "version_note", "Mine"); code != 403 {
		t.Errorf("staff published terms: %d", code)
	}
}
