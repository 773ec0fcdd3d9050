// Package cart is the shopping cart shared by the shop (/order/*) and the
// accounts app (/user/login, /user/create-account): finding the request's
// cart (a member's, or an anonymous one named by the signed an_ct cookie),
// creating it on first add, merging or adopting the anonymous cart when its
// visitor signs in, and computing totals with exact decimals. The reads
// made on every view queue on one pgx.Batch, the cart named by its owner
// (Of, QueueRead), so each view costs one round trip.
//
// Tables: cart, cart_sku, cart_shipping_method, cart_discount (see
// migrations/README.md). A member has at most one cart and an anonymous id
// names at most one cart; both are unique constraints (§12 Q25).
package cart

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the cart functions run their SQL on: a pooled connection or a
// transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Owner says whose cart a request means: a member (MemberID > 0) or an
// anonymous visitor (AnonymousID, the verified an_ct value; "" = none).
type Owner struct {
	MemberID    int64
	AnonymousID string
}

// Cart is a cart row.
type Cart struct {
	ID          int64
	MemberID    int64  // 0 for an anonymous cart
	AnonymousID string // "" for a member cart
}

// ErrNotFound is returned when a cart asked for by id does not exist.
var ErrNotFound = errors.New("cart not found")

const findMemberSQL = `SELECT id, coalesce(member_id, 0), coalesce(anonymous_cart_id, '') FROM cart WHERE member_id = $1`

const findAnonymousSQL = `SELECT id, coalesce(member_id, 0), coalesce(anonymous_cart_id, '') FROM cart
WHERE anonymous_cart_id = $1 AND member_id IS NULL`

// Find returns the owner's cart, and false when there is none.
func Find(ctx context.Context, db DB, o Owner) (Cart, bool, error) {
	var row pgx.Row
	switch {
	case o.MemberID > 0:
		row = db.QueryRow(ctx, findMemberSQL, o.MemberID)
	case o.AnonymousID != "":
		row = db.QueryRow(ctx, findAnonymousSQL, o.AnonymousID)
	default:
		return Cart{}, false, nil
	}
	var c Cart
	if err := row.Scan(&c.ID, &c.MemberID, &c.AnonymousID); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Cart{}, false, nil
		}
		return Cart{}, false, fmt.Errorf("find cart: %w", err)
	}
	return c, true, nil
}

const createMemberSQL = `INSERT INTO cart (member_id) VALUES ($1) ON CONFLICT (member_id) DO NOTHING`

const createAnonymousSQL = `INSERT INTO cart (anonymous_cart_id) VALUES ($1) RETURNING id`

// FindOrCreate returns the owner's cart, creating it when there is none
// (the first add to cart). An anonymous visitor without a cart gets a new
// cart under a fresh anonymous id; the caller sets the cookie. Concurrent
// first adds by one member end with one cart.
func FindOrCreate(ctx context.Context, db DB, o Owner) (Cart, bool, error) {
	if c, ok, err := Find(ctx, db, o); err != nil || ok {
		return c, false, err
	}
	if o.MemberID > 0 {
		tag, err := db.Exec(ctx, createMemberSQL, o.MemberID)
		if err != nil {
			return Cart{}, false, fmt.Errorf("create member cart: %w", err)
		}
		c, ok, err := Find(ctx, db, o)
		if err == nil && !ok {
			err = errors.New("create member cart: cart vanished")
		}
		return c, tag.RowsAffected() == 1, err
	}
	id, err := NewAnonymousID()
	if err != nil {
		return Cart{}, false, fmt.Errorf("create anonymous cart: %w", err)
	}
	c := Cart{AnonymousID: id}
	if err := db.QueryRow(ctx, createAnonymousSQL, id).Scan(&c.ID); err != nil {
		return Cart{}, false, fmt.Errorf("create anonymous cart: %w", err)
	}
	return c, true, nil
}

const rotateSQL = `UPDATE cart SET anonymous_cart_id = $2 WHERE id = $1 AND member_id IS NULL`

// RotateAnonymousID gives an anonymous cart a new id (each successful
// anonymous add, §5 O10) and returns it; the caller re-sets the cookie.
func RotateAnonymousID(ctx context.Context, db DB, cartID int64) (string, error) {
	id, err := NewAnonymousID()
	if err != nil {
		return "", fmt.Errorf("rotate cart id: %w", err)
	}
	tag, err := db.Exec(ctx, rotateSQL, cartID, id)
	if err != nil {
		return "", fmt.Errorf("rotate cart id: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return "", ErrNotFound
	}
	return id, nil
}

// Delete removes a cart with its lines, shipping method and discount codes
// (they cascade). Deleting a missing cart is not an error.
func Delete(ctx context.Context, db DB, cartID int64) error {
	if _, err := db.Exec(ctx, `DELETE FROM cart WHERE id = $1`, cartID); err != nil {
		return fmt.Errorf("delete cart: %w", err)
	}
	return nil
}

// subtractSQL takes quantities out of a cart's lines by SKU: a line left
// with nothing is removed. The two parts touch different rows.
const subtractSQL = `
WITH x AS (
  SELECT sku_id, sum(quantity)::integer AS quantity
  FROM unnest($2::bigint[], $3::integer[]) AS u(sku_id, quantity) GROUP BY sku_id
), gone AS (
  DELETE FROM cart_sku c USING x WHERE c.cart_id = $1 AND c.sku_id = x.sku_id AND c.quantity <= x.quantity
)
UPDATE cart_sku c SET quantity = c.quantity - x.quantity
FROM x WHERE c.cart_id = $1 AND c.sku_id = x.sku_id AND c.quantity > x.quantity`

const removeCodesSQL = `DELETE FROM cart_discount WHERE cart_id = $1 AND discount_code_id = ANY($2::bigint[])`

const deleteIfEmptySQL = `DELETE FROM cart WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM cart_sku WHERE cart_id = $1)`

// Subtract takes a paid checkout out of a cart, when the order was made
// from what the checkout charged rather than from the cart: each line's
// quantity is subtracted from the cart's line of the same SKU (a line left
// with nothing is removed), the checkout's discount codes are removed, and
// a cart left without lines is deleted. What the visitor added after the
// checkout began stays in the cart, with its shipping method, for the next
// one. It reports whether the cart was deleted. Run it in the order's
// transaction with the cart locked.
func Subtract(ctx context.Context, db DB, cartID int64, lines []Line, discountCodeIDs []int64) (bool, error) {
	skus := make([]int64, len(lines))
	qtys := make([]int32, len(lines))
	for i, l := range lines {
		skus[i], qtys[i] = l.SKUID, int32(l.Quantity)
	}
	if _, err := db.Exec(ctx, subtractSQL, cartID, skus, qtys); err != nil {
		return false, fmt.Errorf("subtract from cart: %w", err)
	}
	if discountCodeIDs == nil {
		discountCodeIDs = []int64{}
	}
	if _, err := db.Exec(ctx, removeCodesSQL, cartID, discountCodeIDs); err != nil {
		return false, fmt.Errorf("subtract from cart: discount codes: %w", err)
	}
	tag, err := db.Exec(ctx, deleteIfEmptySQL, cartID)
	if err != nil {
		return false, fmt.Errorf("subtract from cart: delete: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// lockBothSQL locks the anonymous cart and the member's cart, in id order so
// two concurrent sign-ins cannot deadlock.
const lockBothSQL = `SELECT id, coalesce(member_id, 0) FROM cart
WHERE (anonymous_cart_id = $1 AND member_id IS NULL) OR member_id = $2
ORDER BY id FOR UPDATE`

// MergeAnonymousIntoMember folds the anonymous cart into the member's on
// sign-in (§4 U3): with no member cart the anonymous cart becomes the
// member's; otherwise every anonymous line whose SKU is not already in the
// member cart is copied with its quantity (existing member lines are left
// as they are), the shipping method is copied when the member cart has
// none, discount codes are copied, and the anonymous cart is deleted. A
// missing anonymous cart is not an error. Run it in the login transaction.
func MergeAnonymousIntoMember(ctx context.Context, tx pgx.Tx, anonymousCartID string, memberID int64) error {
	if anonymousCartID == "" || memberID <= 0 {
		return nil
	}
	anon, member, err := lockBoth(ctx, tx, anonymousCartID, memberID)
	if err != nil || anon == 0 {
		return err
	}
	if member == 0 {
		return takeOver(ctx, tx, anon, memberID)
	}
	steps := []string{
		`INSERT INTO cart_sku (cart_id, sku_id, quantity)
		 SELECT $2, sku_id, quantity FROM cart_sku WHERE cart_id = $1 ORDER BY id
		 ON CONFLICT (cart_id, sku_id) DO NOTHING`,
		`INSERT INTO cart_shipping_method (cart_id, shipping_method_id)
		 SELECT $2, shipping_method_id FROM cart_shipping_method WHERE cart_id = $1
		 ON CONFLICT (cart_id) DO NOTHING`,
		`INSERT INTO cart_discount (cart_id, discount_code_id)
		 SELECT $2, discount_code_id FROM cart_discount WHERE cart_id = $1 ORDER BY id
		 ON CONFLICT (cart_id, discount_code_id) DO NOTHING`,
		`DELETE FROM cart WHERE id = $1 AND $2::bigint > 0`,
	}
	for _, q := range steps {
		if _, err := tx.Exec(ctx, q, anon, member); err != nil {
			return fmt.Errorf("merge carts: %w", err)
		}
	}
	return nil
}

// AdoptAnonymous makes the anonymous cart the new member's cart (account
// creation, §4 U6 step 5). Should the member already have a cart, the two
// are merged as on sign-in. A missing anonymous cart is not an error.
func AdoptAnonymous(ctx context.Context, tx pgx.Tx, anonymousCartID string, memberID int64) error {
	return MergeAnonymousIntoMember(ctx, tx, anonymousCartID, memberID)
}

func lockBoth(ctx context.Context, tx pgx.Tx, anonymousCartID string, memberID int64) (anon, member int64, err error) {
	rows, err := tx.Query(ctx, lockBothSQL, anonymousCartID, memberID)
	if err != nil {
		return 0, 0, fmt.Errorf("lock carts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, owner int64
		if err := rows.Scan(&id, &owner); err != nil {
			return 0, 0, fmt.Errorf("lock carts: %w", err)
		}
		if owner == memberID {
			member = id
		} else {
			anon = id
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("lock carts: %w", err)
	}
	return anon, member, nil
}

func takeOver(ctx context.Context, tx pgx.Tx, cartID, memberID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE cart SET member_id = $2, anonymous_cart_id = NULL WHERE id = $1`, cartID, memberID); err != nil {
		return fmt.Errorf("adopt cart: %w", err)
	}
	return nil
}
