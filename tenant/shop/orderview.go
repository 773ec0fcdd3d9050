package shop

import (
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/tenant/cart"
	"github.com/startupwebapp/platform/tenant/orders"
)

// memberEmailDescription is O18's HTML error text.
const memberEmailDescription = `This email address is already associated with a member account. Please <span class="login-form-error-link"><a href="/login?next=checkout/confirm">login</a></span> to continue.`

// O18 POST /order/anonymous-email-address-payment-lookup. The publishable
// key is read from the secrets store before a connection is taken.
func (a *App) anonymousEmailLookup(c *fiber.Ctx) error {
	const key = "anonymous_email_address_payment_lookup"
	var pk any
	if acct, _ := a.payments.For(c.UserContext(), server.Tenant(c)); acct != nil {
		pk = acct.PublishableKey
	}
	return a.gated(c, func(rq *request) error {
		email, ok := formValue(c, "anonymous_email_address")
		if !ok {
			return reply(c, object{{"checkout_allowed", true}, {key, "error"}, {"errors", object{
				{"error", "anonymous-email-address-required"}, {"description", "Anonymous email address is required"}}}})
		}
		var n int
		if err := rq.conn.QueryRow(rq.ctx, `SELECT count(*) FROM account WHERE email = $1`, email).Scan(&n); err != nil {
			return fmt.Errorf("member email: %w", err)
		}
		if n > 0 {
			return reply(c, object{{"checkout_allowed", true}, {key, "error"}, {"errors", object{
				{"error", "email-address-is-associated-with-member"}, {"description", memberEmailDescription}}}})
		}
		if email != "" && len([]rune(email)) <= 254 {
			signKey, err := rq.signingKey()
			if err != nil {
				return err
			}
			if _, _, err := ensureProspect(rq.ctx, rq.conn, signKey, email, "Captured from incomplete anonymous order"); err != nil {
				return err
			}
		}
		return reply(c, object{{"checkout_allowed", true}, {key, "success"}, {"stripe_publishable_key", pk}, {"customer_data", nil}})
	})
}

// O19 GET /order/change-confirmation-email-address: clears the cart's
// legacy payment and shipping address links (no cart: nothing to clear,
// §12 Q19).
func (a *App) changeConfirmationEmail(c *fiber.Ctx) error {
	return a.gated(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		if found {
			if err := cart.ClearPaymentLinks(rq.ctx, rq.conn, ct.ID); err != nil {
				return err
			}
		}
		return reply(c, object{{"checkout_allowed", true}, {"change_confirmation_email_address", "success"}})
	})
}

// O20 GET /order/<order_identifier>, with the order page's access rule
// (orders.AccessFor).
func (a *App) orderDetail(c *fiber.Ctx, ident string) error {
	fail := func(code string) error {
		return reply(c, object{{"order_detail", "error"}, {"errors", object{{"error", code}}}, {"order_identifier", ident}})
	}
	return a.with(c, func(rq *request) error {
		o, found, err := orders.Find(rq.ctx, rq.conn, ident)
		if err != nil {
			return err
		}
		if !found {
			return fail("order-not-found")
		}
		visitor, err := rq.who()
		if err != nil {
			return err
		}
		switch o.AccessFor(visitor.MemberID) {
		case orders.LogInRequired:
			return fail("log-in-required-to-view-order")
		case orders.NotInAccount:
			return fail("order-not-in-account")
		}
		d, err := orders.Load(rq.ctx, rq.conn, o)
		if err != nil {
			return err
		}
		return reply(c, object{{"order_detail", "success"}, {"order_data", orderData(d)}})
	})
}

// orderData is O20's order_data.
func orderData(d orders.Detail) object {
	lines := object{}
	for _, l := range d.Lines {
		lines = append(lines, kv{counter(len(lines)), lineObject(l, false)})
	}
	statuses := object{}
	for _, s := range d.Statuses {
		statuses = append(statuses, kv{counter(len(statuses)), object{{"identifier", s.Identifier}, {"title", s.Title},
			{"description", s.Description}, {"created_date_time", timestamp(s.CreatedDateTime)}}})
	}
	addr := func(a *orders.Address) object {
		if a == nil {
			return object{}
		}
		return object{{"name", a.Name}, {"address_line1", a.AddressLine1}, {"city", a.City}, {"state", a.State},
			{"zip", a.Zip}, {"country", a.Country}, {"country_code", a.CountryCode}}
	}
	payment := object{}
	if p := d.Payment; p != nil {
		payment = object{{"email", p.Email}, {"payment_type", p.PaymentType}, {"card_name", p.CardName}, {"card_brand", p.CardBrand},
			{"card_last4", p.CardLast4}, {"card_exp_month", p.CardExpMonth}, {"card_exp_year", p.CardExpYear}, {"card_zip", p.CardZip}}
	}
	totals := object{{"item_subtotal", money(d.ItemSubtotal)}, {"shipping_subtotal", money(d.ShippingSubtotal)}, {"order_total", money(d.OrderTotal)}}
	// Orders placed with discount codes also show the seed-era keys.
	if len(d.Discounts) > 0 {
		totals = object{{"item_subtotal", money(d.ItemSubtotal)}, {"item_discount", money(d.ItemDiscount)},
			{"shipping_subtotal", money(d.ShippingSubtotal)}, {"shipping_discount", money(d.ShippingDiscount)}, {"order_total", money(d.OrderTotal)}}
	}
	data := object{
		{"order_attributes", object{{"identifier", d.Identifier}, {"order_date_time", timestamp(d.OrderDateTime)}, {"sales_tax_amt", money(d.SalesTax)}}},
		{"order_items", object{{"product_sku_data", lines}}},
		{"order_shipping_method", methodObject(d.Shipping)},
		{"order_totals", totals},
		{"order_statuses", statuses},
		{"order_shipping_address", addr(d.ShippingAddress)},
		{"order_billing_address", addr(d.BillingAddress)},
		{"order_payment_info", payment},
	}
	if len(d.Discounts) > 0 {
		codes := object{}
		for _, x := range d.Discounts {
			codes = append(codes, kv{fmt.Sprint(x.CodeID), discountObject(x)})
		}
		data = append(data, kv{"order_discount_codes", codes})
	}
	return data
}
