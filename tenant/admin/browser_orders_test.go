package admin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// TestBrowserCatalogAndOrders drives the catalogue and order pages in
// headless Chromium: create a product (its title with markup, shown as
// text) with two SKUs and prices, fulfil an order with a carrier and
// tracking number (the customer's mail reaches Mailpit), refund part of it
// (through the stateful Stripe double of refunds_test.go, with the real
// client), and see the dashboard's figures; a screenshot of each step, at
// desktop and phone width.
func TestBrowserCatalogAndOrders(t *testing.T) {
	t.Parallel()
	d := newRefundDouble(t)
	f := newFixture(t, fixtureOptions{stripeBase: d.srv.URL})
	buyer := pgtest.RandomName("buyer") + "@example.com"
	pi := seedOrder(t, f.dbs[f.a.ID], "Journey01", buyer, "30.00")
	d.mu.Lock()
	d.charged[pi] = 3000
	d.mu.Unlock()

	base := f.listen(t)
	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 120*time.Second, "admin")
	shot, run, text := b.Shot, b.Run, b.Text

	const title = "Desk Stapler <b>bold</b>"
	run("sign in", signInActions(base, f.owner[f.a.ID])...)
	run("create a product",
		chromedp.Navigate(base+"/admin/products"),
		chromedp.WaitVisible(chromedp.CSS(`#title`)),
		chromedp.SendKeys(chromedp.CSS(`#title`), title),
		chromedp.SendKeys(chromedp.CSS(`#title_url`), "DeskStapler"),
		chromedp.SendKeys(chromedp.CSS(`#headline`), "Staples up to 20 sheets"),
		chromedp.SendKeys(chromedp.CSS(`#image_url`), "/img/product/stapler.jpg"),
		shot("20-product-new"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/products"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#product-identifier`)),
	)
	if h1 := text(`h1`); h1 != title {
		t.Fatalf("product page heading = %q, want the title as text", h1)
	}
	for i, sku := range [][3]string{{"Black", "Small", "12.50"}, {"Red", "Large", "14.00"}} {
		run("add SKU "+sku[0],
			chromedp.SendKeys(chromedp.CSS(`#color`), sku[0]),
			chromedp.SendKeys(chromedp.CSS(`#size`), sku[1]),
			chromedp.SendKeys(chromedp.CSS(`#price`), sku[2]),
			chromedp.Click(chromedp.CSS(`form[action$="/skus"] button`)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tbody tr:nth-child(%d) td.price`, i+1))),
		)
	}
	run("change a price",
		chromedp.SendKeys(chromedp.CSS(`td.actions input[name=price]`), "11.75"),
		chromedp.Click(chromedp.CSS(`td.actions button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-price`)),
		shot("21-product-skus"),
	)
	if prices := text(`tbody`); !strings.Contains(prices, "$11.75") || !strings.Contains(prices, "$14.00") {
		t.Fatalf("SKU table = %q", prices)
	}
	run("fulfil the order",
		chromedp.Navigate(base+"/admin/orders"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/admin/orders/Journey01"]`)),
		shot("22-orders"),
		chromedp.Click(chromedp.CSS(`a[href="/admin/orders/Journey01"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-status`)),
		chromedp.SetValue(chromedp.CSS(`#status`), "shipped"),
		chromedp.SetValue(chromedp.CSS(`#shipping_method`), "UPSGround"),
		chromedp.SendKeys(chromedp.CSS(`#tracking_number`), "1Z999AA10123456784"),
		chromedp.Click(chromedp.CSS(`form[action$="/status"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-status`)),
	)
	if st := text(`#order-status`); st != "shipped" {
		t.Fatalf("status = %q", st)
	}
	msgs := f.deliver(buyer, 1)
	if !strings.Contains(msgs[0].Text, "1Z999AA10123456784") {
		t.Fatalf("customer mail = %q", msgs[0].Text)
	}
	run("refund part",
		chromedp.SendKeys(chromedp.CSS(`#amount`), "7.50"),
		chromedp.SendKeys(chromedp.CSS(`#reason`), "one item damaged"),
		chromedp.Click(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`form[action$="/refund"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-refund`)),
		shot("23-order-refunded"),
	)
	if got := text(`#order-refunded`); !strings.Contains(got, "$7.50") || !strings.Contains(got, "$22.50") {
		t.Fatalf("refunded = %q", got)
	}
	run("dashboard and phone",
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS(`.figures`)),
		shot("24-dashboard-figures"),
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/orders/Journey01"),
		chromedp.WaitVisible(chromedp.CSS(`#order-status`)),
		shot("25-order-phone"),
		chromedp.Navigate(base+"/admin/products"),
		chromedp.WaitVisible(chromedp.CSS(`#title`)),
		shot("26-products-phone"),
	)
}
