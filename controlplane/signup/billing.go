package signup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/payments"
)

// Billing is the platform's own Stripe account, which bills founders for
// their shops' paid plans (not the shops' own Stripe accounts, which take
// their customers' payments).
type Billing struct {
	// SecretKey is the platform account's secret key; empty: paid plans
	// cannot be bought (free plans still can).
	SecretKey string
	// WebhookSecret verifies deliveries to POST /billing/webhook.
	WebhookSecret string
	// APIBase overrides Stripe's API URL (stripe-mock locally).
	APIBase string
	// Timeout bounds one Stripe call, its retries included (default 8 s).
	Timeout time.Duration
	// Currency of the plans' prices (default usd).
	Currency string
	// Prices, when set, gives a plan's Stripe price id; other paid plans
	// get a price looked up or created in Stripe by its lookup key.
	Prices map[string]string
}

// billing calls the platform's Stripe account. Every call is made with no
// transaction open, bounded by Timeout.
type billing struct {
	o   Billing
	api *client.API
}

func newBilling(o Billing) *billing {
	if o.SecretKey == "" {
		return nil
	}
	if o.Timeout <= 0 {
		o.Timeout = payments.DefaultTimeout
	}
	if o.Currency == "" {
		o.Currency = "usd"
	}
	cfg := func(kind stripe.SupportedBackend) stripe.Backend {
		c := &stripe.BackendConfig{
			HTTPClient:        &http.Client{Timeout: o.Timeout},
			MaxNetworkRetries: stripe.Int64(2),
			LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		}
		if o.APIBase != "" {
			c.URL = stripe.String(o.APIBase)
		}
		return stripe.GetBackendWithConfig(kind, c)
	}
	api := &client.API{}
	api.Init(o.SecretKey, &stripe.Backends{API: cfg(stripe.APIBackend), Connect: cfg(stripe.ConnectBackend), Uploads: cfg(stripe.UploadsBackend)})
	return &billing{o: o, api: api}
}

func (b *billing) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.o.Timeout)
}

// customer is the founder's Stripe customer, created once: concurrent
// first calls send the same idempotency key, so Stripe makes one, and the
// first row written wins.
func (b *billing) customer(ctx context.Context, db querier, f *founder) (string, error) {
	var id string
	err := db.QueryRow(ctx, `SELECT stripe_customer_id FROM billing_customers WHERE founder_id = $1`, f.ID).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("billing customer: %w", err)
	}
	cctx, cancel := b.bound(ctx)
	defer cancel()
	p := &stripe.CustomerParams{Email: stripe.String(f.Email)}
	p.Context = cctx
	p.SetIdempotencyKey("swa-founder-customer-" + strconv.FormatInt(f.ID, 10))
	p.AddMetadata("founder_id", strconv.FormatInt(f.ID, 10))
	c, err := b.api.Customers.New(p)
	if err != nil {
		return "", fmt.Errorf("billing customer: stripe: %w", err)
	}
	err = db.QueryRow(ctx, `INSERT INTO billing_customers (founder_id, stripe_customer_id) VALUES ($1, $2)
ON CONFLICT (founder_id) DO UPDATE SET founder_id = EXCLUDED.founder_id RETURNING stripe_customer_id`, f.ID, c.ID).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("billing customer: %w", err)
	}
	return id, nil
}

// lookupKey names a plan's price at an amount in Stripe.
func lookupKey(plan string, cents int64) string {
	return "swa-plan-" + plan + "-" + strconv.FormatInt(cents, 10)
}

// price is the Stripe price of a paid plan: configured, remembered, found
// by its lookup key, or created.
func (b *billing) price(ctx context.Context, db querier, p planChoice) (string, error) {
	if id := b.o.Prices[p.Name]; id != "" {
		return id, nil
	}
	var id string
	err := db.QueryRow(ctx, `SELECT stripe_price_id FROM billing_prices WHERE plan = $1 AND monthly_price_cents = $2`, p.Name, p.PriceCents).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("plan price: %w", err)
	}
	key := lookupKey(p.Name, p.PriceCents)
	cctx, cancel := b.bound(ctx)
	defer cancel()
	lp := &stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{key})}
	lp.Context = cctx
	it := b.api.Prices.List(lp)
	for it.Next() {
		if pr := it.Price(); pr.LookupKey == key && pr.UnitAmount == p.PriceCents && pr.Active {
			id = pr.ID
			break
		}
	}
	if err := it.Err(); err != nil {
		return "", fmt.Errorf("plan price: stripe: %w", err)
	}
	if id == "" {
		np := &stripe.PriceParams{
			Currency:          stripe.String(b.o.Currency),
			UnitAmount:        stripe.Int64(p.PriceCents),
			LookupKey:         stripe.String(key),
			TransferLookupKey: stripe.Bool(true),
			Recurring:         &stripe.PriceRecurringParams{Interval: stripe.String(string(stripe.PriceRecurringIntervalMonth))},
			ProductData:       &stripe.PriceProductDataParams{Name: stripe.String("StartupWebApp " + p.DisplayName)},
		}
		np.Context = cctx
		np.SetIdempotencyKey("swa-" + key)
		np.AddMetadata("plan", p.Name)
		pr, err := b.api.Prices.New(np)
		if err != nil {
			return "", fmt.Errorf("plan price: stripe: %w", err)
		}
		id = pr.ID
	}
	err = db.QueryRow(ctx, `INSERT INTO billing_prices (plan, monthly_price_cents, stripe_price_id) VALUES ($1, $2, $3)
ON CONFLICT (plan, monthly_price_cents) DO UPDATE SET plan = EXCLUDED.plan RETURNING stripe_price_id`, p.Name, p.PriceCents, id).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("plan price: %w", err)
	}
	return id, nil
}

type checkoutRequest struct {
	Customer, Price, Plan string
	Founder, Tenant       int64
	Success, Cancel       string
}

// checkout creates a Checkout Session in subscription mode for one shop;
// the subscription carries the tenant, founder and plan in its metadata,
// which the webhook reads.
func (b *billing) checkout(ctx context.Context, r checkoutRequest) (string, error) {
	cctx, cancel := b.bound(ctx)
	defer cancel()
	meta := map[string]string{"tenant_id": strconv.FormatInt(r.Tenant, 10), "founder_id": strconv.FormatInt(r.Founder, 10), "plan": r.Plan}
	p := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:          stripe.String(r.Customer),
		LineItems:         []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(r.Price), Quantity: stripe.Int64(1)}},
		SuccessURL:        stripe.String(r.Success),
		CancelURL:         stripe.String(r.Cancel),
		ClientReferenceID: stripe.String(strconv.FormatInt(r.Tenant, 10)),
		SubscriptionData:  &stripe.CheckoutSessionSubscriptionDataParams{Metadata: meta},
		Metadata:          meta,
	}
	p.Context = cctx
	s, err := b.api.CheckoutSessions.New(p)
	if err != nil {
		return "", fmt.Errorf("billing checkout: stripe: %w", err)
	}
	if s.URL == "" {
		return "", errors.New("billing checkout: stripe returned a session without a URL")
	}
	return s.URL, nil
}

// changePrice moves a live subscription to another plan's price.
func (b *billing) changePrice(ctx context.Context, subID, price, plan string) error {
	cctx, cancel := b.bound(ctx)
	defer cancel()
	gp := &stripe.SubscriptionParams{}
	gp.Context = cctx
	sub, err := b.api.Subscriptions.Get(subID, gp)
	if err != nil {
		return fmt.Errorf("billing plan change: stripe: %w", err)
	}
	if sub.Items == nil || len(sub.Items.Data) == 0 {
		return fmt.Errorf("billing plan change: subscription %s has no item", subID)
	}
	up := &stripe.SubscriptionParams{
		Items:             []*stripe.SubscriptionItemsParams{{ID: stripe.String(sub.Items.Data[0].ID), Price: stripe.String(price)}},
		ProrationBehavior: stripe.String("create_prorations"),
	}
	up.Context = cctx
	up.AddMetadata("plan", plan)
	if _, err := b.api.Subscriptions.Update(subID, up); err != nil {
		return fmt.Errorf("billing plan change: stripe: %w", err)
	}
	return nil
}

// cancel ends a subscription now.
func (b *billing) cancel(ctx context.Context, subID string) error {
	cctx, cancel := b.bound(ctx)
	defer cancel()
	p := &stripe.SubscriptionCancelParams{}
	p.Context = cctx
	if _, err := b.api.Subscriptions.Cancel(subID, p); err != nil {
		return fmt.Errorf("billing cancel: stripe: %w", err)
	}
	return nil
}

// postBillingWebhook takes the platform account's events. The signature is
// checked on the raw body; each event is recorded by id in the transaction
// that applies it, so a redelivery, or two deliveries at once, apply it
// once. It makes no network call.
func (s *Site) postBillingWebhook(c *fiber.Ctx) error {
	if s.opts.Billing.WebhookSecret == "" {
		return c.Status(404).JSON(fiber.Map{"error": "billing webhooks are not configured"})
	}
	ev, err := payments.VerifyWebhook(c.Body(), c.Get("Stripe-Signature"), s.opts.Billing.WebhookSecret)
	if errors.Is(err, payments.ErrBadSignature) {
		return c.Status(400).JSON(fiber.Map{"error": "invalid signature"})
	}
	if err != nil || ev.ID == "" {
		return c.Status(400).JSON(fiber.Map{"error": "invalid event"})
	}
	outcome, err := s.applyBillingEvent(c.UserContext(), ev)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"received": true, "outcome": outcome})
}

// Outcomes of a billing event, as recorded.
const (
	outcomeApplied   = "applied"   // the subscription recorded; the plan changed if it had to
	outcomeDuplicate = "duplicate" // seen before (not recorded again)
	outcomeIgnored   = "ignored"   // a type the platform does not act on
	outcomeStale     = "stale"     // older than the newest event applied to the subscription
	outcomeUnknown   = "unknown"   // names no tenant of a founder, or no plan
)

func (s *Site) applyBillingEvent(ctx context.Context, ev stripe.Event) (string, error) {
	var sub stripe.Subscription
	deleted := false
	switch ev.Type {
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted":
		if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &sub) != nil || sub.ID == "" {
			return s.recordEvent(ctx, ev, outcomeUnknown)
		}
		deleted = ev.Type == "customer.subscription.deleted"
	default:
		return s.recordEvent(ctx, ev, outcomeIgnored)
	}
	tenantID, _ := strconv.ParseInt(sub.Metadata["tenant_id"], 10, 64)
	founderID, _ := strconv.ParseInt(sub.Metadata["founder_id"], 10, 64)
	priceID := ""
	if sub.Items != nil && len(sub.Items.Data) > 0 && sub.Items.Data[0].Price != nil {
		priceID = sub.Items.Data[0].Price.ID
	}
	at := time.Unix(ev.Created, 0)
	outcome := outcomeApplied
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO billing_events (id, type, outcome) VALUES ($1, $2, '') ON CONFLICT (id) DO NOTHING`, ev.ID, string(ev.Type))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			outcome = outcomeDuplicate
			return nil
		}
		var (
			current string
			owned   bool
		)
		err = tx.QueryRow(ctx, `SELECT t.plan, EXISTS (SELECT 1 FROM founder_tenants ft WHERE ft.tenant_id = t.id AND ft.founder_id = $2)
FROM tenants t WHERE t.id = $1 FOR UPDATE OF t`, tenantID, founderID).Scan(&current, &owned)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !owned) {
			outcome = outcomeUnknown
			return s.setOutcome(ctx, tx, ev.ID, 0, outcome)
		}
		if err != nil {
			return err
		}
		plan := sub.Metadata["plan"]
		if priceID != "" {
			var byPrice string
			err := tx.QueryRow(ctx, `SELECT plan FROM billing_prices WHERE stripe_price_id = $1 ORDER BY created_at DESC LIMIT 1`, priceID).Scan(&byPrice)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if byPrice != "" {
				plan = byPrice
			}
		}
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM plans WHERE name = $1)`, plan).Scan(&known); err != nil {
			return err
		}
		if !known {
			outcome = outcomeUnknown
			return s.setOutcome(ctx, tx, ev.ID, tenantID, outcome)
		}
		var (
			recordedSub string
			recordedAt  time.Time
		)
		err = tx.QueryRow(ctx, `SELECT stripe_subscription_id, event_at FROM billing_subscriptions WHERE tenant_id = $1 FOR UPDATE`, tenantID).
			Scan(&recordedSub, &recordedAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// An older event than the newest applied, or the end of a
		// subscription the shop has since replaced, changes nothing.
		if err == nil && (at.Before(recordedAt) || (deleted && recordedSub != sub.ID)) {
			outcome = outcomeStale
			return s.setOutcome(ctx, tx, ev.ID, tenantID, outcome)
		}
		status := string(sub.Status)
		if deleted {
			status = "canceled"
		}
		if _, err := tx.Exec(ctx, `INSERT INTO billing_subscriptions (tenant_id, founder_id, stripe_subscription_id, plan, status, event_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id) DO UPDATE SET founder_id = EXCLUDED.founder_id, stripe_subscription_id = EXCLUDED.stripe_subscription_id,
  plan = EXCLUDED.plan, status = EXCLUDED.status, event_at = EXCLUDED.event_at, updated_at = now()`,
			tenantID, founderID, sub.ID, plan, status, at); err != nil {
			return err
		}
		target := ""
		switch status {
		case "active", "trialing":
			target = plan
		case "canceled", "unpaid", "incomplete_expired":
			target = planForSignUps
		}
		if target != "" && target != current {
			if _, err := tx.Exec(ctx, `UPDATE tenants SET plan = $2, updated_at = now() WHERE id = $1`, tenantID, target); err != nil {
				return err
			}
			if err := registry.Audit(ctx, tx, "billing", "tenant.plan", tenantID, map[string]string{"plan": current},
				map[string]string{"plan": target, "stripe_event": ev.ID, "stripe_subscription": sub.ID, "founder": founderActor(founderID)}); err != nil {
				return err
			}
		}
		return s.setOutcome(ctx, tx, ev.ID, tenantID, outcome)
	})
	if err != nil {
		return "", fmt.Errorf("billing event %s: %w", ev.ID, err)
	}
	return outcome, nil
}

func (s *Site) setOutcome(ctx context.Context, tx pgx.Tx, id string, tenantID int64, outcome string) error {
	var tid *int64
	if tenantID != 0 {
		tid = &tenantID
	}
	_, err := tx.Exec(ctx, `UPDATE billing_events SET outcome = $2, tenant_id = $3 WHERE id = $1`, id, outcome, tid)
	return err
}

// recordEvent records an event the platform does not apply, once.
func (s *Site) recordEvent(ctx context.Context, ev stripe.Event, outcome string) (string, error) {
	tag, err := s.db.Exec(ctx, `INSERT INTO billing_events (id, type, outcome) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		ev.ID, string(ev.Type), outcome)
	if err != nil {
		return "", fmt.Errorf("billing event %s: %w", ev.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return outcomeDuplicate, nil
	}
	return outcome, nil
}
