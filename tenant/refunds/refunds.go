// Package refunds records refunds of orders' Stripe payments, exactly once
// whichever reports a refund first: the back office's call to Stripe or
// Stripe's charge.refunded webhook (tenant/shop). Both call Record in a
// transaction; the order's row lock orders them and the refund's unique
// Stripe id keeps one record.
//
// Table: refund (migrations/tenant/00006).
package refunds

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/payments"
)

// MetadataKey names, in a Stripe refund's metadata, the refund row the back
// office wrote before asking Stripe.
const MetadataKey = "swa_refund_id"

// Statuses of a refund row.
const (
	Pending   = "pending"
	Succeeded = "succeeded"
	Failed    = "failed"
)

// StatusOf maps a Stripe refund's status to a row's.
func StatusOf(s stripe.RefundStatus) string {
	switch s {
	case stripe.RefundStatusSucceeded:
		return Succeeded
	case stripe.RefundStatusFailed, stripe.RefundStatusCanceled:
		return Failed
	}
	return Pending
}

// ErrUnknownPayment: no order has the refund's payment intent.
var ErrUnknownPayment = errors.New("refunds: no order has this payment")

// Order is what a refund needs of an order, read under its row lock.
type Order struct {
	ID int64
	// Charged is what Stripe took: stripe_amount_total when known, else
	// the order total.
	Charged decimal.Decimal
	// Committed is the sum of the refunds pending or succeeded.
	Committed decimal.Decimal
	// Refunded is the sum of the refunds succeeded.
	Refunded decimal.Decimal
	// PaymentIntent is the Stripe payment intent, "" for none.
	PaymentIntent string
}

// Left is what may still be refunded.
func (o Order) Left() decimal.Decimal { return o.Charged.Sub(o.Committed) }

const lockSQL = `
SELECT o.id, COALESCE(o.stripe_amount_total, o.order_total), COALESCE(p.stripe_payment_intent_id, '')
FROM customer_order o LEFT JOIN order_payment p ON p.id = o.payment_id
WHERE %s FOR UPDATE OF o`

const sumsSQL = `
SELECT COALESCE(sum(amount) FILTER (WHERE status <> 'failed'), 0), COALESCE(sum(amount) FILTER (WHERE status = 'succeeded'), 0)
FROM refund WHERE order_id = $1`

// Lock locks the order with this identifier for its refunds; false when
// there is none.
func Lock(ctx context.Context, tx pgx.Tx, identifier string) (Order, bool, error) {
	return lock(ctx, tx, "o.identifier = $1", identifier)
}

func lock(ctx context.Context, tx pgx.Tx, where string, arg any) (Order, bool, error) {
	var o Order
	err := tx.QueryRow(ctx, fmt.Sprintf(lockSQL, where), arg).Scan(&o.ID, &o.Charged, &o.PaymentIntent)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, false, nil
	}
	if err != nil {
		return o, false, fmt.Errorf("lock order: %w", err)
	}
	if err := tx.QueryRow(ctx, sumsSQL, o.ID).Scan(&o.Committed, &o.Refunded); err != nil {
		return o, false, fmt.Errorf("order refunds: %w", err)
	}
	return o, true, nil
}

// Reported is a refund as Stripe reports it.
type Reported struct {
	ID            string
	PaymentIntent string
	// Cents is the amount in the smallest unit.
	Cents    int64
	Status   string // a row status (StatusOf)
	Metadata map[string]string
}

// FromStripe is what Record needs of a Stripe refund.
func FromStripe(r *stripe.Refund) Reported {
	rep := Reported{ID: r.ID, Cents: r.Amount, Status: StatusOf(r.Status), Metadata: r.Metadata}
	if r.PaymentIntent != nil {
		rep.PaymentIntent = r.PaymentIntent.ID
	}
	return rep
}

// Record writes what Stripe reports of a refund: it fills the back office's
// pending row (found by its Stripe id, else by the row id in the metadata),
// or adds a row for a refund made elsewhere. An order refunded in full gets
// the status "refunded". It reports whether the refund was new to the
// database.
func Record(ctx context.Context, tx pgx.Tx, r Reported) (bool, error) {
	o, ok, err := lock(ctx, tx, "p.stripe_payment_intent_id = $1", r.PaymentIntent)
	if err != nil {
		return false, err
	}
	if !ok || r.PaymentIntent == "" {
		return false, ErrUnknownPayment
	}
	amount := payments.FromCents(r.Cents)
	tag, err := tx.Exec(ctx, `UPDATE refund SET status = $2 WHERE order_id = $3 AND stripe_refund_id = $1`, r.ID, r.Status, o.ID)
	if err != nil {
		return false, fmt.Errorf("record refund: %w", err)
	}
	fresh := false
	switch {
	case tag.RowsAffected() > 0: // known already
	case r.Metadata[MetadataKey] != "":
		tag, err = tx.Exec(ctx, `UPDATE refund SET stripe_refund_id = $1, status = $2, amount = $3
WHERE id::text = $4 AND order_id = $5 AND stripe_refund_id IS NULL`, r.ID, r.Status, amount, r.Metadata[MetadataKey], o.ID)
		if err != nil {
			return false, fmt.Errorf("record refund: %w", err)
		}
		if tag.RowsAffected() == 1 {
			fresh = true
			break
		}
		fallthrough
	default:
		if _, err := tx.Exec(ctx, `INSERT INTO refund (order_id, amount, status, stripe_refund_id, reason)
VALUES ($1, $2, $3, $4, 'made outside the back office')`, o.ID, amount, r.Status, r.ID); err != nil {
			return false, fmt.Errorf("record refund: %w", err)
		}
		fresh = true
	}
	return fresh, markRefunded(ctx, tx, o.ID)
}

// markRefunded gives an order refunded in full the status "refunded".
func markRefunded(ctx context.Context, tx pgx.Tx, orderID int64) error {
	_, err := tx.Exec(ctx, `
INSERT INTO order_status_history (order_id, order_status_id)
SELECT o.id, st.id FROM customer_order o, order_status st
WHERE o.id = $1 AND st.identifier = 'refunded'
  AND (SELECT COALESCE(sum(amount), 0) FROM refund WHERE order_id = o.id AND status = 'succeeded')
      >= COALESCE(o.stripe_amount_total, o.order_total)
ON CONFLICT (order_id, order_status_id) DO NOTHING`, orderID)
	if err != nil {
		return fmt.Errorf("mark refunded: %w", err)
	}
	return nil
}
