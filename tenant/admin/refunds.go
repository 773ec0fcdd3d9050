package admin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/refunds"
)

// Refunds, full or partial, through the tenant's own Stripe account. The
// refund row is written (pending, under the order's lock, within what is
// left of the charge) before Stripe is asked, with no connection held
// during the call; Stripe's answer and its charge.refunded webhook then
// race to record the refund, and refunds.Record keeps one record.

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
	// 2. Stripe, with no connection held.
	re, err := a.stripeRefund(r, intent, amount, rowID, key)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && (se.Type == stripe.ErrorTypeInvalidRequest || se.Type == stripe.ErrorTypeCard) {
			// Stripe refused it: the row frees its amount.
			if ferr := a.tx(r, func(tx pgx.Tx) error {
				_, err := tx.Exec(r.ctx, `UPDATE refund SET status = 'failed' WHERE id = $1 AND stripe_refund_id IS NULL`, rowID)
				return err
			}); ferr != nil {
				return nil, ferr
			}
			return nil, &apiError{Status: fiber.StatusBadGateway, Code: "refund-refused", Detail: "Stripe refused the refund: " + se.Msg, Field: "amount"}
		}
		a.log.Error("refund: stripe", "tenant", r.tenant.Slug, "refund", rowID, "err", err)
		return nil, &apiError{Status: fiber.StatusBadGateway, Code: "refund-unconfirmed",
			Detail: "Stripe did not confirm the refund; it stays pending until Stripe reports it, or send the request again with the same Idempotency-Key"}
	}
	// 3. The record (the webhook may have made it already).
	rep := refunds.FromStripe(re)
	rep.PaymentIntent = intent // the one asked to refund
	if rep.Metadata == nil {
		rep.Metadata = map[string]string{}
	}
	rep.Metadata[refunds.MetadataKey] = strconv.FormatInt(rowID, 10)
	if err := a.tx(r, func(tx pgx.Tx) error {
		_, err := refunds.Record(r.ctx, tx, rep)
		return err
	}); err != nil {
		return nil, fmt.Errorf("record refund: %w", err)
	}
	return a.orderDetail(r, ident)
}

// stripeRefund asks the tenant's Stripe account for the refund, bounded by
// the payments timeout; the idempotency key makes a retry the same refund.
func (a *App) stripeRefund(r *req, intent string, amount decimal.Decimal, rowID int64, key string) (*stripe.Refund, error) {
	cents, err := payments.Cents(amount)
	if err != nil {
		return nil, err
	}
	acct, err := a.payments.For(r.ctx, r.tenant)
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.payments.Bound(r.ctx)
	defer cancel()
	p := &stripe.RefundParams{PaymentIntent: stripe.String(intent), Amount: stripe.Int64(cents)}
	p.Context = ctx
	p.AddMetadata(refunds.MetadataKey, strconv.FormatInt(rowID, 10))
	p.SetIdempotencyKey(key)
	return acct.API.Refunds.New(p)
}
