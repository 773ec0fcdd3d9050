package shop_test

import (
	"net/url"
	"testing"
)

// formEndpoints are the POST endpoints that read form fields.
var formEndpoints = []string{
	"/order/cart-add-product-sku", "/order/cart-update-sku-quantity", "/order/cart-remove-sku",
	"/order/cart-update-shipping-method", "/order/cart-delete-cart", "/order/cart-apply-discount-code",
	"/order/cart-remove-discount-code", "/order/create-checkout-session", "/order/anonymous-email-address-payment-lookup",
}

// FuzzFormEndpoints posts arbitrary field values to every form endpoint,
// with and without a cart: the answer is never a 5xx.
func FuzzFormEndpoints(f *testing.F) {
	for _, s := range []string{"1", "", " 7 ", "-1", "1_0", "99999999999999999999", "abc", "\x00", "1e3", "WELCOME10", "a@b.co", "💥", "0x10"} {
		f.Add(s, s)
	}
	e := newEnv(f, envOptions{})
	withCart := e.browser(f, hostA)
	withCart.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
	anon := e.browser(f, hostA)
	f.Fuzz(func(t *testing.T, a, b string) {
		fields := url.Values{
			"sku_id": {a}, "quantity": {b}, "shipping_method_identifier": {a}, "discount_code_id": {a},
			"anonymous_email_address": {b},
		}
		for _, br := range []*browser{withCart, anon} {
			br.t = t
			for _, p := range formEndpoints {
				if ans := br.post(p, fields); ans.status >= 500 {
					t.Fatalf("%s %q %q: %d %s", p, a, b, ans.status, ans.raw)
				}
			}
		}
	})
}
