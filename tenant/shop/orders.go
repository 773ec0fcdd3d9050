package shop

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/tenant/cart"
)

// errCartGone means a paid session without a snapshot (created before
// snapshots were recorded) has no cart left and no order was made from it:
// the event can never apply (§12 Q27). A session with a snapshot always
// becomes its order.
var errCartGone = errors.New("cart not found")

// errNoCartID means a session carries no cart_id metadata.
var errNoCartID = errors.New("session has no cart id")

// errOtherTenant means a session was created by another tenant sharing the
// Stripe account: its cart_id names a cart of that tenant's database.
var errOtherTenant = errors.New("session belongs to another tenant")

// tenantMetadata is the Checkout Session metadata key naming the tenant (by
// registry id) whose cart the session pays for.
const tenantMetadata = "swa_tenant"

// otherTenant reports whether s was created by a tenant other than t.
// Sessions created before the key existed carry none and are accepted.
func otherTenant(s *stripe.CheckoutSession, t *directory.Tenant) bool {
	v, ok := s.Metadata[tenantMetadata]
	return ok && v != strconv.FormatInt(t.ID, 10)
}

const orderBySessionSQL = `SELECT identifier FROM customer_order WHERE stripe_checkout_session_id = $1`

const orderByIntentSQL = `SELECT o.identifier FROM order_payment p JOIN customer_order o ON o.payment_id = p.id
WHERE p.stripe_payment_intent_id = $1`

const lockCartSQL = `SELECT id, coalesce(member_id, 0), coalesce(anonymous_cart_id, '') FROM cart WHERE id = $1 FOR UPDATE`

// lockSnapshotSQL locks a session's snapshot: the one row every maker of
// the session's order waits on, whether or not its cart still exists.
const lockSnapshotSQL = `SELECT cart_id, coalesce(member_id, 0) FROM checkout_session WHERE id = $1 FOR UPDATE`

// existingOrder returns the order already made from the session (or its
// payment intent), "" when none.
func existingOrder(ctx context.Context, db cart.DB, sessionID, intent string) (string, error) {
	var ident string
	err := db.QueryRow(ctx, orderBySessionSQL, sessionID).Scan(&ident)
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return ident, err
	}
	if intent == "" {
		return "", nil
	}
	err = db.QueryRow(ctx, orderByIntentSQL, intent).Scan(&ident)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return ident, err
}

func intentID(s *stripe.CheckoutSession) string {
	if s.PaymentIntent != nil {
		return s.PaymentIntent.ID
	}
	return ""
}

// placeOrder creates the order of a paid Checkout Session exactly once,
// whichever of the success redirect and the webhook comes first, in one
// transaction: it returns the existing order if the session already made
// one, and otherwise writes the payment, addresses, order, lines, applied
// discounts, initial status, shipping method and the confirmation e-mail
// into the outbox.
//
// A session with a snapshot (what it charged, recorded when it was created)
// always becomes an order, since its money was taken: the snapshot row is
// locked, then the cart if it still exists. Lines and totals come from the
// snapshot; the snapshot's quantities and discount codes are then taken out
// of the cart, so items added after the session was created stay there for
// the next checkout, and a cart left empty is deleted. When the cart is
// gone (deleted in another tab), no cart is touched; the order is then the
// snapshot's member's, or a prospect's by the session's e-mail.
//
// A session without a snapshot (created before snapshots were recorded)
// locks its cart (metadata cart_id) and is made from the cart as it is,
// which is deleted; when the cart is gone it makes no order (errCartGone).
//
// A racing second caller waits on the snapshot (or cart) lock and then
// finds the order; the unique session id on the order is the last guard.
func (a *App) placeOrder(ctx context.Context, conn *pgxpool.Conn, t *directory.Tenant, key []byte, s *stripe.CheckoutSession) (string, error) {
	if otherTenant(s, t) {
		return "", errOtherTenant
	}
	intent := intentID(s)
	cartID, err := strconv.ParseInt(s.Metadata["cart_id"], 10, 64)
	if err != nil || cartID <= 0 {
		if ident, err := existingOrder(ctx, conn, s.ID, intent); err != nil || ident != "" {
			return ident, err
		}
		return "", errNoCartID
	}
	var ident string
	var mismatch bool
	var stripeTotal, orderTotal decimal.Decimal
	placed := false
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		placed = false
		if ident, err = existingOrder(ctx, tx, s.ID, intent); err != nil || ident != "" {
			return err
		}
		var snap cart.Cart
		recorded := true
		err := tx.QueryRow(ctx, lockSnapshotSQL, s.ID).Scan(&snap.ID, &snap.MemberID)
		if errors.Is(err, pgx.ErrNoRows) {
			recorded = false
		} else if err != nil {
			return fmt.Errorf("lock checkout snapshot: %w", err)
		} else {
			// The snapshot names the cart it was taken from; it is the
			// session's own cart_id.
			cartID = snap.ID
		}
		var ct cart.Cart
		cartFound := true
		err = tx.QueryRow(ctx, lockCartSQL, cartID).Scan(&ct.ID, &ct.MemberID, &ct.AnonymousID)
		if errors.Is(err, pgx.ErrNoRows) {
			cartFound = false
		} else if err != nil {
			return fmt.Errorf("lock cart: %w", err)
		}
		// A concurrent maker may have committed while we waited for a lock.
		if ident, err = existingOrder(ctx, tx, s.ID, intent); err != nil || ident != "" {
			return err
		}
		if !recorded && !cartFound {
			return errCartGone
		}
		var cc cart.Contents
		if recorded {
			cc, _, err = loadSnapshot(ctx, tx, s.ID)
		} else {
			// A session created before snapshots were recorded: the
			// cart as it is now.
			cc, err = cart.Load(ctx, tx, ct)
		}
		if err != nil {
			return err
		}
		// The order belongs to whoever owns the cart now (a visitor's
		// cart adopted at sign-in is the member's); with the cart gone,
		// to the member the snapshot names, if any.
		if cartFound {
			cc.Cart = ct
		} else {
			cc.Cart = snap
		}
		o, err := a.writeOrder(ctx, tx, t, key, s, cc)
		if err != nil {
			return err
		}
		ident, mismatch, stripeTotal, orderTotal = o.identifier, o.mismatch, o.stripeTotal, o.total
		placed = true
		switch {
		case !cartFound:
			return nil
		case !recorded:
			return cart.Delete(ctx, tx, ct.ID)
		}
		_, err = cart.Subtract(ctx, tx, ct.ID, cc.Lines, discountCodeIDs(cc.Discounts))
		return err
	})
	if err != nil {
		return "", err
	}
	// Counted once the order is committed, by the caller that made it (one
	// that found it made already counts nothing).
	if placed {
		cents, cerr := payments.Cents(orderTotal)
		if cerr != nil {
			a.log.Warn("order total not metered", "tenant", t.Slug, "order", ident, "err", cerr)
		}
		a.usage.Order(t.ID, string(s.Currency), cents)
	}
	if mismatch {
		a.log.Warn("stripe amount differs from order total", "tenant", t.Slug, "order", ident,
			"stripe_amount_total", stripeTotal.StringFixed(2), "order_total", orderTotal.StringFixed(2))
	}
	if placed {
		a.noteOrder(ctx, conn, t)
	}
	return ident, nil
}

type written struct {
	identifier  string
	mismatch    bool
	stripeTotal decimal.Decimal
	total       decimal.Decimal
}

type address struct{ name, line1, city, state, zip, country string }

func stripeAddress(name string, a *stripe.Address) address {
	out := address{name: trimmed(name, 200)}
	if a != nil {
		out.line1, out.city, out.state, out.zip, out.country = trimmed(a.Line1, 200), trimmed(a.City, 200), trimmed(a.State, 40), trimmed(a.PostalCode, 10), trimmed(a.Country, 10)
	}
	return out
}

const insertPaymentSQL = `INSERT INTO order_payment (email, payment_type, card_name, stripe_payment_intent_id)
VALUES ($1, 'card', $2, NULLIF($3, '')) RETURNING id`

const insertShippingAddressSQL = `INSERT INTO order_shipping_address (name, address_line1, city, state, zip, country, country_code)
VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`

const insertBillingAddressSQL = `INSERT INTO order_billing_address (name, address_line1, city, state, zip, country, country_code)
VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`

const insertOrderSQL = `
INSERT INTO customer_order (identifier, member_id, prospect_id, payment_id, shipping_address_id, billing_address_id,
  sales_tax_amt, item_subtotal, item_discount_amt, shipping_amt, shipping_discount_amt, order_total,
  agreed_with_terms_of_sale, order_date_time, stripe_checkout_session_id, stripe_amount_total, payment_amount_mismatch)
VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, true, now(), $12, $13, $14)
ON CONFLICT DO NOTHING
RETURNING id`

const insertOrderSKUSQL = `INSERT INTO order_sku (order_id, sku_id, quantity, price_each) VALUES ($1, $2, $3, $4)`

const insertOrderDiscountSQL = `INSERT INTO order_discount (order_id, discount_code_id, applied) VALUES ($1, $2, $3)`

const insertStatusSQL = `INSERT INTO order_status_history (order_id, order_status_id, created_date_time)
SELECT $1, id, now() FROM order_status WHERE identifier = $2`

const insertOrderMethodSQL = `INSERT INTO order_shipping_method (order_id, shipping_method_id) VALUES ($1, $2)`

// writeOrder inserts the order rows for a session whose snapshot (or,
// without one, cart) is locked.
func (a *App) writeOrder(ctx context.Context, tx pgx.Tx, t *directory.Tenant, key []byte, s *stripe.CheckoutSession, cc cart.Contents) (written, error) {
	var w written
	customerName, customerEmail := "Customer", s.CustomerEmail
	var billing, shipping address
	if d := s.CustomerDetails; d != nil {
		customerName = d.Name
		if customerEmail == "" {
			customerEmail = d.Email
		}
		billing = stripeAddress(customerName, d.Address)
	} else {
		billing = address{name: customerName}
	}
	if sd := s.ShippingDetails; sd != nil {
		name := sd.Name
		if name == "" {
			name = customerName
		}
		shipping = stripeAddress(name, sd.Address)
	} else {
		shipping = address{name: customerName}
	}
	var memberID, prospectID *int64
	var code string // mb_cd or pr_cd for the e-mail
	if cc.Cart.MemberID > 0 {
		memberID = &cc.Cart.MemberID
		if err := tx.QueryRow(ctx, `SELECT coalesce(mb_cd, '') FROM member WHERE id = $1`, cc.Cart.MemberID).Scan(&code); err != nil {
			return w, fmt.Errorf("member: %w", err)
		}
	} else if customerEmail != "" {
		id, prCd, err := ensureProspect(ctx, tx, key, customerEmail, "")
		if err != nil {
			return w, err
		}
		prospectID, code = &id, prCd
	}
	var paymentID, shipID, billID int64
	if err := tx.QueryRow(ctx, insertPaymentSQL, customerEmail, customerName, intentID(s)).Scan(&paymentID); err != nil {
		return w, fmt.Errorf("order payment: %w", err)
	}
	if err := tx.QueryRow(ctx, insertShippingAddressSQL, shipping.name, shipping.line1, shipping.city, shipping.state, shipping.zip, shipping.country).Scan(&shipID); err != nil {
		return w, fmt.Errorf("order shipping address: %w", err)
	}
	if err := tx.QueryRow(ctx, insertBillingAddressSQL, billing.name, billing.line1, billing.city, billing.state, billing.zip, billing.country).Scan(&billID); err != nil {
		return w, fmt.Errorf("order billing address: %w", err)
	}
	tt := cc.Totals
	w.total = tt.Total()
	w.stripeTotal = payments.FromCents(s.AmountTotal)
	w.mismatch = !w.stripeTotal.Equal(w.total)
	var orderID int64
	for attempt := 0; ; attempt++ {
		ident, err := newOrderIdentifier()
		if err != nil {
			return w, err
		}
		err = tx.QueryRow(ctx, insertOrderSQL, ident, memberID, prospectID, paymentID, shipID, billID,
			tt.ItemSubtotal.Value, tt.ItemDiscount.Value, tt.ShippingSubtotal.Value, tt.ShippingDiscount.Value, w.total,
			s.ID, w.stripeTotal, w.mismatch).Scan(&orderID)
		if err == nil {
			w.identifier = ident
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return w, fmt.Errorf("order: %w", err)
		}
		// A conflict: the session's order exists (we lost a race past
		// the lock) or the random identifier is taken.
		if existing, err := existingOrder(ctx, tx, s.ID, ""); err != nil || existing != "" {
			return w, errOrderExists
		}
		if attempt == 5 {
			return w, errors.New("order: no free identifier")
		}
	}
	for _, l := range cc.Lines {
		if _, err := tx.Exec(ctx, insertOrderSKUSQL, orderID, l.SKUID, l.Quantity, l.Price); err != nil {
			return w, fmt.Errorf("order line: %w", err)
		}
	}
	for _, d := range cc.Discounts {
		if _, err := tx.Exec(ctx, insertOrderDiscountSQL, orderID, d.CodeID, d.Applied); err != nil {
			return w, fmt.Errorf("order discount: %w", err)
		}
	}
	status := "accepted"
	if err := tx.QueryRow(ctx, `SELECT coalesce(string_value, 'accepted') FROM order_configuration WHERE key = 'initial_order_status' ORDER BY id LIMIT 1`).Scan(&status); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return w, fmt.Errorf("initial order status: %w", err)
	}
	if _, err := tx.Exec(ctx, insertStatusSQL, orderID, status); err != nil {
		return w, fmt.Errorf("order status: %w", err)
	}
	if cc.Shipping != nil {
		if _, err := tx.Exec(ctx, insertOrderMethodSQL, orderID, cc.Shipping.ID); err != nil {
			return w, fmt.Errorf("order shipping method: %w", err)
		}
	}
	conf := confirmation{
		orderID: orderID, identifier: w.identifier, member: memberID != nil, memberID: memberID, prospectID: prospectID,
		code: code, name: customerName, email: customerEmail, contents: cc, shipping: shipping, billing: billing,
		frontend: t.Settings.FrontendOrigin,
	}
	if err := a.queueConfirmation(ctx, tx, t, conf); err != nil {
		return w, err
	}
	return w, nil
}

// errOrderExists aborts a transaction that lost the race to create an
// order; the caller reads the winner's order.
var errOrderExists = errors.New("order already exists")

// newOrderIdentifier returns a 10-character [A-Za-z0-9] identifier (§1.11).
func newOrderIdentifier() (string, error) {
	id, err := cart.NewAnonymousID()
	if err != nil {
		return "", err
	}
	return id[:10], nil
}

const insertProspectSQL = `
INSERT INTO prospect (email, email_unsubscribed, email_unsubscribe_string, email_unsubscribe_string_signed, pr_cd, swa_comment, created_date_time)
VALUES ($1, true, $2, $3, $4, NULLIF($5, ''), now())
ON CONFLICT (email) DO NOTHING`

// ensureProspect returns the prospect with this address, creating it as O18
// does (unsubscribed, with an unsubscribe token and a pr_cd; §12 Q9).
func ensureProspect(ctx context.Context, db cart.DB, key []byte, email, comment string) (int64, string, error) {
	unsub, err := randomCode(20)
	if err != nil {
		return 0, "", err
	}
	prCd, err := randomCode(20)
	if err != nil {
		return 0, "", err
	}
	if _, err := db.Exec(ctx, insertProspectSQL, email, unsub, unsubscribeSignature(key, unsub), prCd, comment); err != nil {
		return 0, "", fmt.Errorf("prospect: %w", err)
	}
	var id int64
	var code string
	if err := db.QueryRow(ctx, `SELECT id, coalesce(pr_cd, '') FROM prospect WHERE email = $1`, email).Scan(&id, &code); err != nil {
		return 0, "", fmt.Errorf("prospect: %w", err)
	}
	return id, code, nil
}

func randomCode(n int) (string, error) {
	s, err := cart.NewAnonymousID()
	if err != nil {
		return "", err
	}
	return s[:n], nil
}

// unsubscribeSignature is Django's Signer(salt="email_unsubscribe")
// signature of value under the tenant's key; only this part is stored and
// used as the public pr_token (§1.11).
func unsubscribeSignature(key []byte, value string) string {
	h := sha256.New()
	h.Write([]byte("email_unsubscribe" + "signer"))
	h.Write(key)
	m := hmac.New(sha256.New, h.Sum(nil))
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// trimmed keeps a value within a column's length.
func trimmed(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
