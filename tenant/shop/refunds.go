package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/tenant/refunds"
)

// chargeRefunded answers charge.refunded: each of the charge's refunds is
// recorded once (refunds.Record), whether the back office's own call to
// Stripe has answered yet or not. The refunds come with the event when it
// carries them; else they are listed from Stripe, with no connection held.
// A charge of no order here (another tenant sharing the Stripe account) is
// answered 200 and recorded as ignored.
func (a *App) chargeRefunded(c *fiber.Ctx, t *directory.Tenant, ev stripe.Event, log *slog.Logger) error {
	ctx := c.UserContext()
	var ch stripe.Charge
	if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &ch) != nil || ch.ID == "" {
		return webhookReply(c, http.StatusBadRequest, fiber.Map{"error": "invalid-payload"})
	}
	var list []*stripe.Refund
	if ch.Refunds != nil && !ch.Refunds.HasMore && len(ch.Refunds.Data) > 0 {
		list = ch.Refunds.Data
	} else {
		var err error
		if list, err = a.listRefunds(ctx, t, ch.ID); err != nil {
			log.Error("stripe webhook: list refunds", "charge", ch.ID, "err", err)
			return webhookReply(c, http.StatusInternalServerError, fiber.Map{"error": "processing-error"})
		}
	}
	pi := ""
	if ch.PaymentIntent != nil {
		pi = ch.PaymentIntent.ID
	}
	ran, err := conn(c, func(conn *pgxpool.Conn) error {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, r := range list {
				rep := refunds.FromStripe(r)
				if rep.PaymentIntent == "" {
					rep.PaymentIntent = pi
				}
				if _, err := refunds.Record(ctx, tx, rep); err != nil {
					return err
				}
			}
			return nil
		})
		outcome := fmt.Sprintf("processed: %d refunds", len(list))
		if errors.Is(err, refunds.ErrUnknownPayment) {
			outcome = "ignored: unknown-payment"
		} else if err != nil {
			return err
		}
		if err := recordEvent(ctx, conn, ev, outcome); err != nil {
			log.Error("stripe webhook: record event", "err", err)
		}
		return nil
	})
	switch {
	case !ran:
		return err
	case err != nil:
		log.Error("stripe webhook: record refunds", "charge", ch.ID, "err", err)
		return webhookReply(c, http.StatusInternalServerError, fiber.Map{"error": "processing-error"})
	}
	return webhookReply(c, http.StatusOK, fiber.Map{"received": true})
}

// listRefunds lists a charge's refunds from the tenant's Stripe account,
// bounded by the payments timeout.
func (a *App) listRefunds(ctx context.Context, t *directory.Tenant, charge string) ([]*stripe.Refund, error) {
	acct, err := a.payments.For(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("stripe account: %w", err)
	}
	ctx, cancel := a.payments.Bound(ctx)
	defer cancel()
	p := &stripe.RefundListParams{Charge: stripe.String(charge)}
	p.Context = ctx
	var out []*stripe.Refund
	it := acct.API.Refunds.List(p)
	for it.Next() {
		out = append(out, it.Refund())
	}
	return out, it.Err()
}
