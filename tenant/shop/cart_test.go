package shop_test

import (
	"net/url"
	"strings"
	"testing"
)

const v = `,"order-api-version":"0.0.1"}`

// TestCartEndpoints walks one anonymous visitor through the cart endpoints,
// checking each exact answer (decimal totals with shipping and discounts).
func TestCartEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.browser(t, hostA)
	line1 := `{"sku_id":1,"sku_type__title":"product","sku_inventory__title":"In Stock","sku_inventory__identifier":"in-stock","color":"Silver","size":"Medium","description":"Left Sided Paperclip","price":"3.50","quantity":%s,"parent_product__title":"Paper Clips","parent_product__title_url":"PaperClips","parent_product__identifier":"bSusp6dBHm","sku_image_url":"/img/product/paper_clip_left_2.jpg"}`
	methods := `{"0":{"identifier":"USPSPriorityMail2Day","carrier":"USPS Priority Mail 2-Day","shipping_cost":"13.65","tracking_code_base_url":"https://tools.usps.com/go/TrackConfirmAction.action?tRef=fullpage\u0026tLc=1\u0026text28777=\u0026tLabels="},"1":{"identifier":"UPSGround","carrier":"UPS Ground","shipping_cost":"11.34","tracking_code_base_url":"https://wwwapps.ups.com/WebTracking/track?\u0026track.x=Track\u0026trackNums="},"2":{"identifier":"FedExGround","carrier":"FedEx Ground","shipping_cost":"10.85","tracking_code_base_url":"https://www.fedex.com/apps/fedextrack/?action=track\u0026cntry_code=us\u0026trackingnumber="},"3":{"identifier":"USPSRetailGround","carrier":"USPS Retail Ground","shipping_cost":"9.56","tracking_code_base_url":"https://tools.usps.com/go/TrackConfirmAction.action?tRef=fullpage\u0026tLc=1\u0026text28777=\u0026tLabels="}}`
	steps := []struct {
		name, method, path string
		form               url.Values
		want               string
	}{
		{"no cart: update", "POST", "/order/cart-update-sku-quantity", form("sku_id", "1", "quantity", "2"), `{"cart_update_sku_quantity":"error","errors":{"error":"cart-not-found"}` + v},
		{"no cart: delete", "POST", "/order/cart-delete-cart", nil, `{"cart_delete_cart":"error","errors":{"error":"cart-not-found"}` + v},
		{"no cart: methods", "GET", "/order/cart-shipping-methods", nil, `{"cart_found":false,"cart_shipping_methods":{},"shipping_method_selected":null` + v},
		{"add: sku missing", "POST", "/order/cart-add-product-sku", form("quantity", "1"), `{"cart_add_product_sku":"error","errors":{"error":"sku-id-required"},"sku_id":null` + v},
		{"add: out of range", "POST", "/order/cart-add-product-sku", form("sku_id", "1", "quantity", "100"), `{"cart_add_product_sku":"error","errors":{"quantity":[[{"type":"out_of_range","description":"The value provided is out of range."}]]},"sku_id":"1"` + v},
		{"add: not an int", "POST", "/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1.5"), `{"cart_add_product_sku":"error","errors":{"quantity":[[{"type":"not_an_int","description":"The value provided is not an integer."}]]},"sku_id":"1"` + v},
		{"add: unknown sku", "POST", "/order/cart-add-product-sku", form("sku_id", "3", "quantity", "1"), `{"cart_add_product_sku":"error","errors":{"error":"sku-not-found"},"sku_id":"3"` + v},
		{"failed adds made no cart", "GET", "/order/cart-items", nil, `{"cart_found":false,"item_data":{}` + v},
		{"add", "POST", "/order/cart-add-product-sku", form("sku_id", "1", "quantity", " +1_0 "), `{"cart_add_product_sku":"success","sku_id":"1","cart_item_count":1` + v},
		{"items", "GET", "/order/cart-items", nil, `{"cart_found":true,"item_data":{"product_sku_data":{"0":` + strings.Replace(line1, "%s", "10", 1) + `}}` + v},
		{"totals, no method", "GET", "/order/cart-totals", nil, `{"cart_found":true,"cart_totals_data":{"item_subtotal":"35.00","shipping_subtotal":0,"cart_total":"35.00"}` + v},
		{"methods select the default", "GET", "/order/cart-shipping-methods", nil, `{"cart_found":true,"cart_shipping_methods":` + methods + `,"shipping_method_selected":"USPSRetailGround"` + v},
		{"update quantity", "POST", "/order/cart-update-sku-quantity", form("sku_id", "1", "quantity", "2"), `{"cart_update_sku_quantity":"success","cart_found":true,"sku_id":"1","sku_subtotal":"7.00","cart_totals_data":{"item_subtotal":"7.00","shipping_subtotal":"9.56","cart_total":"16.56"}` + v},
		{"update: sku not in cart", "POST", "/order/cart-update-sku-quantity", form("sku_id", "6", "quantity", "2"), `{"cart_update_sku_quantity":"error","errors":{"error":"cart-sku-not-found"},"sku_id":"6"` + v},
		{"update: sku missing", "POST", "/order/cart-update-sku-quantity", form("quantity", "2"), `{"cart_update_sku_quantity":"error","errors":{"error":"sku-id-required"}` + v},
		{"add second sku", "POST", "/order/cart-add-product-sku", form("sku_id", "7", "quantity", "1"), `{"cart_add_product_sku":"success","sku_id":"7","cart_item_count":2` + v},
		{"shipping: missing", "POST", "/order/cart-update-shipping-method", nil, `{"cart_update_shipping_method":"error","errors":{"error":"shipping-method-identifier-required"}` + v},
		{"shipping: unknown", "POST", "/order/cart-update-shipping-method", form("shipping_method_identifier", "Teleport"), `{"cart_update_shipping_method":"error","errors":{"error":"error-setting-cart-shipping-method"},"shipping_method_identifier":"Teleport"` + v},
		{"shipping: priority", "POST", "/order/cart-update-shipping-method", form("shipping_method_identifier", "USPSPriorityMail2Day"), `{"cart_update_shipping_method":"success","cart_found":true,"shipping_method_identifier":"USPSPriorityMail2Day","cart_totals_data":{"item_subtotal":"21.99","shipping_subtotal":"13.65","cart_total":"35.64"}` + v},
		{"apply: unknown code", "POST", "/order/cart-apply-discount-code", form("discount_code_id", "NOPE"), `{"cart_apply_discount_code":"error","errors":{"error":"cart-discount-code-not-found"},"discount_code_id":"NOPE"` + v},
		{"apply: required", "POST", "/order/cart-apply-discount-code", nil, `{"cart_apply_discount_code":"error","errors":{"error":"discount-code-required"}` + v},
		{"confirm totals", "GET", "/order/confirm-totals", nil, `{"checkout_allowed":true,"cart_found":true,"confirm_totals_data":{"item_subtotal":"21.99","shipping_subtotal":"13.65","cart_total":"35.64"}` + v},
		{"confirm method", "GET", "/order/confirm-shipping-method", nil, `{"checkout_allowed":true,"cart_found":true,"confirm_shipping_method":{"identifier":"USPSPriorityMail2Day","carrier":"USPS Priority Mail 2-Day","shipping_cost":"13.65","tracking_code_base_url":"https://tools.usps.com/go/TrackConfirmAction.action?tRef=fullpage\u0026tLc=1\u0026text28777=\u0026tLabels="}` + v},
		{"remove: clears method", "POST", "/order/cart-remove-sku", form("sku_id", "7", "quantity", "2"), `{"cart_remove_sku":"success","cart_found":true,"sku_id":"7","cart_item_count":1,"cart_shipping_methods":` + methods + `,"shipping_method_selected":null,"cart_totals_data":{"item_subtotal":"7.00","shipping_subtotal":0,"cart_total":"7.00"}` + v},
		{"remove: not in cart", "POST", "/order/cart-remove-sku", form("sku_id", "7"), `{"cart_remove_sku":"error","errors":{"error":"cart-sku-not-found"},"sku_id":"7"` + v},
		{"change email, no legacy rows", "GET", "/order/change-confirmation-email-address", nil, `{"checkout_allowed":true,"change_confirmation_email_address":"success"` + v},
		{"delete", "POST", "/order/cart-delete-cart", nil, `{"cart_delete_cart":"success"` + v},
		{"gone", "GET", "/order/cart-totals", nil, `{"cart_found":false,"cart_totals_data":{"item_subtotal":0,"shipping_subtotal":0,"cart_total":0}` + v},
	}
	for _, s := range steps {
		var a answer
		if s.method == "GET" {
			a = b.get(s.path)
		} else {
			a = b.post(s.path, s.form)
		}
		if a.status != 200 || a.raw != s.want {
			t.Errorf("%s: %s %s\n got %d %s\nwant %s", s.name, s.method, s.path, a.status, a.raw, s.want)
		}
	}
	if ck := b.cookie("an_ct"); len(ck) < 20 {
		t.Errorf("an_ct cookie %q", ck)
	}
}

// TestDiscountCodes applies the seed WELCOME10 and a free-shipping code and
// checks the five-key totals (§11).
func TestDiscountCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if _, err := e.db.Exec(t.Context(), `INSERT INTO discount_code (id, code, description, start_date_time, end_date_time, combinable, discount_amount, order_minimum, discount_type_id) VALUES
		(2, 'SHIPFREE', 'Free ground shipping', now() - interval '1 day', now() + interval '1 day', true, 0, 5, 4),
		(3, 'OLD', 'Expired', now() - interval '3 day', now() - interval '1 day', false, 5, 0, 2)`); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t, hostA)
	b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "2"))
	b.get("/order/cart-shipping-methods") // selects USPSRetailGround
	steps := []struct {
		path string
		form url.Values
		want string
	}{
		{"/order/cart-apply-discount-code", form("discount_code_id", "OLD"), `{"cart_apply_discount_code":"error","errors":{"error":"cart-discount-code-not-active"},"discount_code_id":"OLD"` + v},
		{"/order/cart-apply-discount-code", form("discount_code_id", "WELCOME10"), `"cart_totals_data":{"item_subtotal":"7.00","item_discount":"0.70","shipping_subtotal":"9.56","shipping_discount":0,"cart_total":"15.86"}`},
		{"/order/cart-apply-discount-code", form("discount_code_id", "WELCOME10"), `{"cart_apply_discount_code":"error","errors":{"error":"cart-discount-code-already-applied"},"discount_code_id":"WELCOME10"` + v},
		{"/order/cart-apply-discount-code", form("discount_code_id", "SHIPFREE"), `"cart_totals_data":{"item_subtotal":"7.00","item_discount":"0.70","shipping_subtotal":"9.56","shipping_discount":"9.56","cart_total":"6.30"}`},
		{"/order/cart-remove-discount-code", form("discount_code_id", "1"), `"cart_totals_data":{"item_subtotal":"7.00","item_discount":0,"shipping_subtotal":"9.56","shipping_discount":"9.56","cart_total":"7.00"}`},
		{"/order/cart-remove-discount-code", form("discount_code_id", "1"), `{"cart_remove_discount_code":"error","errors":{"error":"cart-discount-code-not-found"},"discount_code_id":"1"` + v},
	}
	for _, s := range steps {
		a := b.post(s.path, s.form)
		if a.status != 200 || !strings.Contains(a.raw, s.want) {
			t.Errorf("%s %v\n got %d %s\nwant …%s…", s.path, s.form, a.status, a.raw, s.want)
		}
	}
	codes := b.get("/order/cart-discount-codes").raw
	if !strings.Contains(codes, `"2":{"discount_code_id":2,"code":"SHIPFREE"`) || !strings.Contains(codes, `"discount_applied":true`) {
		t.Errorf("discount codes: %s", codes)
	}
}
