package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/tenant/cart"
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
			if _, err := rq.conn.Exec(rq.ctx, `UPDATE cart SET payment_id = NULL, shipping_address_id = NULL WHERE id = $1`, ct.ID); err != nil {
				return fmt.Errorf("clear cart payment: %w", err)
			}
		}
		return reply(c, object{{"checkout_allowed", true}, {"change_confirmation_email_address", "success"}})
	})
}

const orderSQL = `
SELECT o.id, o.identifier, o.member_id, o.order_date_time, o.sales_tax_amt, o.item_subtotal, o.item_discount_amt,
       o.shipping_amt, o.shipping_discount_amt, o.order_total,
       p.id, p.email, p.payment_type, p.card_name, p.card_brand, p.card_last4, p.card_exp_month, p.card_exp_year, p.card_zip,
       sa.id, sa.name, sa.address_line1, sa.city, sa.state, sa.zip, sa.country, sa.country_code,
       ba.id, ba.name, ba.address_line1, ba.city, ba.state, ba.zip, ba.country, ba.country_code
FROM customer_order o
LEFT JOIN order_payment p ON p.id = o.payment_id
LEFT JOIN order_shipping_address sa ON sa.id = o.shipping_address_id
LEFT JOIN order_billing_address ba ON ba.id = o.billing_address_id
WHERE o.identifier = $1`

const orderLinesSQL = `
SELECT os.sku_id, st.title, si.title, s.color, s.size, s.description, os.price_each, os.quantity,
       coalesce(p.title, ''), coalesce(p.title_url, ''), coalesce(p.identifier, ''),
       coalesce(
         (SELECT image_url FROM sku_image WHERE sku_id = s.id AND main_image ORDER BY id LIMIT 1),
         (SELECT image_url FROM product_image WHERE product_id = p.id AND main_image ORDER BY id LIMIT 1),
         '')
FROM order_sku os
JOIN sku s ON s.id = os.sku_id
JOIN sku_type st ON st.id = s.sku_type_id
JOIN sku_inventory si ON si.id = s.sku_inventory_id
LEFT JOIN product_sku ps ON ps.sku_id = s.id
LEFT JOIN product p ON p.id = ps.product_id
WHERE os.order_id = $1 AND st.title = 'product'
ORDER BY os.id`

const orderStatusesSQL = `
SELECT st.identifier, st.title, st.description, h.created_date_time
FROM order_status_history h JOIN order_status st ON st.id = h.order_status_id
WHERE h.order_id = $1 ORDER BY h.created_date_time DESC, h.id DESC`

const orderMethodSQL = `
SELECT m.id, m.identifier, m.carrier, m.shipping_cost, m.tracking_code_base_url, m.active
FROM order_shipping_method om JOIN shipping_method m ON m.id = om.shipping_method_id WHERE om.order_id = $1`

const orderDiscountsSQL = `
SELECT dc.id, dc.code, dc.description, dc.start_date_time, dc.end_date_time, dc.combinable, dc.discount_amount,
       dc.order_minimum, dt.title, dt.description, dt.applies_to, dt.action, od.applied
FROM order_discount od JOIN discount_code dc ON dc.id = od.discount_code_id JOIN discount_type dt ON dt.id = dc.discount_type_id
WHERE od.order_id = $1 ORDER BY od.id`

// O20 GET /order/<order_identifier>, with §5 O20's access rules: an
// anonymous caller sees only orders without a member; a member only their own.
func (a *App) orderDetail(c *fiber.Ctx) error {
	ident := c.Params("identifier")
	fail := func(code string) error {
		return reply(c, object{{"order_detail", "error"}, {"errors", object{{"error", code}}}, {"order_identifier", ident}})
	}
	return a.with(c, func(rq *request) error {
		var (
			id                                       int64
			oident                                   string
			memberID                                 *int64
			when                                     time.Time
			tax, items, itemDisc, ship, shipDisc, tt decimal.Decimal
			payID                                    *int64
			pay                                      [8]*string
			saID, baID                               *int64
			sa, ba                                   [7]*string
		)
		err := rq.conn.QueryRow(rq.ctx, orderSQL, ident).Scan(&id, &oident, &memberID, &when, &tax, &items, &itemDisc, &ship, &shipDisc, &tt,
			&payID, &pay[0], &pay[1], &pay[2], &pay[3], &pay[4], &pay[5], &pay[6], &pay[7],
			&saID, &sa[0], &sa[1], &sa[2], &sa[3], &sa[4], &sa[5], &sa[6],
			&baID, &ba[0], &ba[1], &ba[2], &ba[3], &ba[4], &ba[5], &ba[6])
		if errors.Is(err, pgx.ErrNoRows) {
			return fail("order-not-found")
		}
		if err != nil {
			return fmt.Errorf("order: %w", err)
		}
		o, err := rq.who()
		if err != nil {
			return err
		}
		switch {
		case o.MemberID == 0 && memberID != nil:
			return fail("log-in-required-to-view-order")
		case o.MemberID != 0 && (memberID == nil || *memberID != o.MemberID):
			return fail("order-not-in-account")
		}
		lines := object{}
		rows, err := rq.conn.Query(rq.ctx, orderLinesSQL, id)
		if err != nil {
			return fmt.Errorf("order lines: %w", err)
		}
		var l cart.Line
		_, err = pgx.ForEachRow(rows, []any{&l.SKUID, &l.SKUType, &l.InventoryTitle, &l.Color, &l.Size, &l.Description, &l.Price, &l.Quantity,
			&l.ProductTitle, &l.ProductTitleURL, &l.ProductIdentifier, &l.ImageURL}, func() error {
			lines = append(lines, kv{counter(len(lines)), lineObject(l, false)})
			return nil
		})
		if err != nil {
			return fmt.Errorf("order lines: %w", err)
		}
		statuses := object{}
		rows, err = rq.conn.Query(rq.ctx, orderStatusesSQL, id)
		if err != nil {
			return fmt.Errorf("order statuses: %w", err)
		}
		var sIdent, sTitle, sDesc string
		var sWhen time.Time
		_, err = pgx.ForEachRow(rows, []any{&sIdent, &sTitle, &sDesc, &sWhen}, func() error {
			statuses = append(statuses, kv{counter(len(statuses)), object{{"identifier", sIdent}, {"title", sTitle}, {"description", sDesc}, {"created_date_time", timestamp(sWhen)}}})
			return nil
		})
		if err != nil {
			return fmt.Errorf("order statuses: %w", err)
		}
		var m *cart.ShippingMethod
		var mm cart.ShippingMethod
		err = rq.conn.QueryRow(rq.ctx, orderMethodSQL, id).Scan(&mm.ID, &mm.Identifier, &mm.Carrier, &mm.Cost, &mm.TrackingURL, &mm.Active)
		if err == nil {
			m = &mm
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("order shipping method: %w", err)
		}
		addr := func(present *int64, f [7]*string) object {
			if present == nil {
				return object{}
			}
			return object{{"name", f[0]}, {"address_line1", f[1]}, {"city", f[2]}, {"state", f[3]}, {"zip", f[4]}, {"country", f[5]}, {"country_code", f[6]}}
		}
		payment := object{}
		if payID != nil {
			payment = object{{"email", pay[0]}, {"payment_type", pay[1]}, {"card_name", pay[2]}, {"card_brand", pay[3]},
				{"card_last4", pay[4]}, {"card_exp_month", pay[5]}, {"card_exp_year", pay[6]}, {"card_zip", pay[7]}}
		}
		totals := object{{"item_subtotal", money(items)}, {"shipping_subtotal", money(ship)}, {"order_total", money(tt)}}
		data := object{
			{"order_attributes", object{{"identifier", oident}, {"order_date_time", timestamp(when)}, {"sales_tax_amt", money(tax)}}},
			{"order_items", object{{"product_sku_data", lines}}},
			{"order_shipping_method", methodObject(m)},
			{"order_totals", totals},
			{"order_statuses", statuses},
			{"order_shipping_address", addr(saID, sa)},
			{"order_billing_address", addr(baID, ba)},
			{"order_payment_info", payment},
		}
		// Orders placed with discount codes also show the seed-era keys.
		codes, err := orderDiscounts(rq.ctx, rq, id)
		if err != nil {
			return err
		}
		if len(codes) > 0 {
			data[3].v = object{{"item_subtotal", money(items)}, {"item_discount", money(itemDisc)}, {"shipping_subtotal", money(ship)},
				{"shipping_discount", money(shipDisc)}, {"order_total", money(tt)}}
			data = append(data, kv{"order_discount_codes", codes})
		}
		return reply(c, object{{"order_detail", "success"}, {"order_data", data}})
	})
}

func orderDiscounts(ctx context.Context, rq *request, orderID int64) (object, error) {
	rows, err := rq.conn.Query(ctx, orderDiscountsSQL, orderID)
	if err != nil {
		return nil, fmt.Errorf("order discounts: %w", err)
	}
	out := object{}
	var d cart.Discount
	_, err = pgx.ForEachRow(rows, []any{&d.CodeID, &d.Code, &d.Description, &d.Start, &d.End, &d.Combinable, &d.Amount,
		&d.OrderMinimum, &d.TypeTitle, &d.TypeDesc, &d.AppliesTo, &d.Action, &d.Applied}, func() error {
		out = append(out, kv{fmt.Sprint(d.CodeID), discountObject(d)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("order discounts: %w", err)
	}
	return out, nil
}

const memberOrdersSQL = `SELECT id, identifier, order_date_time, sales_tax_amt, order_total
FROM customer_order WHERE member_id = $1 ORDER BY order_date_time DESC, id DESC`

// MemberOrders returns a member's order history as U5's orders_data (§4 U5):
// newest first, keyed "1", "2", …; an empty object when there are none. The
// accounts app calls it for /user/account-content.
func MemberOrders(ctx context.Context, db cart.DB, memberID int64) (json.Marshaler, error) {
	rows, err := db.Query(ctx, memberOrdersSQL, memberID)
	if err != nil {
		return nil, fmt.Errorf("member orders: %w", err)
	}
	out := object{}
	var id int64
	var ident string
	var when time.Time
	var tax, total decimal.Decimal
	_, err = pgx.ForEachRow(rows, []any{&id, &ident, &when, &tax, &total}, func() error {
		out = append(out, kv{counter(len(out) + 1), object{{"order_id", id}, {"identifier", ident}, {"order_date_time", timestamp(when)},
			{"sales_tax_amt", money(tax)}, {"order_total", money(total)}}})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("member orders: %w", err)
	}
	return out, nil
}
