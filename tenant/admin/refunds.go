package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/refunds"
)

// Refunds, full or partial, through the tenant's own Stripe account. The
// refund row is written (pending, under the order's lock, within what is
// left of the charge) before Stripe is asked, with no connection held
// during the call; Stripe's answer and its charge.refunded webhook then
// race to record the refund, and refunds.Record keeps one record. A row
// left pending (the process died, Stripe did not answer) is asked again by
// the sweeper (sweep.go) through the same completeRefund.

var errNoPayments = &apiError{Status: fiber.StatusConflict, Code: "payments-not-configured", Detail: "this shop takes no Stripe payments"}

func (a *App) apiOrderRefund(c *fiber.Ctx) error {
	r := a.r(c)
	ident, err := orderIdent(c)
	if err != nil {
		return err
	}
	var in struct {
		Amount *amountIn `json:"amount"`
		Reason string    `json:"reason"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.refund(r, ident, in.Amount, in.Reason, c.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

// refund makes a refund of the order; key (optional) is the client's
// Idempotency-Key.
func (a *App) refund(r *req, ident string, in *amountIn, reason, key string) (*orderDetailJSON, error) {
	amount, err := money("amount", in)
	if err != nil {
		return nil, err
	}
	if !amount.IsPositive() {
		return nil, invalid("amount", "amount must be more than 0")
	}
	if reason, err = text("reason", reason, false, 500); err != nil {
		return nil, err
	}
	// A client's Idempotency-Key makes a retried request the same refund.
	key = strings.TrimSpace(key)
	if len(key) > 200 {
		return nil, invalid("Idempotency-Key", "Idempotency-Key is longer than 200 characters")
	}
	if key == "" {
		key = account.RandomString(32)
	}
	key = "swa-refund-" + strconv.FormatInt(r.tenant.ID, 10) + "-" + key
	if a.payments == nil {
		return nil, errNoPayments
	}
	// 1. The pending row, within what is left of the charge.
	var rowID int64
	var intent string
	err = a.tx(r, func(tx pgx.Tx) error {
		o, ok, err := refunds.Lock(r.ctx, tx, ident)
		if err != nil {
			return err
		}
		if !ok {
			return errNotFound
		}
		if o.PaymentIntent == "" {
			return &apiError{Status: fiber.StatusConflict, Code: "no-stripe-payment", Detail: "the order has no Stripe payment to refund"}
		}
		intent = o.PaymentIntent
		var prior decimal.Decimal
		err = tx.QueryRow(r.ctx, `SELECT id, amount FROM refund WHERE idempotency_key = $1 AND order_id = $2`, key, o.ID).Scan(&rowID, &prior)
		switch {
		case err == nil:
			if !prior.Equal(amount) {
				return invalid("amount", "this Idempotency-Key was used for another amount")
			}
			return nil // the same request again: ask Stripe again with the same key
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if amount.GreaterThan(o.Left()) {
			return &apiError{Status: fiber.StatusConflict, Code: "refund-exceeds-charge", Field: "amount",
				Detail: fmt.Sprintf("at most %s is left to refund", o.Left().StringFixed(2))}
		}
		err = tx.QueryRow(r.ctx, `INSERT INTO refund (order_id, amount, reason, idempotency_key, created_by) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`, o.ID, amount, reason, key, r.who.staff.Email).Scan(&rowID)
		if errors.Is(err, pgx.ErrNoRows) {
			return invalid("Idempotency-Key", "this Idempotency-Key was used for another order")
		}
		if err != nil {
			return fmt.Errorf("refund: %w", err)
		}
		return r.audit(tx, auditEntry{Action: "order.refund_requested", TargetType: "order", TargetID: o.ID,
			After: map[string]any{"refund_id": rowID, "amount": amount, "reason": reason}})
	})
	if err != nil {
		return nil, err
	}
	// 2. Stripe, with no connection held, and 3. the record.
	err = a.completeRefund(r.ctx, r.tenant, pendingRefund{ID: rowID, Intent: intent, Amount: amount, Key: key})
	var refused *refundRefused
	switch {
	case errors.As(err, &refused):
		return nil, &apiError{Status: fiber.StatusBadGateway, Code: "refund-refused", Detail: "Stripe refused the refund: " + refused.se.Msg, Field: "amount"}
	case errors.Is(err, errRefundUnconfirmed):
		a.log.Error("refund: stripe", "tenant", r.tenant.Slug, "refund", rowID, "err", err)
		return nil, &apiError{Status: fiber.StatusBadGateway, Code: "refund-unconfirmed",
			Detail: "Stripe did not confirm the refund; it stays pending until Stripe reports it or the shop asks Stripe again (within minutes), or send the request again with the same Idempotency-Key"}
	case err != nil:
		return nil, err
	}
	return a.orderDetail(r, ident)
}

// pendingRefund is a pending refund row, what Stripe is asked for.
type pendingRefund struct {
	ID     int64
	Intent string // the payment intent refunded
	Amount decimal.Decimal
	Key    string // the Stripe idempotency key, the row's idempotency_key
}

// refundRefused: Stripe refused the refund; its row is failed.
type refundRefused struct{ se *stripe.Error }

func (e *refundRefused) Error() string { return "stripe refused the refund: " + e.se.Msg }

// errRefundUnconfirmed: Stripe gave no answer (a timeout, a network or
// server error); the row stays pending.
var errRefundUnconfirmed = errors.New("stripe did not confirm the refund")

// completeRefund asks Stripe for a pending row's refund with the row's
// idempotency key, so asking again (a retried request, the sweeper) is the
// same refund, never a second one, and records the answer: refunds.Record
// fills the row (the webhook may have filled it already: one record
// either way). A refusal marks the row failed, freeing its amount
// (*refundRefused); no answer leaves it pending (errRefundUnconfirmed).
// No connection is held during the Stripe call.
func (a *App) completeRefund(ctx context.Context, t *directory.Tenant, p pendingRefund) error {
	re, err := a.stripeRefund(ctx, t, p)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && (se.Type == stripe.ErrorTypeInvalidRequest || se.Type == stripe.ErrorTypeCard) {
			if ferr := a.failRefund(ctx, t, p.ID); ferr != nil {
				return fmt.Errorf("refund %d refused: %w", p.ID, ferr)
			}
			return &refundRefused{se: se}
		}
		return fmt.Errorf("%w: %w", errRefundUnconfirmed, err)
	}
	return a.recordRefund(ctx, t, p, re)
}

// recordRefund records Stripe's refund of a pending row.
func (a *App) recordRefund(ctx context.Context, t *directory.Tenant, p pendingRefund, re *stripe.Refund) error {
	rep := refunds.FromStripe(re)
	rep.PaymentIntent = p.Intent // the one asked to refund
	if rep.Metadata == nil {
		rep.Metadata = map[string]string{}
	}
	rep.Metadata[refunds.MetadataKey] = strconv.FormatInt(p.ID, 10)
	if err := a.tenantTx(ctx, t, func(tx pgx.Tx) error {
		_, err := refunds.Record(ctx, tx, rep)
		return err
	}); err != nil {
		return fmt.Errorf("record refund %d: %w", p.ID, err)
	}
	return nil
}

// failRefund fails a pending row Stripe made no refund for, freeing its
// amount.
func (a *App) failRefund(ctx context.Context, t *directory.Tenant, id int64) error {
	return a.tenantTx(ctx, t, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE refund SET status = 'failed' WHERE id = $1 AND stripe_refund_id IS NULL`, id)
		if err != nil {
			return fmt.Errorf("fail refund: %w", err)
		}
		return nil
	})
}

// stripeRefund asks the tenant's Stripe account for the refund, bounded by
// the payments timeout; the idempotency key makes a retry the same refund.
func (a *App) stripeRefund(ctx context.Context, t *directory.Tenant, p pendingRefund) (*stripe.Refund, error) {
	cents, err := payments.Cents(p.Amount)
	if err != nil {
		return nil, err
	}
	acct, err := a.payments.For(ctx, t)
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.payments.Bound(ctx)
	defer cancel()
	params := &stripe.RefundParams{PaymentIntent: stripe.String(p.Intent), Amount: stripe.Int64(cents)}
	params.Context = ctx
	params.AddMetadata(refunds.MetadataKey, strconv.FormatInt(p.ID, 10))
	params.SetIdempotencyKey(p.Key)
	return acct.API.Refunds.New(params)
}

// tenantTx runs fn in a transaction on the tenant's database.
func (a *App) tenantTx(ctx context.Context, t *directory.Tenant, fn func(pgx.Tx) error) error {
	return a.db.Do(ctx, t, func(c *pgxpool.Conn) error { return pgx.BeginFunc(ctx, c, fn) })
}
