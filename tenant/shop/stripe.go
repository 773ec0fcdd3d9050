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
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/server"
)

// retrieveSession fetches a Checkout Session from the tenant's Stripe
// account with the request's context, bounded by the payments timeout. It
// is called with no tenant connection held.
func (a *App) retrieveSession(ctx context.Context, t *directory.Tenant, id string) (*stripe.CheckoutSession, error) {
	acct, err := a.payments.For(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("stripe account: %w", err)
	}
	ctx, cancel := a.payments.Bound(ctx)
	defer cancel()
	return acct.API.CheckoutSessions.Get(id, &stripe.CheckoutSessionParams{Params: stripe.Params{Context: ctx}})
}

// O16 GET /order/checkout-session-success?session_id=<id> (§7.2). The
// session is fetched from Stripe before any connection is taken; the order
// is then made in one transaction from what the session charged (its
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
	s, err := a.retrieveSession(ctx, t, id)
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
	signKey, err := a.key(ctx, t)
	if err != nil {
		return fmt.Errorf("checkout success: signing key: %w", err)
	}
	var ident string
	ran, err := conn(c, func(conn *pgxpool.Conn) error {
		var err error
		ident, err = a.placeOrderRetrying(ctx, conn, t, signKey, s)
		return err
	})
	switch {
	case !ran:
		return err
	case errors.Is(err, errCartGone), errors.Is(err, errNoCartID):
		return fail("cart-not-found", "")
	case errors.Is(err, errOtherTenant):
		return fail("invalid-session", "This checkout session belongs to another store.")
	case err != nil:
		a.log.Error("checkout success: place order", "tenant", t.Slug, "session", s.ID, "err", err)
		return fail("unexpected-error", "The order could not be recorded. Please contact us.")
	}
	return reply(c, object{{key, "success"}, {"order_identifier", ident}})
}

// placeOrderRetrying is placeOrder that, having lost a race on the order's
// unique session id, reads the winner's order.
func (a *App) placeOrderRetrying(ctx context.Context, conn *pgxpool.Conn, t *directory.Tenant, key []byte, s *stripe.CheckoutSession) (string, error) {
	ident, err := a.placeOrder(ctx, conn, t, key, s)
	if errors.Is(err, errOrderExists) {
		return existingOrder(ctx, conn, s.ID, intentID(s))
	}
	return ident, err
}

// webhookReply answers Stripe (no order-api-version: §1.3).
func webhookReply(c *fiber.Ctx, status int, body fiber.Map) error {
	return c.Status(status).JSON(body)
}

const eventOutcomeSQL = `SELECT outcome FROM stripe_webhook_event WHERE event_id = $1 AND processed_at IS NOT NULL`

const recordEventSQL = `
INSERT INTO stripe_webhook_event (event_id, type, processed_at, outcome) VALUES ($1, $2, now(), $3)
ON CONFLICT (event_id) DO UPDATE SET processed_at = now(), outcome = EXCLUDED.outcome`

// eventProcessed reports whether a webhook event was already answered
// with an outcome.
func eventProcessed(ctx context.Context, db *pgxpool.Conn, id string) (bool, error) {
	var outcome *string
	err := db.QueryRow(ctx, eventOutcomeSQL, id).Scan(&outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("webhook event: %w", err)
	}
	return true, nil
}

// recordEvent records a webhook event's outcome by its id.
func recordEvent(ctx context.Context, conn *pgxpool.Conn, ev stripe.Event, outcome string) error {
	if _, err := conn.Exec(ctx, recordEventSQL, ev.ID, string(ev.Type), outcome); err != nil {
		return fmt.Errorf("record webhook event: %w", err)
	}
	return nil
}

// completesOrder reports whether an event type pays for a Checkout Session.
func completesOrder(t stripe.EventType) bool {
	return t == "checkout.session.completed" || t == "checkout.session.async_payment_succeeded"
}

// cannotApply is why a paid-session event can never make an order here,
// "" when it may: a session without a cart id, another tenant's session
// (tenants sharing a Stripe account each receive every event), or an
// unpaid one.
func cannotApply(s *stripe.CheckoutSession, t *directory.Tenant) string {
	switch {
	case s.Metadata["cart_id"] == "":
		return "no-cart-id"
	case otherTenant(s, t):
		return "other-tenant"
	case s.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid:
		return "payment-not-completed"
	}
	return ""
}

// O17 POST /order/stripe-webhook (§7.3). The signature is checked on the raw
// body with the tenant's webhook secret before anything is read or written.
// checkout.session.completed (and async_payment_succeeded) make the order
// exactly once (placeOrder); events are recorded by id, so a redelivery is
// answered from the record. A paid session with a snapshot becomes its
// order even when its cart is gone. An event that can never apply (no cart
// id, cart gone from a session without a snapshot, unpaid) is answered 200
// and logged (§12 Q27); a processing failure is 500 so Stripe retries.
//
// A tenant connection is held only for database work: a short look for an
// order already made, then, with no connection held, the session is
// fetched from Stripe, then the order's transaction.
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
	if ev.Type == "charge.refunded" {
		return a.chargeRefunded(c, t, ev, log)
	}
	if !completesOrder(ev.Type) {
		ran, err := conn(c, func(conn *pgxpool.Conn) error { return recordEvent(ctx, conn, ev, "ignored: "+string(ev.Type)) })
		if !ran {
			return err
		}
		if err != nil {
			log.Error("stripe webhook: record event", "err", err)
		}
		return webhookReply(c, http.StatusOK, fiber.Map{"received": true})
	}
	var s stripe.CheckoutSession
	if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &s) != nil || s.ID == "" {
		return webhookReply(c, http.StatusBadRequest, fiber.Map{"error": "invalid-payload"})
	}
	w := webhook{a: a, c: c, ctx: ctx, t: t, ev: ev, log: log}
	return w.handle(&s)
}

// webhook is one checkout.session event being answered.
type webhook struct {
	a   *App
	c   *fiber.Ctx
	ctx context.Context
	t   *directory.Tenant
	ev  stripe.Event
	log *slog.Logger
}

func (w webhook) handle(s *stripe.CheckoutSession) error {
	// An order already made (by the redirect or an earlier delivery).
	var ident string
	ran, err := conn(w.c, func(conn *pgxpool.Conn) error {
		var err error
		if ident, err = existingOrder(w.ctx, conn, s.ID, intentID(s)); err != nil || ident == "" {
			return err
		}
		// A redelivery keeps its first outcome.
		if prior, err := eventProcessed(w.ctx, conn, w.ev.ID); err == nil && !prior {
			if err := recordEvent(w.ctx, conn, w.ev, "processed: "+ident); err != nil {
				w.log.Error("stripe webhook: record event", "err", err)
			}
		}
		return nil
	})
	switch {
	case !ran:
		return err
	case err != nil:
		return err
	case ident != "":
		return w.processed(ident)
	}
	if reason := cannotApply(s, w.t); reason != "" {
		return w.ignore(reason, s.ID)
	}
	// The event carries a snapshot; the order is made from the session as
	// Stripe has it now, fetched with no connection held.
	full, err := w.a.retrieveSession(w.ctx, w.t, s.ID)
	if err != nil {
		w.log.Error("stripe webhook: retrieve session", "err", err)
		return webhookReply(w.c, http.StatusInternalServerError, fiber.Map{"error": "processing-error"})
	}
	if full.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid {
		return w.ignore("payment-not-completed", s.ID)
	}
	key, err := w.a.key(w.ctx, w.t)
	if err != nil {
		return fmt.Errorf("stripe webhook: signing key: %w", err)
	}
	ran, err = conn(w.c, func(conn *pgxpool.Conn) error {
		var err error
		if ident, err = w.a.placeOrderRetrying(w.ctx, conn, w.t, key, full); err != nil {
			return err
		}
		if err := recordEvent(w.ctx, conn, w.ev, "processed: "+ident); err != nil {
			w.log.Error("stripe webhook: record event", "err", err)
		}
		return nil
	})
	switch {
	case !ran:
		return err
	case errors.Is(err, errCartGone):
		return w.ignore("cart-not-found", s.ID)
	case errors.Is(err, errNoCartID):
		return w.ignore("no-cart-id", s.ID)
	case errors.Is(err, errOtherTenant):
		return w.ignore("other-tenant", s.ID)
	case err != nil:
		w.log.Error("stripe webhook: place order", "session", s.ID, "err", err)
		return webhookReply(w.c, http.StatusInternalServerError, fiber.Map{"error": "processing-error"})
	}
	return w.processed(ident)
}

func (w webhook) processed(ident string) error {
	return webhookReply(w.c, http.StatusOK, fiber.Map{"received": true, "order_identifier": ident})
}

// ignore records and answers an event that can never apply.
func (w webhook) ignore(reason, session string) error {
	w.log.Warn("stripe webhook: event cannot apply", "reason", reason, "session", session)
	ran, err := conn(w.c, func(conn *pgxpool.Conn) error { return recordEvent(w.ctx, conn, w.ev, "ignored: "+reason) })
	if !ran || err != nil {
		return err
	}
	return webhookReply(w.c, http.StatusOK, fiber.Map{"received": true, "ignored": reason})
}
