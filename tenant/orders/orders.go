// Package orders is the read model of a tenant's orders: what the shop's
// order page (O20), the account page's order history (U5) and the back
// office show of an order, and who may see it. It only reads; orders are
// made by tenant/shop. The contract's JSON shapes are written by the apps.
//
// Tables: customer_order, order_payment, order_shipping_address,
// order_billing_address, order_sku, order_status_history,
// order_shipping_method, order_discount.
package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/tenant/cart"
)

// DB is what the read functions query: a pooled connection or a
// transaction.
type DB = cart.DB

// Summary is one order of a member's order history.
type Summary struct {
	ID            int64
	Identifier    string
	OrderDateTime time.Time
	SalesTax      decimal.Decimal `db:"sales_tax_amt"`
	OrderTotal    decimal.Decimal
}

const memberOrdersSQL = `SELECT id, identifier, order_date_time, sales_tax_amt, order_total
FROM customer_order WHERE member_id = $1 ORDER BY order_date_time DESC, id DESC`

// ForMember returns a member's orders, newest first.
func ForMember(ctx context.Context, db DB, memberID int64) ([]Summary, error) {
	rows, err := db.Query(ctx, memberOrdersSQL, memberID)
	if err != nil {
		return nil, fmt.Errorf("member orders: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[Summary])
	if err != nil {
		return nil, fmt.Errorf("member orders: %w", err)
	}
	return out, nil
}

// Payment is an order's payment record; card fields are NULL for Stripe
// Checkout orders.
type Payment struct {
	Email        *string
	PaymentType  *string
	CardName     *string
	CardBrand    *string
	CardLast4    *string
	CardExpMonth *string
	CardExpYear  *string
	CardZip      *string
	// StripePaymentIntent is the payment's Stripe payment intent id.
	StripePaymentIntent *string
}

// Address is an order's shipping or billing address.
type Address struct {
	Name         *string
	AddressLine1 *string
	City         *string
	State        *string
	Zip          *string
	Country      *string
	CountryCode  *string
}

// Order is an order's own row with its payment and addresses (nil when
// the order has none).
type Order struct {
	ID               int64
	Identifier       string
	MemberID         *int64 // nil for a guest (prospect) order
	OrderDateTime    time.Time
	SalesTax         decimal.Decimal
	ItemSubtotal     decimal.Decimal
	ItemDiscount     decimal.Decimal
	ShippingSubtotal decimal.Decimal
	ShippingDiscount decimal.Decimal
	OrderTotal       decimal.Decimal
	// StripeAmountTotal is what Stripe says was paid, nil when unknown;
	// AmountMismatch is set when it differs from OrderTotal.
	StripeAmountTotal *decimal.Decimal
	AmountMismatch    bool
	Payment           *Payment
	ShippingAddress   *Address
	BillingAddress    *Address
}

// orderRow is orderSQL's row.
type orderRow struct {
	ID                                                                    int64
	Identifier                                                            string
	MemberID                                                              *int64
	OrderDateTime                                                         time.Time
	SalesTaxAmt, ItemSubtotal, ItemDiscountAmt, ShippingAmt               decimal.Decimal
	ShippingDiscountAmt, OrderTotal                                       decimal.Decimal
	StripeAmountTotal                                                     *decimal.Decimal
	PaymentAmountMismatch                                                 bool
	PaymentID                                                             *int64
	PEmail, PPaymentType, PCardName, PCardBrand                           *string
	PCardLast4, PCardExpMonth, PCardExpYear, PCardZip, PIntent            *string
	SAID                                                                  *int64 `db:"sa_id"`
	SAName, SAAddressLine1, SACity, SAState, SAZip, SACountry, SACountryC *string
	BAID                                                                  *int64 `db:"ba_id"`
	BAName, BAAddressLine1, BACity, BAState, BAZip, BACountry, BACountryC *string
}

const orderSQL = `
SELECT o.id, o.identifier, o.member_id, o.order_date_time, o.sales_tax_amt, o.item_subtotal, o.item_discount_amt,
       o.shipping_amt, o.shipping_discount_amt, o.order_total, o.stripe_amount_total, o.payment_amount_mismatch,
       p.id AS payment_id, p.email AS p_email, p.payment_type AS p_payment_type, p.card_name AS p_card_name,
       p.card_brand AS p_card_brand, p.card_last4 AS p_card_last4, p.card_exp_month AS p_card_exp_month,
       p.card_exp_year AS p_card_exp_year, p.card_zip AS p_card_zip, p.stripe_payment_intent_id AS p_intent,
       sa.id AS sa_id, sa.name AS sa_name, sa.address_line1 AS sa_address_line1, sa.city AS sa_city, sa.state AS sa_state,
       sa.zip AS sa_zip, sa.country AS sa_country, sa.country_code AS sa_country_c,
       ba.id AS ba_id, ba.name AS ba_name, ba.address_line1 AS ba_address_line1, ba.city AS ba_city, ba.state AS ba_state,
       ba.zip AS ba_zip, ba.country AS ba_country, ba.country_code AS ba_country_c
FROM customer_order o
LEFT JOIN order_payment p ON p.id = o.payment_id
LEFT JOIN order_shipping_address sa ON sa.id = o.shipping_address_id
LEFT JOIN order_billing_address ba ON ba.id = o.billing_address_id
WHERE o.identifier = $1`

// Find returns the order with this identifier (case-sensitive), and false
// when there is none.
func Find(ctx context.Context, db DB, identifier string) (Order, bool, error) {
	rows, err := db.Query(ctx, orderSQL, identifier)
	if err != nil {
		return Order{}, false, fmt.Errorf("order: %w", err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[orderRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, fmt.Errorf("order: %w", err)
	}
	o := Order{
		ID: r.ID, Identifier: r.Identifier, MemberID: r.MemberID, OrderDateTime: r.OrderDateTime,
		SalesTax: r.SalesTaxAmt, ItemSubtotal: r.ItemSubtotal, ItemDiscount: r.ItemDiscountAmt,
		ShippingSubtotal: r.ShippingAmt, ShippingDiscount: r.ShippingDiscountAmt, OrderTotal: r.OrderTotal,
		StripeAmountTotal: r.StripeAmountTotal, AmountMismatch: r.PaymentAmountMismatch,
	}
	if r.PaymentID != nil {
		o.Payment = &Payment{Email: r.PEmail, PaymentType: r.PPaymentType, CardName: r.PCardName, CardBrand: r.PCardBrand,
			CardLast4: r.PCardLast4, CardExpMonth: r.PCardExpMonth, CardExpYear: r.PCardExpYear, CardZip: r.PCardZip,
			StripePaymentIntent: r.PIntent}
	}
	if r.SAID != nil {
		o.ShippingAddress = &Address{Name: r.SAName, AddressLine1: r.SAAddressLine1, City: r.SACity, State: r.SAState,
			Zip: r.SAZip, Country: r.SACountry, CountryCode: r.SACountryC}
	}
	if r.BAID != nil {
		o.BillingAddress = &Address{Name: r.BAName, AddressLine1: r.BAAddressLine1, City: r.BACity, State: r.BAState,
			Zip: r.BAZip, Country: r.BACountry, CountryCode: r.BACountryC}
	}
	return o, true, nil
}

// Access is whether a visitor may see an order.
type Access int

const (
	// Visible: the order is the visitor's to see.
	Visible Access = iota
	// LogInRequired: a member's order, asked for by an anonymous visitor.
	LogInRequired
	// NotInAccount: asked for by a member whose order it is not (a guest
	// order included).
	NotInAccount
)

// AccessFor is the order page's rule (§5 O20, §12 Q26): an anonymous
// visitor (memberID 0) sees only orders without a member; a member only
// their own.
func (o Order) AccessFor(memberID int64) Access {
	switch {
	case memberID == 0 && o.MemberID != nil:
		return LogInRequired
	case memberID != 0 && (o.MemberID == nil || *o.MemberID != memberID):
		return NotInAccount
	}
	return Visible
}

// Status is one entry of an order's status history.
type Status struct {
	Identifier      string
	Title           string
	Description     string
	CreatedDateTime time.Time
}

// Detail is everything the order page shows of an order.
type Detail struct {
	Order
	// Lines are the product lines at the price paid, with what the API
	// shows of each SKU now, in the order they were written.
	Lines []cart.Line
	// Statuses are newest first.
	Statuses []Status
	// Shipping is the order's shipping method, nil when it has none.
	Shipping *cart.ShippingMethod
	// Discounts are the discount codes the order was placed with, with
	// whether each counted.
	Discounts []cart.Discount
}

const linesSQL = `SELECT sku_id, quantity, price_each FROM order_sku WHERE order_id = $1 ORDER BY id`

const statusesSQL = `
SELECT st.identifier, st.title, st.description, h.created_date_time
FROM order_status_history h JOIN order_status st ON st.id = h.order_status_id
WHERE h.order_id = $1 ORDER BY h.created_date_time DESC, h.id DESC`

const methodSQL = `
SELECT m.id, m.identifier, m.carrier, m.shipping_cost AS cost, m.tracking_code_base_url AS tracking_url, m.active
FROM order_shipping_method om JOIN shipping_method m ON m.id = om.shipping_method_id WHERE om.order_id = $1`

const discountsSQL = `
SELECT dc.id, dc.code, dc.description, dc.start_date_time, dc.end_date_time, dc.combinable, dc.discount_amount,
       dc.order_minimum, dt.title, dt.description, dt.applies_to, dt.action, od.applied
FROM order_discount od JOIN discount_code dc ON dc.id = od.discount_code_id JOIN discount_type dt ON dt.id = dc.discount_type_id
WHERE od.order_id = $1 ORDER BY od.id`

// Load reads the rest of an order found by Find: its product lines,
// status history, shipping method and discount codes.
func Load(ctx context.Context, db DB, o Order) (Detail, error) {
	d := Detail{Order: o}
	rows, err := db.Query(ctx, linesSQL, o.ID)
	if err != nil {
		return d, fmt.Errorf("order lines: %w", err)
	}
	paid, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cart.Line, error) {
		var l cart.Line
		return l, r.Scan(&l.SKUID, &l.Quantity, &l.Price)
	})
	if err != nil {
		return d, fmt.Errorf("order lines: %w", err)
	}
	lines, err := cart.PricedLines(ctx, db, paid)
	if err != nil {
		return d, fmt.Errorf("order lines: %w", err)
	}
	for _, l := range lines {
		if l.IsProduct() {
			d.Lines = append(d.Lines, l)
		}
	}
	if rows, err = db.Query(ctx, statusesSQL, o.ID); err != nil {
		return d, fmt.Errorf("order statuses: %w", err)
	}
	if d.Statuses, err = pgx.CollectRows(rows, pgx.RowToStructByName[Status]); err != nil {
		return d, fmt.Errorf("order statuses: %w", err)
	}
	if rows, err = db.Query(ctx, methodSQL, o.ID); err != nil {
		return d, fmt.Errorf("order shipping method: %w", err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[cart.ShippingMethod])
	switch {
	case err == nil:
		d.Shipping = &m
	case !errors.Is(err, pgx.ErrNoRows):
		return d, fmt.Errorf("order shipping method: %w", err)
	}
	if rows, err = db.Query(ctx, discountsSQL, o.ID); err != nil {
		return d, fmt.Errorf("order discounts: %w", err)
	}
	d.Discounts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (cart.Discount, error) {
		var x cart.Discount
		err := r.Scan(&x.CodeID, &x.Code, &x.Description, &x.Start, &x.End, &x.Combinable, &x.Amount,
			&x.OrderMinimum, &x.TypeTitle, &x.TypeDesc, &x.AppliesTo, &x.Action, &x.Applied)
		return x, err
	})
	if err != nil {
		return d, fmt.Errorf("order discounts: %w", err)
	}
	return d, nil
}
