package shop_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// text runs a query returning one text value.
func text(t testing.TB, db *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// TestOrderIsWhatWasPaidFor: the cart changes after the Checkout Session is
// created (another tab adds or removes items, a price changes), then the
// success redirect and the webhook arrive together. The order holds what
// the session charged and nothing else; what was added later stays in the
// cart. A session created before snapshots were recorded is made from the
// cart as it is (and flagged when the amounts differ).
func TestOrderIsWhatWasPaidFor(t *testing.T) {
	t.Parallel()
	d := newStripeDouble(t)
	e := newEnv(t, envOptions{stripeBase: d.srv.URL})
	add := func(b *browser, sku string, qty int) {
		t.Helper()
		if a := b.post("/order/cart-add-product-sku", form("sku_id", sku, "quantity", fmt.Sprint(qty))).raw; !strings.Contains(a, `"success"`) {
			t.Fatalf("add %s: %s", sku, a)
		}
	}
	tests := []struct {
		name string
		// before builds the cart the session charges; after changes it
		// once the session exists.
		before, after func(t *testing.T, b *browser, session string)
		// the order's lines (sku x quantity @ price) and amounts
		// (item subtotal / item discount / shipping / shipping discount /
		// total / Stripe's amount_total / mismatch)
		wantLines, wantAmounts string
		// the member's cart afterwards: its lines, "" when it is gone
		wantCart string
		// the member's cart keeps its shipping method and discount codes
		wantCartShipping, wantCartCodes int
		wantMail                        []string
		wantNotInMail                   []string
	}{
		{
			name: "another SKU added in another tab",
			before: func(t *testing.T, b *browser, _ string) {
				add(b, "1", 2)
				b.post("/order/cart-update-shipping-method", form("shipping_method_identifier", "USPSRetailGround"))
				b.post("/order/cart-apply-discount-code", form("discount_code_id", "WELCOME10"))
			},
			after:            func(t *testing.T, b *browser, _ string) { add(b, "6", 1) },
			wantLines:        "1x2@3.50",
			wantAmounts:      "7.00/0.70/9.56/0.00/15.86/15.86/false",
			wantCart:         "6x1",
			wantCartShipping: 1,
			wantMail:         []string{"Order Total: $15.86", "Item Discount: -$0.70", "Quantity: 2, Subtotal: $7.00"},
			wantNotInMail:    []string{"$3.99"},
		},
		{
			name:        "more of the same SKU added",
			before:      func(t *testing.T, b *browser, _ string) { add(b, "1", 1) },
			after:       func(t *testing.T, b *browser, _ string) { add(b, "1", 2) },
			wantLines:   "1x1@3.50",
			wantAmounts: "3.50/0.00/0.00/0.00/3.50/3.50/false",
			wantCart:    "1x2",
			wantMail:    []string{"Order Total: $3.50"},
		},
		{
			name:   "fewer of the SKU after the session",
			before: func(t *testing.T, b *browser, _ string) { add(b, "1", 3) },
			after: func(t *testing.T, b *browser, _ string) {
				b.post("/order/cart-update-sku-quantity", form("sku_id", "1", "quantity", "1"))
			},
			wantLines:   "1x3@3.50",
			wantAmounts: "10.50/0.00/0.00/0.00/10.50/10.50/false",
			wantMail:    []string{"Order Total: $10.50"},
		},
		{
			name:   "price raised after the session",
			before: func(t *testing.T, b *browser, _ string) { add(b, "7", 1) },
			after: func(t *testing.T, b *browser, _ string) {
				if _, err := e.db.Exec(t.Context(), `INSERT INTO sku_price (sku_id, price, created_date_time) VALUES (7, 19.99, now())`); err != nil {
					t.Fatal(err)
				}
			},
			wantLines:   "7x1@14.99",
			wantAmounts: "14.99/0.00/0.00/0.00/14.99/14.99/false",
			wantMail:    []string{"Order Total: $14.99"},
		},
		{
			name:   "session without a snapshot is made from the cart as it is",
			before: func(t *testing.T, b *browser, _ string) { add(b, "1", 1) },
			after: func(t *testing.T, b *browser, session string) {
				if _, err := e.db.Exec(t.Context(), `DELETE FROM checkout_session WHERE id = $1`, session); err != nil {
					t.Fatal(err)
				}
				add(b, "6", 1)
			},
			wantLines:   "1x1@3.50 6x1@3.99",
			wantAmounts: "7.49/0.00/0.00/0.00/7.49/3.50/true",
			wantMail:    []string{"Order Total: $7.49"},
		},
	}
	for i, tc := range tests {
		// Not parallel: one case raises a price the others would see.
		t.Run(tc.name, func(t *testing.T) {
			account := newMember(t, e.db, fmt.Sprintf("paidfor%d", i), fmt.Sprintf("paidfor%d@example.com", i))
			b := e.browser(t, hostA)
			b.login(account)
			tc.before(t, b, "")
			cs := b.post("/order/create-checkout-session", nil).json(t)
			id, _ := cs["session_id"].(string)
			if cs["create_checkout_session"] != "success" || id == "" {
				t.Fatalf("create session: %v", cs)
			}
			if n := count(t, e.db, `SELECT count(*) FROM checkout_session WHERE id = $1`, id); n != 1 {
				t.Fatalf("session recorded %d times", n)
			}
			tc.after(t, b, id)
			d.pay(id)

			// Two success redirects and two webhook events, all at once.
			ident := raceOrder(t, e, d, b, id, 2, fmt.Sprintf("evt_paidfor_%d_1", i), fmt.Sprintf("evt_paidfor_%d_3", i))

			if n := count(t, e.db, `SELECT count(*) FROM customer_order WHERE stripe_checkout_session_id = $1`, id); n != 1 {
				t.Errorf("%d orders for the session", n)
			}
			lines := text(t, e.db, `SELECT coalesce(string_agg(s.sku_id || 'x' || s.quantity || '@' || s.price_each, ' ' ORDER BY s.sku_id), '')
				FROM order_sku s JOIN customer_order o ON o.id = s.order_id WHERE o.stripe_checkout_session_id = $1`, id)
			if lines != tc.wantLines {
				t.Errorf("order lines %q, want %q", lines, tc.wantLines)
			}
			amounts := text(t, e.db, `SELECT concat_ws('/', item_subtotal, item_discount_amt, shipping_amt, shipping_discount_amt,
				order_total, stripe_amount_total, payment_amount_mismatch::text) FROM customer_order WHERE stripe_checkout_session_id = $1`, id)
			if amounts != tc.wantAmounts {
				t.Errorf("order amounts %q, want %q", amounts, tc.wantAmounts)
			}
			const ofMember = ` FROM cart c JOIN member m ON m.id = c.member_id WHERE m.account_id = $1`
			cartLines := text(t, e.db, `SELECT coalesce(string_agg(s.sku_id || 'x' || s.quantity, ' ' ORDER BY s.sku_id), '')
				FROM cart_sku s WHERE s.cart_id IN (SELECT c.id`+ofMember+`)`, account)
			if cartLines != tc.wantCart {
				t.Errorf("cart afterwards %q, want %q", cartLines, tc.wantCart)
			}
			if n := count(t, e.db, `SELECT count(*)`+ofMember, account); n != min(len(tc.wantCart), 1) {
				t.Errorf("%d carts left, want %d", n, min(len(tc.wantCart), 1))
			}
			if n := count(t, e.db, `SELECT count(*) FROM cart_shipping_method WHERE cart_id IN (SELECT c.id`+ofMember+`)`, account); n != tc.wantCartShipping {
				t.Errorf("cart keeps %d shipping methods, want %d", n, tc.wantCartShipping)
			}
			if n := count(t, e.db, `SELECT count(*) FROM cart_discount WHERE cart_id IN (SELECT c.id`+ofMember+`)`, account); n != tc.wantCartCodes {
				t.Errorf("cart keeps %d discount codes, want %d", n, tc.wantCartCodes)
			}
			mail := text(t, e.db, `SELECT string_agg(body_text, '|') FROM email_outbox WHERE kind = 'order_confirmation' AND to_addresses = $1::jsonb`,
				fmt.Sprintf(`["paidfor%d@example.com"]`, i))
			if strings.Count(mail, "Order Identifier: ") != 1 || !strings.Contains(mail, "Order Identifier: "+ident) {
				t.Errorf("confirmation mails: %q", mail)
			}
			for _, w := range tc.wantMail {
				if !strings.Contains(mail, w) {
					t.Errorf("confirmation lacks %q: %q", w, mail)
				}
			}
			for _, w := range tc.wantNotInMail {
				if strings.Contains(mail, w) {
					t.Errorf("confirmation mentions %q: %q", w, mail)
				}
			}
			// What stays in the cart is checked out on its own next time.
			if tc.wantCart != "" {
				tot := b.get("/order/cart-totals").raw
				if !strings.Contains(tot, `"cart_found":true`) {
					t.Errorf("cart afterwards: %s", tot)
				}
			}
		})
	}
}

// TestPaidSessionWhoseCartIsGone: the shopper deletes the cart in another
// tab (and starts a new one there) after the Checkout Session is created;
// then the payment arrives as the success redirect and the webhook, each
// twice, all at once. The money was taken, so the session's snapshot
// becomes exactly one order (one payment, one confirmation), the member's
// or the guest's as the snapshot and the session say, and the new cart is
// left as it is.
func TestPaidSessionWhoseCartIsGone(t *testing.T) {
	t.Parallel()
	d := newStripeDouble(t)
	e := newEnv(t, envOptions{stripeBase: d.srv.URL})
	tests := []struct {
		name   string
		member bool
	}{
		{"member", true},
		{"guest", false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			email := fmt.Sprintf("gone%d@example.com", i)
			b := e.browser(t, hostA)
			var account int64
			createForm := form("anonymous_email_address", email)
			if tc.member {
				account = newMember(t, e.db, fmt.Sprintf("gone%d", i), email)
				b.login(account)
				createForm = nil
			}
			b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "2"))
			b.post("/order/cart-update-shipping-method", form("shipping_method_identifier", "USPSRetailGround"))
			b.post("/order/cart-apply-discount-code", form("discount_code_id", "WELCOME10"))
			cs := b.post("/order/create-checkout-session", createForm).json(t)
			id, _ := cs["session_id"].(string)
			if cs["create_checkout_session"] != "success" || id == "" {
				t.Fatalf("create session: %v", cs)
			}
			oldCart := count(t, e.db, `SELECT cart_id FROM checkout_session WHERE id = $1`, id)
			if a := b.post("/order/cart-delete-cart", nil).raw; !strings.Contains(a, `"cart_delete_cart":"success"`) {
				t.Fatalf("delete cart: %s", a)
			}
			b.post("/order/cart-add-product-sku", form("sku_id", "6", "quantity", "1"))
			newCart := count(t, e.db, `SELECT coalesce(max(c.id), 0) FROM cart c JOIN cart_sku s ON s.cart_id = c.id WHERE s.sku_id = 6 AND c.id > $1`, oldCart)
			if newCart == 0 || count(t, e.db, `SELECT count(*) FROM cart WHERE id = $1`, oldCart) != 0 {
				t.Fatalf("cart %d not deleted, or no new cart (%d)", oldCart, newCart)
			}
			d.pay(id)

			// Two success redirects and two webhook events, all at once.
			ident := raceOrder(t, e, d, b, id, 2, fmt.Sprintf("evt_gone_%d_1", i), fmt.Sprintf("evt_gone_%d_3", i))

			owner := `o.prospect_id = (SELECT id FROM prospect WHERE email = $2) AND o.member_id IS NULL`
			if tc.member {
				owner = `o.member_id = (SELECT id FROM member WHERE account_id = $2) AND o.prospect_id IS NULL`
			}
			var ownerArg any = email
			if tc.member {
				ownerArg = account
			}
			checks := []struct {
				what, sql string
				args      []any
			}{
				{"orders", `SELECT count(*) FROM customer_order WHERE stripe_checkout_session_id = $1`, []any{id}},
				{"payments", `SELECT count(*) FROM order_payment WHERE stripe_payment_intent_id = 'pi_' || $1`, []any{id}},
				{"confirmations", `SELECT count(*) FROM email_outbox WHERE kind = 'order_confirmation' AND to_addresses = $1::jsonb`, []any{`["` + email + `"]`}},
				{"owner", `SELECT count(*) FROM customer_order o WHERE o.stripe_checkout_session_id = $1 AND ` + owner, []any{id, ownerArg}},
				{"snapshot amounts", `SELECT count(*) FROM customer_order WHERE stripe_checkout_session_id = $1 AND item_subtotal = 7.00
					AND item_discount_amt = 0.70 AND shipping_amt = 9.56 AND order_total = 15.86 AND stripe_amount_total = 15.86 AND NOT payment_amount_mismatch`, []any{id}},
				{"snapshot lines", `SELECT count(*) FROM order_sku s JOIN customer_order o ON o.id = s.order_id
					WHERE o.stripe_checkout_session_id = $1 AND s.sku_id = 1 AND s.quantity = 2 AND s.price_each = 3.50
					AND NOT EXISTS (SELECT 1 FROM order_sku x WHERE x.order_id = o.id AND x.sku_id <> 1)`, []any{id}},
				{"snapshot discount", `SELECT count(*) FROM order_discount d JOIN customer_order o ON o.id = d.order_id WHERE o.stripe_checkout_session_id = $1 AND d.applied`, []any{id}},
				{"snapshot shipping method", `SELECT count(*) FROM order_shipping_method m JOIN customer_order o ON o.id = m.order_id WHERE o.stripe_checkout_session_id = $1`, []any{id}},
				{"new cart untouched", `SELECT count(*) FROM cart_sku WHERE cart_id = $1 AND sku_id = 6 AND quantity = 1
					AND (SELECT count(*) FROM cart_sku WHERE cart_id = $1) = 1`, []any{newCart}},
			}
			for _, c := range checks {
				if n := count(t, e.db, c.sql, c.args...); n != 1 {
					t.Errorf("%s: %d, want 1", c.what, n)
				}
			}
			mail := text(t, e.db, `SELECT body_text FROM email_outbox WHERE kind = 'order_confirmation' AND to_addresses = $1::jsonb`, `["`+email+`"]`)
			want := []string{"Order Identifier: " + ident, "Order Total: $15.86"}
			if tc.member {
				want = append(want, fmt.Sprintf("&mb_cd=gone%dmbcd", i))
			}
			for _, w := range want {
				if !strings.Contains(mail, w) {
					t.Errorf("confirmation lacks %q: %q", w, mail)
				}
			}
		})
	}
}

// TestConcurrentIdenticalCheckouts: one click sent several times at once
// (same cart, same e-mail, so the same idempotency key). Stripe answers
// each with the one session; every request hands it out, and it is
// recorded once, with the cart's lines.
func TestConcurrentIdenticalCheckouts(t *testing.T) {
	t.Parallel()
	d := newStripeDouble(t)
	e := newEnv(t, envOptions{stripeBase: d.srv.URL})
	b := e.browser(t, hostA)
	b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "2"))
	b.post("/order/cart-add-product-sku", form("sku_id", "6", "quantity", "1"))
	const clicks = 4
	type click struct {
		id  string
		err error
	}
	out := make(chan click, clicks)
	start := make(chan struct{})
	var ready sync.WaitGroup
	ready.Add(clicks)
	for range clicks {
		go func() {
			ready.Done()
			<-start
			a, err := b.try(http.MethodPost, "/order/create-checkout-session", form("anonymous_email_address", "same@example.com"), nil)
			if err != nil {
				out <- click{err: err}
				return
			}
			m, err := a.decode()
			if err == nil && m["create_checkout_session"] != "success" {
				err = fmt.Errorf("answer %s", a.raw)
			}
			id, _ := m["session_id"].(string)
			out <- click{id: id, err: err}
		}()
	}
	ready.Wait()
	close(start)
	ids := map[string]int{}
	for range clicks {
		c := <-out
		if c.err != nil {
			t.Errorf("click: %v", c.err)
			continue
		}
		ids[c.id]++
	}
	if len(ids) != 1 {
		t.Fatalf("sessions handed out: %v, want one session for every click", ids)
	}
	for id, n := range ids {
		if n != clicks {
			t.Errorf("%d of %d clicks answered with %s", n, clicks, id)
		}
		if n := count(t, e.db, `SELECT count(*) FROM checkout_session WHERE id = $1 AND total = 10.99`, id); n != 1 {
			t.Errorf("session recorded %d times", n)
		}
		if got := text(t, e.db, `SELECT string_agg(sku_id || 'x' || quantity || '@' || price_each, ' ' ORDER BY sku_id)
			FROM checkout_session_sku WHERE checkout_session_id = $1`, id); got != "1x2@3.50 6x1@3.99" {
			t.Errorf("recorded lines %q", got)
		}
	}
	if n := count(t, e.db, `SELECT count(*) FROM checkout_session`); n != 1 {
		t.Errorf("%d checkout records, want 1", n)
	}
}
