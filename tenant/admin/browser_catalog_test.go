package admin_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// TestBrowserCatalogueEditor drives the pages added to the catalogue
// editor and the settings in headless Chromium: edit a product, archive it
// (the confirmation box first), change a SKU's inventory, a shipping
// method's cost, create and edit a discount code, and change the shop's
// settings; a screenshot of each page, the rules page also at phone width.
func TestBrowserCatalogueEditor(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	base := f.listen(t)
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	p := owner.must(201, "POST", api+"/products", map[string]any{"title": "Teapot", "title_url": "Teapot", "headline": "Pours well"})
	sku := owner.must(201, "POST", api+"/skus", map[string]any{"product_id": p["id"], "color": "White", "size": "1 l", "inventory": "in-stock", "price": "24"})

	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 120*time.Second, "admin")
	shot, run, text := b.Shot, b.Run, b.Text
	run("sign in", signInActions(base, f.owner[f.a.ID])...)
	run("edit the product",
		chromedp.Navigate(base+"/admin/products"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
		chromedp.Click(chromedp.CSS(`a[href="/admin/products/`+jsonID(p)+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#product-identifier`)),
		shot("40-product-edit"),
		chromedp.Clear(chromedp.CSS(`#headline`)),
		chromedp.SendKeys(chromedp.CSS(`#headline`), "Pours without a drip"),
		chromedp.Click(chromedp.CSS(`form[action$="`+"/products/"+jsonID(p)+`"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-`+jsonID(p))),
	)
	if n := text(`.notice`); !strings.Contains(n, "Product saved") {
		t.Fatalf("after saving: %q", n)
	}
	run("change a SKU's inventory",
		chromedp.SetValue(chromedp.CSS(`select[name=inventory][id^=inventory-]`), "back-ordered"),
		chromedp.Click(chromedp.CSS(`form[action*="/skus/"]:not([action$="/price"]) button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-`+jsonID(sku))),
	)
	run("archive, confirmed",
		chromedp.Click(chromedp.CSS(`#confirm-archive`)),
		chromedp.Click(chromedp.CSS(`form[action$="/archive"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-archive`)),
		shot("41-product-archived"),
	)
	if n := text(`.status`); !strings.HasPrefix(n, "Archived") {
		t.Fatalf("status after archiving: %q", n)
	}
	run("archived list",
		chromedp.Navigate(base+"/admin/products?archived=true"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
		shot("42-products-archived"),
	)
	run("shipping and discounts",
		chromedp.Navigate(base+"/admin/shop-rules"),
		chromedp.WaitVisible(chromedp.CSS(`#cost-1`)),
		shot("43-rules"),
		// Unticking "Offered" alone sends the cost as shown.
		chromedp.Click(chromedp.CSS(`#active-2`)),
		chromedp.Click(chromedp.CSS(`form[action="/admin/shipping-methods/2"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-2`)),
		chromedp.Clear(chromedp.CSS(`#cost-1`)),
		chromedp.SendKeys(chromedp.CSS(`#cost-1`), "5.25"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/shipping-methods/1"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-1`)),
		chromedp.SendKeys(chromedp.CSS(`#code`), "WINTER"),
		chromedp.SendKeys(chromedp.CSS(`#description`), "Winter sale"),
		chromedp.SetValue(chromedp.CSS(`#discount_type`), "dollar-amt-off"),
		chromedp.SendKeys(chromedp.CSS(`#discount_amount`), "4"),
		chromedp.SetValue(chromedp.CSS(`#start_date_time`), "2026-12-01T00:00"),
		chromedp.SetValue(chromedp.CSS(`#end_date_time`), "2027-02-28T23:59"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/discount-codes"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-discount-codes`)),
	)
	if n := text(`.notice`); n != "Discount code WINTER created." {
		t.Fatalf("after creating the code: %q", n)
	}
	run("edit the code",
		chromedp.Click(chromedp.CSS(`tbody tr:last-child a[href^="/admin/discount-codes/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#discount_amount`)),
		chromedp.Clear(chromedp.CSS(`#discount_amount`)),
		chromedp.SendKeys(chromedp.CSS(`#discount_amount`), "6"),
		chromedp.Click(chromedp.CSS(`#combinable`)),
		chromedp.Click(chromedp.CSS(`form[action^="/admin/discount-codes/"] button[type=submit]`)),
		chromedp.WaitReady(chromedp.CSS(`span[id^="done-"]`)),
		shot("44-discount-edit"),
	)
	run("settings",
		chromedp.Navigate(base+"/admin/settings"),
		chromedp.WaitVisible(chromedp.CSS(`#shop_name`)),
		chromedp.SetValue(chromedp.CSS(`#primary_color`), "#0b5d3b"),
		chromedp.SendKeys(chromedp.CSS(`#tagline`), "Tea things"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/settings"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-settings`)),
		shot("45-settings"),
	)
	run("phone width",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/shop-rules"),
		chromedp.WaitVisible(chromedp.CSS(`#cost-1`)),
		shot("46-rules-phone"),
	)

	got := owner.must(200, "GET", api+"/products/"+jsonID(p), nil)
	skus := got["skus"].([]any)
	if got["headline"] != "Pours without a drip" || got["archived_at"] == nil || skus[0].(map[string]any)["inventory"] != "back-ordered" {
		t.Errorf("product after the journey: %s", owner.raw)
	}
	ship := owner.must(200, "GET", api+"/shipping-methods", nil)["items"].([]any)
	if m1, m2 := ship[0].(map[string]any), ship[1].(map[string]any); m1["shipping_cost"] != "5.25" || m1["active"] != true ||
		m2["shipping_cost"] != "9.56" || m2["active"] != false {
		t.Errorf("shipping after the journey: %v %v", m1, m2)
	}
	codes := owner.must(200, "GET", api+"/discount-codes", nil)["items"].([]any)
	last := codes[len(codes)-1].(map[string]any)
	if last["code"] != "WINTER" || last["discount_amount"] != "6" || last["combinable"] != true {
		t.Errorf("code after the journey: %v", last)
	}
	if s := owner.must(200, "GET", api+"/settings", nil); s["primary_color"] != "#0b5d3b" || s["tagline"] != "Tea things" {
		t.Errorf("settings after the journey: %s", owner.raw)
	}
}

// jsonID is the id of an API answer as a path segment.
func jsonID(m map[string]any) string { return strconv.FormatInt(int64(m["id"].(float64)), 10) }

// signInActions sign the owner in on the sign-in page, ending on the
// dashboard.
func signInActions(base, email string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(base + "/admin/sign-in"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), email),
		chromedp.SendKeys(chromedp.CSS(`#password`), ownerPassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.figures`)),
	}
}
