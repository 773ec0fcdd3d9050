package shop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/server"
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

// checkoutRead is what O15 reads before calling Stripe: the cart contents
// the session charges and the address it is created for; refusal is the
// contract's error code when there is nothing to check out.
type checkoutRead struct {
	cc      cart.Contents
	email   string
	refusal string
}

// checkoutContents reads the visitor's cart in one repeatable-read,
// read-only transaction, so the lines, shipping method, discounts and
// totals are one consistent state of the cart.
func (rq *request) checkoutContents() (checkoutRead, error) {
	ok, err := rq.checkoutAllowed()
	if err != nil || !ok {
		return checkoutRead{refusal: "checkout-not-allowed"}, err
	}
	owner, err := rq.who()
	if err != nil {
		return checkoutRead{}, err
	}
	var out checkoutRead
	err = pgx.BeginTxFunc(rq.ctx, rq.conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		ct, found, err := cart.Find(rq.ctx, tx, owner)
		if err != nil || !found {
			out.refusal = "cart-not-found"
			return err
		}
		if out.cc, err = cart.Load(rq.ctx, tx, ct); err != nil {
			return err
		}
		if len(out.cc.ProductLines()) == 0 {
			out.refusal = "cart-is-empty"
			return nil
		}
		if owner.MemberID > 0 {
			if err := tx.QueryRow(rq.ctx, accountEmailSQL, rq.accountID).Scan(&out.email); err != nil {
				return fmt.Errorf("account email: %w", err)
			}
		} else if v, ok := formValue(rq.c, "anonymous_email_address"); ok {
			out.email = strings.TrimSpace(v)
		}
		return nil
	})
	if err != nil {
		return checkoutRead{}, fmt.Errorf("checkout session: read cart: %w", err)
	}
	return out, nil
}

// recordSession records what session id charges (saveSnapshot) in a
// transaction of its own. The same session recorded by a concurrent
// identical request (same idempotency key, so the same session) counts as
// recorded.
func recordSession(ctx context.Context, conn *pgxpool.Conn, id string, cc cart.Contents) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return saveSnapshot(ctx, tx, id, cc) })
	if err == nil {
		return nil
	}
	if recorded, lerr := snapshotExists(ctx, conn, id); lerr == nil && recorded {
		return nil
	}
	return err
}

// stripeTimedOut reports whether a Stripe call ended because its time ran
// out (the call's bound, the request's deadline or the HTTP timeout).
func stripeTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// O15 POST /order/create-checkout-session, in three steps so that no
// tenant connection is held while Stripe is called: the cart is read in one
// consistent transaction and the connection given back; the session is
// created with the request's context, bounded by the payments timeout;
// then what it charges is recorded (saveSnapshot) in a second short
// transaction, from the very contents its parameters were built from. A
// session whose record could not be written is never handed out, so it
// cannot be paid for. Nothing else is written.
func (a *App) createCheckoutSession(c *fiber.Ctx) error {
	const key = "create_checkout_session"
	fail := func(code, desc string) error {
		e := object{{"error", code}}
		if desc != "" {
			e = append(e, kv{"description", desc})
		}
		return reply(c, object{{key, "error"}, {"errors", e}})
	}
	var read checkoutRead
	ran := false
	if err := a.with(c, func(rq *request) error {
		ran = true
		var err error
		read, err = rq.checkoutContents()
		return err
	}); err != nil || !ran {
		return err
	}
	if read.refusal != "" {
		return fail(read.refusal, "")
	}
	t := server.Tenant(c)
	log := a.log.With("tenant", t.Slug)
	params, err := sessionParams(read.cc, t.ID, t.Settings.FrontendOrigin, read.email)
	if err != nil {
		log.Error("checkout session: amounts", "err", err)
		return fail("unexpected-error", "The cart total cannot be charged.")
	}
	ctx, cancel := a.payments.Bound(c.UserContext())
	defer cancel()
	acct, err := a.payments.For(ctx, t)
	if err != nil {
		log.Error("checkout session: stripe account", "err", err)
		return fail("unexpected-error", "Payments are not available at the moment.")
	}
	params.Context = ctx
	s, err := acct.API.CheckoutSessions.New(params)
	if err != nil {
		var se *stripe.Error
		switch {
		case errors.As(err, &se):
			log.Warn("checkout session: stripe refused", "type", se.Type, "code", se.Code, "request_id", se.RequestID)
			return fail("stripe-error", se.Msg)
		case stripeTimedOut(err):
			log.Warn("checkout session: stripe did not answer in time", "err", err)
			return fail("unexpected-error", "Payments did not answer in time. Please try again.")
		}
		log.Error("checkout session: stripe call", "err", err)
		return fail("unexpected-error", "Payments are not available at the moment.")
	}
	ran, err = conn(c, func(conn *pgxpool.Conn) error { return recordSession(c.UserContext(), conn, s.ID, read.cc) })
	if !ran {
		return err
	}
	if err != nil {
		// Without its record the session must not be paid for: its URL is
		// not handed out.
		log.Error("checkout session: record", "session", s.ID, "err", err)
		return fail("unexpected-error", "Payments are not available at the moment.")
	}
	return reply(c, object{{key, "success"}, {"session_id", s.ID}, {"checkout_url", s.URL}})
}
