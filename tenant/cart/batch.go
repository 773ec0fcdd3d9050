package cart

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Of names a cart by an SQL expression of $1 rather than by its id, so
// that reads queued in one pgx.Batch can be about a cart nobody has looked
// up yet: the batch finds the cart and reads its lines, shipping method and
// discounts in one round trip (statements pipelined and answered together,
// in one implicit transaction).
type Of struct {
	expr string // yields the cart id (or NULL) from $1
	arg  any
}

// ofID is the expression of Lines, SelectedShipping and Discounts, which
// are handed the cart id itself.
const ofID = `$1`

// OfAccount names the cart of an active account's member (an account
// without a member row has none, §12 Q17: such users shop anonymously), as
// MemberOf and Find would find it.
func OfAccount(accountID int64) Of {
	return Of{`(SELECT c.id FROM cart c JOIN member m ON m.id = c.member_id JOIN account a ON a.id = m.account_id
  WHERE a.id = $1 AND a.is_active)`, accountID}
}

// OfMember names a member's cart.
func OfMember(memberID int64) Of { return Of{`(SELECT id FROM cart WHERE member_id = $1)`, memberID} }

// OfAnonymous names the anonymous cart of an an_ct id.
func OfAnonymous(anonymousID string) Of {
	return Of{`(SELECT id FROM cart WHERE anonymous_cart_id = $1 AND member_id IS NULL)`, anonymousID}
}

// OfOwner names the owner's cart as Find finds it, and false for an owner
// with none to name (neither a member nor an anonymous id).
func OfOwner(o Owner) (Of, bool) {
	switch {
	case o.MemberID > 0:
		return OfMember(o.MemberID), true
	case o.AnonymousID != "":
		return OfAnonymous(o.AnonymousID), true
	}
	return Of{}, false
}

// The Queue functions below queue reads on a batch and fill what they are
// given once the batch is closed. Each resets its destination when queued,
// so the same destinations can be queued again on another batch.

// QueueCart queues the lookup of the cart row of into c, found reporting
// whether there is one.
func QueueCart(b *pgx.Batch, of Of, c *Cart, found *bool) {
	*c, *found = Cart{}, false
	b.Queue(`SELECT id, coalesce(member_id, 0), coalesce(anonymous_cart_id, '') FROM cart WHERE id = `+of.expr, of.arg).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&c.ID, &c.MemberID, &c.AnonymousID)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("find cart: %w", err)
			}
			*found = true
			return nil
		})
}

// QueueShipping queues the read of the selected method of the cart of into
// m (nil: none, or no cart).
func QueueShipping(b *pgx.Batch, of Of, m **ShippingMethod) {
	*m = nil
	b.Queue(selectedShippingSQL(of.expr), of.arg).QueryRow(func(row pgx.Row) (err error) {
		*m, err = scanShipping(row)
		return err
	})
}

// QueueActiveShippingMethods queues ActiveShippingMethods into ms.
func QueueActiveShippingMethods(b *pgx.Batch, ms *[]ShippingMethod) {
	*ms = nil
	b.Queue(activeMethodsSQL).Query(func(rows pgx.Rows) (err error) {
		if *ms, err = pgx.CollectRows(rows, pgx.RowToStructByName[ShippingMethod]); err != nil {
			return fmt.Errorf("shipping methods: %w", err)
		}
		return nil
	})
}

// Read is what QueueRead reads of a cart. Its zero value is a cart not
// found, with the totals of nothing.
type Read struct {
	Found bool
	// Contents has the cart and its lines; with totals also the shipping
	// method, the discounts and the totals.
	Contents Contents
}

// QueueRead queues the reads of the cart of: the cart row and its lines,
// and withTotals its shipping method and discount codes, with the totals
// computed from them, into r.
func QueueRead(b *pgx.Batch, of Of, withTotals bool, r *Read) {
	*r = Read{}
	QueueCart(b, of, &r.Contents.Cart, &r.Found)
	b.Queue(linesSQL(of.expr), of.arg).Query(func(rows pgx.Rows) (err error) {
		r.Contents.Lines, err = scanLines(rows)
		return err
	})
	if !withTotals {
		return
	}
	QueueShipping(b, of, &r.Contents.Shipping)
	b.Queue(discountsSQL(of.expr), of.arg).Query(func(rows pgx.Rows) (err error) {
		if r.Contents.Discounts, err = scanDiscounts(rows); err != nil {
			return err
		}
		// A batch answers in order: the lines and the method are in.
		if r.Found {
			r.Contents.Totals = ComputeTotals(r.Contents.Lines, r.Contents.Shipping, r.Contents.Discounts)
		}
		return nil
	})
}

// QueueLineCount queues on b the count of the lines of the cart of (0 when
// there is no such cart) into n.
func QueueLineCount(b *pgx.Batch, of Of, n *int) {
	b.Queue(`SELECT count(*) FROM cart_sku WHERE cart_id = `+of.expr, of.arg).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(n); err != nil {
			return fmt.Errorf("cart line count: %w", err)
		}
		return nil
	})
}

// Member is an active account's member row (an account without one shops
// anonymously, §12 Q17), with the account's password hash for the caller's
// session check (sessions.Session.AuthMatches).
type Member struct {
	ID           int64
	PasswordHash string
	Found        bool
}

const memberOfAccountSQL = `SELECT m.id, a.password_hash FROM member m JOIN account a ON a.id = m.account_id
WHERE a.id = $1 AND a.is_active`

// QueueMember queues on b the lookup of the member of an active account
// into m (not found: no such account, inactive, or without a member row).
func QueueMember(b *pgx.Batch, accountID int64, m *Member) {
	*m = Member{}
	b.Queue(memberOfAccountSQL, accountID).QueryRow(func(row pgx.Row) error { return m.scan(row) })
}

// MemberOf is QueueMember on its own.
func MemberOf(ctx context.Context, db DB, accountID int64) (Member, error) {
	var m Member
	return m, m.scan(db.QueryRow(ctx, memberOfAccountSQL, accountID))
}

func (m *Member) scan(row pgx.Row) error {
	err := row.Scan(&m.ID, &m.PasswordHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("member of account: %w", err)
	}
	m.Found = true
	return nil
}

// Claim is the account a request's session says is signed in, before it
// is checked against the account's row. Check, when set, is the accounts
// app's rule for that row's password hash (a session ends when the
// password changes); the shop reads the row in the same batch as the cart,
// so a signed-in cart read costs one round trip.
type Claim struct {
	AccountID int64
	Check     func(passwordHash string) bool
}

// Holds reports whether the claim stands for the member read for it: the
// account is active, has a member row and passes Check.
func (c Claim) Holds(m Member) bool {
	return c.AccountID > 0 && m.Found && (c.Check == nil || c.Check(m.PasswordHash))
}
