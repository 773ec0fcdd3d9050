package cart

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The changes the shop's cart endpoints make (§5 O4-O10, O19, the discount
// codes of §11). Each is one statement, whole or not at all, except Add,
// which runs in its caller's transaction.

const addSQL = `
INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES ($1, $2, $3)
ON CONFLICT (cart_id, sku_id) DO UPDATE SET quantity = least(cart_sku.quantity::bigint + EXCLUDED.quantity, 2147483647)::integer`

// Add adds quantity units of a SKU to the cart (a line of that SKU grows,
// capped at the largest quantity a line holds) and returns how many lines
// the cart then has. Run it in the transaction that found the cart.
func Add(ctx context.Context, db DB, cartID, skuID int64, quantity int) (int, error) {
	if _, err := db.Exec(ctx, addSQL, cartID, skuID, quantity); err != nil {
		return 0, fmt.Errorf("add to cart: %w", err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM cart_sku WHERE cart_id = $1`, cartID).Scan(&n); err != nil {
		return 0, fmt.Errorf("add to cart: %w", err)
	}
	return n, nil
}

const lineOfSQL = `SELECT id FROM cart_sku WHERE cart_id = $1 AND sku_id = $2`

// LineOf returns the id of the cart's line of a SKU, false when it has none.
func LineOf(ctx context.Context, db DB, cartID, skuID int64) (int64, bool, error) {
	var id int64
	err := db.QueryRow(ctx, lineOfSQL, cartID, skuID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cart line: %w", err)
	}
	return id, true, nil
}

// SetQuantity sets a line's quantity; 0 keeps the line, as upstream does.
func SetQuantity(ctx context.Context, db DB, lineID int64, quantity int) error {
	if _, err := db.Exec(ctx, `UPDATE cart_sku SET quantity = $2 WHERE id = $1`, lineID, quantity); err != nil {
		return fmt.Errorf("set quantity: %w", err)
	}
	return nil
}

// removeSKUSQL removes a SKU's line and, when there was one, the selected
// shipping method; it counts the lines removed.
const removeSKUSQL = `
WITH gone AS (DELETE FROM cart_sku WHERE cart_id = $1 AND sku_id = $2 RETURNING id),
     method AS (DELETE FROM cart_shipping_method WHERE cart_id = $1 AND EXISTS (SELECT 1 FROM gone))
SELECT count(*) FROM gone`

// RemoveSKU removes the cart's line of a SKU, and with it the selected
// shipping method (O7: the choice is made again for what is left). It
// reports false when the cart had no such line; nothing is changed then.
func RemoveSKU(ctx context.Context, db DB, cartID, skuID int64) (bool, error) {
	var n int
	if err := db.QueryRow(ctx, removeSKUSQL, cartID, skuID).Scan(&n); err != nil {
		return false, fmt.Errorf("remove from cart: %w", err)
	}
	return n == 1, nil
}

const activeMethodsSQL = `SELECT id, identifier, carrier, shipping_cost AS cost, tracking_code_base_url AS tracking_url, active
FROM shipping_method WHERE active ORDER BY shipping_cost DESC, id`

// ActiveShippingMethods lists the methods a cart may choose, dearest first.
func ActiveShippingMethods(ctx context.Context, db DB) ([]ShippingMethod, error) {
	rows, err := db.Query(ctx, activeMethodsSQL)
	if err != nil {
		return nil, fmt.Errorf("shipping methods: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[ShippingMethod])
	if err != nil {
		return nil, fmt.Errorf("shipping methods: %w", err)
	}
	return out, nil
}

const selectShippingSQL = `
INSERT INTO cart_shipping_method (cart_id, shipping_method_id)
SELECT $1, id FROM shipping_method WHERE identifier = $2
ON CONFLICT (cart_id) DO UPDATE SET shipping_method_id = EXCLUDED.shipping_method_id`

// SelectShipping makes the method with this identifier the cart's (an
// inactive one too, as upstream). It reports false when there is no such
// method.
func SelectShipping(ctx context.Context, db DB, cartID int64, identifier string) (bool, error) {
	tag, err := db.Exec(ctx, selectShippingSQL, cartID, identifier)
	if err != nil {
		return false, fmt.Errorf("select shipping method: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

const selectDefaultShippingSQL = `
INSERT INTO cart_shipping_method (cart_id, shipping_method_id)
SELECT $1, id FROM shipping_method WHERE identifier = $2
ON CONFLICT (cart_id) DO NOTHING`

// SelectShippingIfNone makes the method with this identifier the cart's
// when the cart has none selected (the configured default of O4).
func SelectShippingIfNone(ctx context.Context, db DB, cartID int64, identifier string) error {
	if _, err := db.Exec(ctx, selectDefaultShippingSQL, cartID, identifier); err != nil {
		return fmt.Errorf("default shipping method: %w", err)
	}
	return nil
}

// Why a discount code cannot be applied.
var (
	ErrCodeNotFound       = errors.New("discount code not found")
	ErrCodeNotActive      = errors.New("discount code not active")
	ErrCodeAlreadyApplied = errors.New("discount code already applied")
)

const codeSQL = `SELECT id, start_date_time, end_date_time FROM discount_code WHERE code = $1`

const applyCodeSQL = `INSERT INTO cart_discount (cart_id, discount_code_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`

// ApplyDiscount applies the discount code with this text to the cart. A
// code is applied only while active (now within its dates) and at most
// once per cart; whether it then counts is ComputeTotals' rule.
func ApplyDiscount(ctx context.Context, db DB, cartID int64, code string, now time.Time) error {
	var id int64
	var start, end time.Time
	err := db.QueryRow(ctx, codeSQL, code).Scan(&id, &start, &end)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrCodeNotFound
	}
	if err != nil {
		return fmt.Errorf("discount code: %w", err)
	}
	if now.Before(start) || now.After(end) {
		return ErrCodeNotActive
	}
	tag, err := db.Exec(ctx, applyCodeSQL, cartID, id)
	if err != nil {
		return fmt.Errorf("apply discount code: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrCodeAlreadyApplied
	}
	return nil
}

// RemoveDiscount takes a discount code (by id) off the cart, reporting
// false when the cart did not have it.
func RemoveDiscount(ctx context.Context, db DB, cartID, codeID int64) (bool, error) {
	tag, err := db.Exec(ctx, `DELETE FROM cart_discount WHERE cart_id = $1 AND discount_code_id = $2`, cartID, codeID)
	if err != nil {
		return false, fmt.Errorf("remove discount code: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ClearPaymentLinks drops the cart's links to a payment and a shipping
// address, which only upstream's pre-Stripe checkout wrote (O19).
func ClearPaymentLinks(ctx context.Context, db DB, cartID int64) error {
	if _, err := db.Exec(ctx, `UPDATE cart SET payment_id = NULL, shipping_address_id = NULL WHERE id = $1`, cartID); err != nil {
		return fmt.Errorf("clear cart payment: %w", err)
	}
	return nil
}
