package shop

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/server"
)

// O16 GET /order/checkout-session-success?session_id=<id> (§7.2). The
// order is made in one transaction from what the session charged (its
// snapshot, even when the cart is gone; see placeOrder), or found when the
// webhook made it first.
func (a *App) checkoutSessionSuccess(c *fiber.Ctx) error {
	const key = "checkout_session_success"
	fail := func(code, desc string) error {
		e := object{{"error", code}}
		if desc != "" {
			e = append(e, kv{"description", desc})
		}
		return reply(c, object{{key, "error"}, {"errors", e}})
	}
	id := c.Query("session_id")
	if id == "" {
		return fail("session-id-required", "")
	}
	t := server.Tenant(c)
	ctx := c.UserContext()
	acct, err := a.payments.For(ctx, t)
	if err != nil {
		a.log.Error("checkout success: stripe account", "tenant", t.Slug, "err", err)
		return fail("unexpected-error", "Payments are not available at the moment.")
	}
	s, err := acct.API.CheckoutSessions.Get(id, nil)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Type == stripe.ErrorTypeInvalidRequest {
			return fail("invalid-session", se.Msg)
		}
		a.log.Error("checkout success: retrieve session", "tenant", t.Slug, "err", err)
		return fail("unexpected-error", "The payment could not be confirmed. Please try again.")
	}
	if s.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid {
		return fail("payment-not-completed", "")
	}
	return a.with(c, func(rq *request) error {
		signKey, err := rq.signingKey()
		if err != nil {
			return err
		}
		ident, err := a.placeOrderRetrying(rq.ctx, rq.conn, rq, signKey, s)
		switch {
		case errors.Is(err, errCartGone), errors.Is(err, errNoCartID):
			return fail("cart-not-found", "")
		case errors.Is(err, errOtherTenant):
			return fail("invalid-session", "This checkout session belongs to another store.")
		case err != nil:
			a.log.Error("checkout success: place order", "tenant", t.Slug, "session", s.ID, "err", err)
			return fail("unexpected-error", "The order could not be recorded. Please contact us.")
		}
		return reply(c, object{{key, "success"}, {"order_identifier", ident}})
	})
}

// placeOrderRetrying is placeOrder that, having lost a race on the order's
// unique session id, reads the winner's order.
func (a *App) placeOrderRetrying(ctx context.Context, conn *pgxpool.Conn, rq *request, key []byte, s *stripe.CheckoutSession) (string, error) {
	ident, err := a.placeOrder(ctx, conn, rq.tenant, key, s)
	if errors.Is(err, errOrderExists) {
		return existingOrder(ctx, conn, s.ID, intentID(s))
	}
	return ident, err
}

// webhookReply answers Stripe (no order-api-version: §1.3).
func webhookReply(c *fiber.Ctx, status int, body fiber.Map) error {
	return c.Status(status).JSON(body)
}

const recordEventSQL = `
INSERT INTO stripe_webhook_event (event_id, type, processed_at, outcome) VALUES ($1, $2, now(), $3)
ON CONFLICT (event_id) DO UPDATE SET processed_at = now(), outcome = EXCLUDED.outcome`

// O17 POST /order/stripe-webhook (§7.3). The signature is checked on the raw
// body with the tenant's webhook secret before anything is read or written.
// checkout.session.completed (and async_payment_succeeded) make the order
// exactly once; events are recorded by id, so a redelivery is answered
// from the record. A paid session with a snapshot becomes its order even
// when its cart is gone. An event that can never apply (no cart id, cart
// gone from a session without a snapshot, unpaid) is answered 200 and
// logged (§12 Q27); a processing failure is 500 so Stripe retries.
func (a *App) stripeWebhook(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodPost {
		return webhookReply(c, http.StatusMethodNotAllowed, fiber.Map{"error": "method-not-allowed"})
	}
	t := server.Tenant(c)
	ctx := c.UserContext()
	secret, err := a.payments.WebhookSecret(ctx, t)
	if err != nil {
		a.log.Error("stripe webhook: no secret", "tenant", t.Slug, "err", err)
		return webhookReply(c, http.StatusInternalServerError, fiber.Map{"error": "webhook-not-configured"})
	}
	ev, err := payments.VerifyWebhook(c.Body(), c.Get("Stripe-Signature"), secret)
	switch {
	case errors.Is(err, payments.ErrBadSignature):
		a.log.Warn("stripe webhook: invalid signature", "tenant", t.Slug, "ip", server.ClientIP(c))
		return webhookReply(c, http.StatusBadRequest, fiber.Map{"error": "invalid-signature"})
	case err != nil:
		return webhookReply(c, http.StatusBadRequest, fiber.Map{"error": "invalid-payload"})
	}
	log := a.log.With("tenant", t.Slug, "event", ev.ID, "type", ev.Type)
	return a.with(c, func(rq *request) error {
		var prior *string
		_ = rq.conn.QueryRow(rq.ctx, `SELECT outcome FROM stripe_webhook_event WHERE event_id = $1 AND processed_at IS NOT NULL`, ev.ID).Scan(&prior)
		record := func(outcome string) error {
			_, err := rq.conn.Exec(rq.ctx, recordEventSQL, ev.ID, string(ev.Type), outcome)
			return err
		}
		if ev.Type != "checkout.session.completed" && ev.Type != "checkout.session.async_payment_succeeded" {
			if err := record("ignored: " + string(ev.Type)); err != nil {
				log.Error("stripe webhook: record event", "err", err)
			}
			return webhookReply(c, http.StatusOK, fiber.Map{"received": true})
		}
		var s stripe.CheckoutSession
		if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &s) != nil || s.ID == "" {
			return webhookReply(c, http.StatusBadRequest, fiber.Map{"error": "invalid-payload"})
		}
		if ident, err := existingOrder(rq.ctx, rq.conn, s.ID, intentID(&s)); err != nil {
			return err
		} else if ident != "" {
			if prior == nil {
				_ = record("processed: " + ident)
			}
			return webhookReply(c, http.StatusOK, fiber.Map{"received": true, "order_identifier": ident})
		}
		ignore := func(reason string) error {
			log.Warn("stripe webhook: event cannot apply", "reason", reason, "session", s.ID)
			if err := record("ignored: " + reason); err != nil {
				return err
			}
			return webhookReply(c, http.StatusOK, fiber.Map{"received": true, "ignored": reason})
		}
		if s.Metadata["cart_id"] == "" {
			return ignore("no-cart-id")
		}
		if otherTenant(&s, t) {
			// Tenants sharing a Stripe account each receive every event.
			return ignore("other-tenant")
		}
		if s.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid {
			return ignore("payment-not-completed")
		}
		// The event carries a snapshot; the order is made from the session
		// as Stripe has it now.
		acct, err := a.payments.For(rq.ctx, t)
		if err != nil {
			log.Error("stripe webhook: stripe account", "err", err)
			return webhookReply(c, http.StatusInternalServerError, fiber.Map{"error": "processing-error"})
		}
		full, err := acct.API.CheckoutSessions.Get(s.ID, nil)
		if err != nil {
			log.Error("stripe webhook: retrieve session", "err", err)
			return webhookReply(c, http.StatusInternalServerError, fiber.Map{"error": "processing-error"})
		}
		if full.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid {
			return ignore("payment-not-completed")
		}
		key, err := rq.signingKey()
		if err != nil {
			return err
		}
		ident, err := a.placeOrderRetrying(rq.ctx, rq.conn, rq, key, full)
		switch {
		case errors.Is(err, errCartGone):
			return ignore("cart-not-found")
		case errors.Is(err, errNoCartID):
			return ignore("no-cart-id")
		case errors.Is(err, errOtherTenant):
			return ignore("other-tenant")
		case err != nil:
			log.Error("stripe webhook: place order", "session", s.ID, "err", err)
			return webhookReply(c, http.StatusInternalServerError, fiber.Map{"error": "processing-error"})
		}
		if err := record("processed: " + ident); err != nil {
			log.Error("stripe webhook: record event", "err", err)
		}
		return webhookReply(c, http.StatusOK, fiber.Map{"received": true, "order_identifier": ident})
	})
}
