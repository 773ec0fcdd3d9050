package shop

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/tenant/cart"
)

// A checkout snapshot (table checkout_session) records what a Checkout
// Session charges: written once Stripe has created the session (O15), from
// the very cart contents its parameters were built from, and read back when
// the session becomes an order. The order is then exactly what was paid for, whatever happened to
// the cart in between (another tab adding items, a price change).

const insertSnapshotSQL = `
INSERT INTO checkout_session (id, cart_id, member_id, shipping_method_id,
  item_subtotal, item_discount, shipping, shipping_discount, total)
VALUES ($1, $2, NULLIF($3, 0), $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO NOTHING`

const insertSnapshotSKUSQL = `INSERT INTO checkout_session_sku (checkout_session_id, sku_id, quantity, price_each)
VALUES ($1, $2, $3, $4)`

const insertSnapshotDiscountSQL = `INSERT INTO checkout_session_discount (checkout_session_id, discount_code_id, applied)
VALUES ($1, $2, $3)`

// saveSnapshot records cc as what session id charges. A session already
// recorded (Stripe answered a repeated request with the same session) is
// left as it is: its idempotency key covers everything charged.
func saveSnapshot(ctx context.Context, tx pgx.Tx, id string, cc cart.Contents) error {
	var methodID *int64
	if cc.Shipping != nil {
		methodID = &cc.Shipping.ID
	}
	tt := cc.Totals
	tag, err := tx.Exec(ctx, insertSnapshotSQL, id, cc.Cart.ID, cc.Cart.MemberID, methodID,
		nullable(tt.ItemSubtotal), nullable(tt.ItemDiscount), nullable(tt.ShippingSubtotal), nullable(tt.ShippingDiscount),
		tt.Total())
	if err != nil {
		return fmt.Errorf("checkout snapshot: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	for _, l := range cc.Lines {
		if _, err := tx.Exec(ctx, insertSnapshotSKUSQL, id, l.SKUID, l.Quantity, l.Price); err != nil {
			return fmt.Errorf("checkout snapshot line: %w", err)
		}
	}
	for _, d := range cc.Discounts {
		if _, err := tx.Exec(ctx, insertSnapshotDiscountSQL, id, d.CodeID, d.Applied); err != nil {
			return fmt.Errorf("checkout snapshot discount: %w", err)
		}
	}
	return nil
}

// nullable is an amount for a column where NULL means the cart had none
// (the contract's integer 0).
func nullable(a cart.Amount) *decimal.Decimal {
	if !a.Set {
		return nil
	}
	return &a.Value
}

func amount(v *decimal.Decimal) cart.Amount {
	if v == nil {
		return cart.Amount{}
	}
	return cart.Money(*v)
}

const snapshotSQL = `SELECT cart_id, coalesce(member_id, 0), shipping_method_id,
  item_subtotal, item_discount, shipping, shipping_discount, total
FROM checkout_session WHERE id = $1`

const snapshotSKUsSQL = `SELECT sku_id, quantity, price_each FROM checkout_session_sku
WHERE checkout_session_id = $1 ORDER BY id`

const snapshotDiscountsSQL = `SELECT d.discount_code_id, c.code, d.applied
FROM checkout_session_discount d JOIN discount_code c ON c.id = d.discount_code_id
WHERE d.checkout_session_id = $1 ORDER BY d.id`

const shippingMethodSQL = `SELECT id, identifier, carrier, shipping_cost, tracking_code_base_url, active
FROM shipping_method WHERE id = $1`

// loadSnapshot returns what session id charges as cart contents (lines at
// the prices charged, the shipping method at the cost charged, the
// discount codes with whether each counted, the totals charged), and false
// when the session has no snapshot (it was created before snapshots were
// recorded). Contents.Cart holds the snapshot's cart id and member.
func loadSnapshot(ctx context.Context, db cart.DB, id string) (cart.Contents, bool, error) {
	var cc cart.Contents
	var methodID *int64
	var itemSub, itemDisc, ship, shipDisc *decimal.Decimal
	var total decimal.Decimal
	err := db.QueryRow(ctx, snapshotSQL, id).Scan(&cc.Cart.ID, &cc.Cart.MemberID, &methodID,
		&itemSub, &itemDisc, &ship, &shipDisc, &total)
	if errors.Is(err, pgx.ErrNoRows) {
		return cc, false, nil
	}
	if err != nil {
		return cc, false, fmt.Errorf("checkout snapshot: %w", err)
	}
	rows, err := db.Query(ctx, snapshotSKUsSQL, id)
	if err != nil {
		return cc, false, fmt.Errorf("checkout snapshot lines: %w", err)
	}
	var lines []cart.Line
	var l cart.Line
	if _, err := pgx.ForEachRow(rows, []any{&l.SKUID, &l.Quantity, &l.Price}, func() error {
		lines = append(lines, l)
		return nil
	}); err != nil {
		return cc, false, fmt.Errorf("checkout snapshot lines: %w", err)
	}
	if cc.Lines, err = cart.PricedLines(ctx, db, lines); err != nil {
		return cc, false, err
	}
	rows, err = db.Query(ctx, snapshotDiscountsSQL, id)
	if err != nil {
		return cc, false, fmt.Errorf("checkout snapshot discounts: %w", err)
	}
	var d cart.Discount
	if _, err := pgx.ForEachRow(rows, []any{&d.CodeID, &d.Code, &d.Applied}, func() error {
		cc.Discounts = append(cc.Discounts, d)
		return nil
	}); err != nil {
		return cc, false, fmt.Errorf("checkout snapshot discounts: %w", err)
	}
	if methodID != nil {
		var m cart.ShippingMethod
		if err := db.QueryRow(ctx, shippingMethodSQL, *methodID).Scan(&m.ID, &m.Identifier, &m.Carrier, &m.Cost, &m.TrackingURL, &m.Active); err != nil {
			return cc, false, fmt.Errorf("checkout snapshot shipping method: %w", err)
		}
		if ship != nil {
			m.Cost = *ship
		}
		cc.Shipping = &m
	}
	cc.Totals = cart.Totals{
		ItemSubtotal:     amount(itemSub),
		ItemDiscount:     amount(itemDisc),
		ShippingSubtotal: amount(ship),
		ShippingDiscount: amount(shipDisc),
		CartTotal:        cart.Money(total),
		WithDiscounts:    len(cc.Discounts) > 0,
	}
	return cc, true, nil
}

// snapshotExists reports whether session id has a snapshot.
func snapshotExists(ctx context.Context, db cart.DB, id string) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM checkout_session WHERE id = $1)`, id).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("checkout snapshot: %w", err)
	}
	return ok, nil
}

func discountCodeIDs(ds []cart.Discount) []int64 {
	out := make([]int64, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.CodeID)
	}
	return out
}
