package shop

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/tenant/cart"
)

// lineItem is one Stripe line item before it becomes a parameter.
type lineItem struct {
	name, description, image string
	cents, quantity          int64
}

// stripeLineItems turns the cart into Stripe line items (§7.1), with its
// discounts folded in so Stripe charges exactly the cart total: the item
// discount is spread over the product lines in proportion to their
// subtotals (largest remainder, to the cent), and a line whose discounted
// subtotal does not divide by its quantity is split in two items of the
// same product (q-r units at u, r units at u+1 cent). The shipping line is
// sent when the shipping charge after discount is above zero.
func stripeLineItems(cc cart.Contents, frontend string) ([]lineItem, error) {
	lines := cc.ProductLines()
	subtotals := make([]int64, len(lines))
	var sum int64
	for i, l := range lines {
		c, err := payments.Cents(l.Subtotal())
		if err != nil {
			return nil, err
		}
		subtotals[i] = c
		sum += c
	}
	discount, err := payments.Cents(cc.Totals.ItemDiscount.Value)
	if err != nil {
		return nil, err
	}
	if discount > sum {
		discount = sum
	}
	shares := allocate(discount, subtotals)
	var out []lineItem
	for i, l := range lines {
		if l.Quantity <= 0 {
			continue
		}
		base := lineItem{
			name:        l.ProductTitle,
			description: orNone(l.Color) + " - " + orNone(l.Size),
			image:       absoluteURL(frontend, l.ImageURL),
		}
		q := int64(l.Quantity)
		total := subtotals[i] - shares[i]
		unit, rem := total/q, total%q
		if q-rem > 0 {
			it := base
			it.cents, it.quantity = unit, q-rem
			out = append(out, it)
		}
		if rem > 0 {
			it := base
			it.cents, it.quantity = unit+1, rem
			out = append(out, it)
		}
	}
	ship := cc.Totals.ShippingSubtotal.Value.Sub(cc.Totals.ShippingDiscount.Value)
	if ship.IsPositive() {
		c, err := payments.Cents(ship)
		if err != nil {
			return nil, err
		}
		out = append(out, lineItem{name: "Shipping", description: "Standard Shipping", cents: c, quantity: 1})
	}
	return out, nil
}

// allocate splits amount over weights proportionally, exactly (largest
// remainder), never more than a weight.
func allocate(amount int64, weights []int64) []int64 {
	out := make([]int64, len(weights))
	var total int64
	for _, w := range weights {
		total += w
	}
	if amount <= 0 || total <= 0 {
		return out
	}
	type rest struct {
		i int
		r int64
	}
	var given int64
	rests := make([]rest, len(weights))
	for i, w := range weights {
		out[i] = amount * w / total
		rests[i] = rest{i, amount * w % total}
		given += out[i]
	}
	for left := amount - given; left > 0; {
		best := -1
		for j, r := range rests {
			if out[r.i] < weights[r.i] && (best < 0 || r.r > rests[best].r) {
				best = j
			}
		}
		if best < 0 {
			break
		}
		out[rests[best].i]++
		rests[best].r = -1
		left--
	}
	return out
}

func orNone(s *string) string {
	if s == nil {
		return "None"
	}
	return *s
}

func absoluteURL(frontend, u string) string {
	if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		return u
	}
	return frontend + u
}

// sessionParams builds the Checkout Session parameters of §7.1 and an
// idempotency key that changes whenever anything sent changes (a retried
// click reuses the session; an edited cart gets a new one). The session
// names its tenant (metadata swa_tenant), since tenants may share a Stripe
// account and cart ids repeat across tenant databases.
func sessionParams(cc cart.Contents, tenantID int64, frontend, email string) (*stripe.CheckoutSessionParams, error) {
	items, err := stripeLineItems(cc, frontend)
	if err != nil {
		return nil, err
	}
	p := &stripe.CheckoutSessionParams{
		Mode:                     stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL:               stripe.String(frontend + "/checkout/success?session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:                stripe.String(frontend + "/checkout/confirm"),
		AllowPromotionCodes:      stripe.Bool(true),
		BillingAddressCollection: stripe.String("required"),
		ShippingAddressCollection: &stripe.CheckoutSessionShippingAddressCollectionParams{
			AllowedCountries: stripe.StringSlice([]string{"US", "CA"}),
		},
		PhoneNumberCollection: &stripe.CheckoutSessionPhoneNumberCollectionParams{Enabled: stripe.Bool(true)},
	}
	version := sha256.New()
	fmt.Fprintf(version, "tenant=%d|cart=%d|email=%s|front=%s", tenantID, cc.Cart.ID, email, frontend)
	for _, it := range items {
		li := &stripe.CheckoutSessionLineItemParams{
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency: stripe.String("usd"),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
					Name:        stripe.String(it.name),
					Description: stripe.String(it.description),
				},
				UnitAmount: stripe.Int64(it.cents),
			},
			Quantity: stripe.Int64(it.quantity),
		}
		if it.image != "" {
			li.PriceData.ProductData.Images = stripe.StringSlice([]string{it.image})
		}
		p.LineItems = append(p.LineItems, li)
		fmt.Fprintf(version, "|%s|%s|%s|%d|%d", it.name, it.description, it.image, it.cents, it.quantity)
	}
	p.AddMetadata("cart_id", strconv.FormatInt(cc.Cart.ID, 10))
	p.AddMetadata(tenantMetadata, strconv.FormatInt(tenantID, 10))
	if email != "" {
		p.CustomerEmail = stripe.String(email)
	}
	p.SetIdempotencyKey("swa-checkout-" + hex.EncodeToString(version.Sum(nil)))
	return p, nil
}

const accountEmailSQL = `SELECT email FROM account WHERE id = $1`

// O15 POST /order/create-checkout-session. The cart is read in a
// repeatable-read transaction that stays open across the Stripe call, and
// what the session charges is recorded in it (saveSnapshot), so the record
// is the very cart that was sent. Nothing else is written.
func (a *App) createCheckoutSession(c *fiber.Ctx) error {
	const key = "create_checkout_session"
	fail := func(code, desc string) error {
		e := object{{"error", code}}
		if desc != "" {
			e = append(e, kv{"description", desc})
		}
		return reply(c, object{{key, "error"}, {"errors", e}})
	}
	return a.with(c, func(rq *request) error {
		ok, err := rq.checkoutAllowed()
		if err != nil {
			return err
		}
		if !ok {
			return fail("checkout-not-allowed", "")
		}
		owner, err := rq.who()
		if err != nil {
			return err
		}
		tx, err := rq.conn.BeginTx(rq.ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			return fmt.Errorf("checkout session: begin: %w", err)
		}
		defer tx.Rollback(rq.ctx) //nolint:errcheck // a no-op after Commit
		ct, found, err := cart.Find(rq.ctx, tx, owner)
		if err != nil {
			return err
		}
		if !found {
			return fail("cart-not-found", "")
		}
		cc, err := cart.Load(rq.ctx, tx, ct)
		if err != nil {
			return err
		}
		if len(cc.ProductLines()) == 0 {
			return fail("cart-is-empty", "")
		}
		email := ""
		if rq.owner.MemberID > 0 {
			if err := tx.QueryRow(rq.ctx, accountEmailSQL, rq.accountID).Scan(&email); err != nil {
				return fmt.Errorf("account email: %w", err)
			}
		} else if v, ok := formValue(c, "anonymous_email_address"); ok {
			email = strings.TrimSpace(v)
		}
		params, err := sessionParams(cc, rq.tenant.ID, rq.tenant.Settings.FrontendOrigin, email)
		if err != nil {
			rq.a.log.Error("checkout session: amounts", "tenant", rq.tenant.Slug, "err", err)
			return fail("unexpected-error", "The cart total cannot be charged.")
		}
		acct, err := rq.a.payments.For(rq.ctx, rq.tenant)
		if err != nil {
			rq.a.log.Error("checkout session: stripe account", "tenant", rq.tenant.Slug, "err", err)
			return fail("unexpected-error", "Payments are not available at the moment.")
		}
		s, err := acct.API.CheckoutSessions.New(params)
		if err != nil {
			var se *stripe.Error
			if errors.As(err, &se) {
				rq.a.log.Warn("checkout session: stripe refused", "tenant", rq.tenant.Slug, "type", se.Type, "code", se.Code, "request_id", se.RequestID)
				return fail("stripe-error", se.Msg)
			}
			rq.a.log.Error("checkout session: stripe call", "tenant", rq.tenant.Slug, "err", err)
			return fail("unexpected-error", "Payments are not available at the moment.")
		}
		err = saveSnapshot(rq.ctx, tx, s.ID, cc)
		if err == nil {
			err = tx.Commit(rq.ctx)
		}
		if err != nil {
			// The same session recorded by a concurrent identical request
			// (same idempotency key, same session) is not a failure.
			_ = tx.Rollback(rq.ctx)
			if recorded, lerr := snapshotExists(rq.ctx, rq.conn, s.ID); lerr != nil || !recorded {
				// Without its record the session must not be paid for:
				// its URL is not handed out.
				rq.a.log.Error("checkout session: record", "tenant", rq.tenant.Slug, "session", s.ID, "err", err)
				return fail("unexpected-error", "Payments are not available at the moment.")
			}
		}
		return reply(c, object{{key, "success"}, {"session_id", s.ID}, {"checkout_url", s.URL}})
	})
}
