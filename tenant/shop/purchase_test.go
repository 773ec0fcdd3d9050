package shop_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// stripeDouble stands in for Stripe where a test needs state that
// stripe-mock does not keep: stripe-mock answers every retrieve with the
// same unpaid fixture (amount_total 0). Session creation is forwarded to
// stripe-mock, so the parameters are still validated against Stripe's API
// description; the double remembers each session, lets the test mark it
// paid, and serves it back on retrieve. A repeated idempotency key gets the
// session its first request made, as Stripe answers. The real stripe-go
// client talks to it.
type stripeDouble struct {
	mock  string
	mu    sync.Mutex
	n     int
	sess  map[string]*doubleSession
	byKey map[string]*doubleSession
	srv   *httptest.Server
}

type doubleSession struct {
	ID, CartID, Email string
	Metadata          map[string]string
	AmountTotal       int64
	Paid              bool
	Form              url.Values
}

func newStripeDouble(t *testing.T) *stripeDouble {
	d := &stripeDouble{mock: pgtest.Service(t, "SWA_STRIPE_API_BASE"), sess: map[string]*doubleSession{}, byKey: map[string]*doubleSession{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *stripeDouble) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(http.MethodPost, d.mock+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			return
		}
		f, _ := url.ParseQuery(string(body))
		var total int64
		for i := 0; f.Get(fmt.Sprintf("line_items[%d][quantity]", i)) != ""; i++ {
			q, _ := strconv.ParseInt(f.Get(fmt.Sprintf("line_items[%d][quantity]", i)), 10, 64)
			u, _ := strconv.ParseInt(f.Get(fmt.Sprintf("line_items[%d][price_data][unit_amount]", i)), 10, 64)
			total += q * u
		}
		key := r.Header.Get("Idempotency-Key")
		d.mu.Lock()
		if s := d.byKey[key]; key != "" && s != nil {
			d.mu.Unlock()
			_ = json.NewEncoder(w).Encode(d.object(s))
			return
		}
		d.n++
		s := &doubleSession{ID: fmt.Sprintf("cs_test_double_%d", d.n), CartID: f.Get("metadata[cart_id]"), Email: f.Get("customer_email"), AmountTotal: total, Form: f,
			Metadata: map[string]string{}}
		for k := range f {
			if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") {
				s.Metadata[strings.TrimSuffix(name, "]")] = f.Get(k)
			}
		}
		d.sess[s.ID] = s
		if key != "" {
			d.byKey[key] = s
		}
		d.mu.Unlock()
		_ = json.NewEncoder(w).Encode(d.object(s))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions/"):
		d.mu.Lock()
		s := d.sess[strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/")]
		d.mu.Unlock()
		if s == nil {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"No such checkout.session"}}`))
			return
		}
		_ = json.NewEncoder(w).Encode(d.object(s))
	default:
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"unknown path"}}`))
	}
}

func (d *stripeDouble) object(s *doubleSession) map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	status := "unpaid"
	if s.Paid {
		status = "paid"
	}
	addr := map[string]any{"line1": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "62701", "country": "US"}
	return map[string]any{
		"id": s.ID, "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/" + s.ID,
		"payment_status": status, "status": "complete", "amount_total": s.AmountTotal, "currency": "usd",
		"metadata": s.Metadata, "customer_email": s.Email,
		"payment_intent":   "pi_" + s.ID,
		"customer_details": map[string]any{"name": "John Doe", "email": s.Email, "address": addr},
		"shipping_details": map[string]any{"name": "John Doe", "address": addr},
	}
}

func (d *stripeDouble) pay(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sess[id].Paid = true
}

// event returns a signed checkout.session.completed delivery for session id.
func (d *stripeDouble) event(t *testing.T, id, eventID, secret string, at time.Time) ([]byte, string) {
	d.mu.Lock()
	s := d.sess[id]
	d.mu.Unlock()
	obj, _ := json.Marshal(d.object(s))
	body := []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2025-11-17.clover","type":"checkout.session.completed","data":{"object":%s}}`, eventID, obj))
	return body, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

func (e *env) deliver(t *testing.T, host string, body []byte, sig string) answer {
	t.Helper()
	a, err := e.send(host, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// send is deliver for goroutines other than the test's.
func (e *env) send(host string, body []byte, sig string) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, e.base+"/order/stripe-webhook", bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("webhook: %w", err)
	}
	return answer{status: resp.StatusCode, raw: string(raw)}, nil
}

// raceOrder delivers a paid session's success redirect (from browser b)
// and its webhook (events eventIDs, one delivery each) all at once: every
// party waits on one start barrier, so the two code paths overlap. Every
// party must answer with the session's order; the identifier they agree
// on is returned. Errors of the parties are reported here, on the test
// goroutine.
func raceOrder(t *testing.T, e *env, d *stripeDouble, b *browser, id string, redirects int, eventIDs ...string) string {
	t.Helper()
	type party struct {
		name  string
		ident string
		err   error
	}
	n := redirects + len(eventIDs)
	out := make(chan party, n)
	start := make(chan struct{})
	var ready sync.WaitGroup
	ready.Add(n)
	run := func(name string, fn func() (string, error)) {
		ready.Done()
		<-start
		ident, err := fn()
		out <- party{name, ident, err}
	}
	for i := range redirects {
		go run(fmt.Sprint("redirect ", i), func() (string, error) {
			a, err := b.try(http.MethodGet, "/order/checkout-session-success?session_id="+id, nil, nil)
			if err != nil {
				return "", err
			}
			m, err := a.decode()
			if err != nil {
				return "", err
			}
			if m["checkout_session_success"] != "success" {
				return "", fmt.Errorf("answer %s", a.raw)
			}
			ident, _ := m["order_identifier"].(string)
			return ident, nil
		})
	}
	for _, ev := range eventIDs {
		body, sig := d.event(t, id, ev, e.whA, time.Now())
		go run("webhook "+ev, func() (string, error) {
			a, err := e.send(hostA, body, sig)
			if err != nil {
				return "", err
			}
			m, err := a.decode()
			if err != nil {
				return "", err
			}
			if a.status != 200 {
				return "", fmt.Errorf("answer %d %s", a.status, a.raw)
			}
			ident, _ := m["order_identifier"].(string)
			return ident, nil
		})
	}
	ready.Wait()
	close(start)
	var ident string
	for range n {
		p := <-out
		switch {
		case p.err != nil:
			t.Errorf("%s: %v", p.name, p.err)
		case len(p.ident) != 10:
			t.Errorf("%s: order identifier %q", p.name, p.ident)
		case ident == "":
			ident = p.ident
		case p.ident != ident:
			t.Errorf("%s: order %q, another party's %q", p.name, p.ident, ident)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Each webhook delivery ran its own path to the end: its event is
	// recorded with the order.
	for _, ev := range eventIDs {
		if n := count(t, e.db, `SELECT count(*) FROM stripe_webhook_event WHERE event_id = $1 AND outcome = 'processed: ' || $2`, ev, ident); n != 1 {
			t.Errorf("event %s: recorded %d times with order %s", ev, n, ident)
		}
	}
	return ident
}

// TestFullPurchase: anonymous add, sign-in merge, shipping, discount,
// Checkout Session, then the success redirect and the webhook delivered
// concurrently, twice each, in both orders: one order, one payment, one
// outbox mail, an empty cart.
func TestFullPurchase(t *testing.T) {
	t.Parallel()
	d := newStripeDouble(t)
	e := newEnv(t, envOptions{stripeBase: d.srv.URL})
	account := newMember(t, e.db, "buyer1", "buyer@example.com")

	b := e.browser(t, hostA)
	b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "2"))
	b.post("/order/cart-add-product-sku", form("sku_id", "6", "quantity", "1"))
	b.login(account)
	if b.cookie("an_ct") != "" {
		t.Error("an_ct not expired by sign-in")
	}
	if got := b.get("/order/cart-items").raw; !strings.Contains(got, `"sku_id":6`) {
		t.Fatalf("merged cart lacks the anonymous lines: %s", got)
	}
	b.post("/order/cart-update-shipping-method", form("shipping_method_identifier", "USPSRetailGround"))
	tot := b.post("/order/cart-apply-discount-code", form("discount_code_id", "WELCOME10")).raw
	// 2×3.50 + 3.99 = 10.99; 10% = 1.10 (half up); + 9.56 = 19.45
	if !strings.Contains(tot, `"item_subtotal":"10.99","item_discount":"1.10","shipping_subtotal":"9.56","shipping_discount":0,"cart_total":"19.45"`) {
		t.Fatalf("totals: %s", tot)
	}
	cs := b.post("/order/create-checkout-session", form("agree_to_terms_of_sale", "true", "newsletter", "", "save_defaults", "false")).json(t)
	if cs["create_checkout_session"] != "success" {
		t.Fatalf("create session: %v", cs)
	}
	id := cs["session_id"].(string)
	d.mu.Lock()
	sess := *d.sess[id]
	d.mu.Unlock()
	if sess.AmountTotal != 1945 || sess.Email != "buyer@example.com" || sess.Form.Get("allow_promotion_codes") != "true" ||
		sess.Form.Get("success_url") != frontend+"/checkout/success?session_id={CHECKOUT_SESSION_ID}" {
		t.Errorf("session sent to Stripe: total %d email %q form %v", sess.AmountTotal, sess.Email, sess.Form)
	}
	// Same cart, same click: the idempotency key gives the same request.
	if again := b.post("/order/create-checkout-session", nil).json(t); again["create_checkout_session"] != "success" {
		t.Errorf("second create: %v", again)
	}

	if a := b.get("/order/checkout-session-success?session_id=" + id).json(t); a["errors"].(map[string]any)["error"] != "payment-not-completed" {
		t.Errorf("unpaid success: %v", a)
	}
	d.pay(id)

	// Success redirects and webhook deliveries (each event delivered
	// twice, as Stripe may), all at once.
	ident := raceOrder(t, e, d, b, id, 4, "evt_0", "evt_1", "evt_0", "evt_1")
	checks := []struct {
		sql  string
		want int
	}{
		{`SELECT count(*) FROM customer_order`, 1},
		{`SELECT count(*) FROM order_payment WHERE stripe_payment_intent_id = 'pi_' || $1`, 1},
		{`SELECT count(*) FROM email_outbox WHERE kind = 'order_confirmation' AND to_addresses = '["buyer@example.com"]'`, 1},
		{`SELECT count(*) FROM cart`, 0},
		{`SELECT count(*) FROM order_sku`, 2},
		{`SELECT count(*) FROM order_status_history`, 1},
		{`SELECT count(*) FROM order_shipping_method`, 1},
		{`SELECT count(*) FROM order_discount WHERE applied`, 1},
		{`SELECT count(*) FROM customer_order WHERE stripe_checkout_session_id = $1 AND order_total = 19.45 AND item_discount_amt = 1.10 AND stripe_amount_total = 19.45 AND NOT payment_amount_mismatch`, 1},
		{`SELECT count(*) FROM stripe_webhook_event WHERE outcome LIKE 'processed: %'`, 2},
	}
	for _, c := range checks {
		var args []any
		if strings.Contains(c.sql, "$1") {
			args = []any{id}
		}
		if n := count(t, e.db, c.sql, args...); n != c.want {
			t.Errorf("%s: %d, want %d", c.sql, n, c.want)
		}
	}
	var body string
	_ = e.db.QueryRow(t.Context(), `SELECT body_text FROM email_outbox`).Scan(&body)
	if !strings.Contains(body, "Order Identifier: "+ident) || !strings.Contains(body, "Order Total: $19.45") || !strings.Contains(body, "&mb_cd=buyer1mbcd") {
		t.Errorf("confirmation body: %q", body)
	}

	// The order is the buyer's: visible to them, not to others.
	detail := b.get("/order/" + ident).raw
	for _, want := range []string{`"order_detail":"success"`, `"order_total":"19.45"`, `"item_discount":"1.10"`, `"country_code":"US"`, `"card_brand":null`, `"identifier":"accepted"`} {
		if !strings.Contains(detail, want) {
			t.Errorf("order detail lacks %s: %s", want, detail)
		}
	}
	if a := e.browser(t, hostA).get("/order/" + ident).raw; !strings.Contains(a, "log-in-required-to-view-order") {
		t.Errorf("anonymous view of a member order: %s", a)
	}
	other := e.browser(t, hostA)
	other.login(newMember(t, e.db, "someoneelse", "else@example.com"))
	if a := other.get("/order/" + ident).raw; !strings.Contains(a, "order-not-in-account") {
		t.Errorf("other member's view: %s", a)
	}

	// A second purchase with a promotion code: Stripe charged less, the
	// order keeps our total and is flagged.
	b.post("/order/cart-add-product-sku", form("sku_id", "7", "quantity", "1"))
	cs2 := b.post("/order/create-checkout-session", nil).json(t)
	id2 := cs2["session_id"].(string)
	d.mu.Lock()
	d.sess[id2].AmountTotal -= 500
	d.sess[id2].Paid = true
	d.mu.Unlock()
	if a := b.get("/order/checkout-session-success?session_id=" + id2).json(t); a["checkout_session_success"] != "success" {
		t.Fatalf("second order: %v", a)
	}
	if n := count(t, e.db, `SELECT count(*) FROM customer_order WHERE stripe_checkout_session_id = $1 AND payment_amount_mismatch AND order_total = 14.99 AND stripe_amount_total = 9.99`, id2); n != 1 {
		t.Error("amount mismatch not flagged")
	}
}

// TestWebhookRejects: a delivery with a wrong signature, an old timestamp or
// another tenant's secret is refused with 400 and writes nothing. A good
// delivery for a session whose cart was deleted makes its order from the
// session's snapshot, and is ignored (200) only for a session without one.
func TestWebhookRejects(t *testing.T) {
	t.Parallel()
	d := newStripeDouble(t)
	e := newEnv(t, envOptions{stripeBase: d.srv.URL})
	b := e.browser(t, hostA)
	b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
	cs := b.post("/order/create-checkout-session", form("anonymous_email_address", "guest@example.com")).json(t)
	id := cs["session_id"].(string)
	d.pay(id)
	now := time.Now()
	body, good := d.event(t, id, "evt_good", e.whA, now)
	_, old := d.event(t, id, "evt_good", e.whA, now.Add(-10*time.Minute))
	_, otherTenant := d.event(t, id, "evt_good", e.whB, now)
	tests := []struct {
		name   string
		host   string
		body   []byte
		sig    string
		status int
		want   string
	}{
		{"no signature", hostA, body, "", 400, `{"error":"invalid-signature"}`},
		{"wrong signature", hostA, body, "t=1,v1=00", 400, `{"error":"invalid-signature"}`},
		{"old timestamp", hostA, body, old, 400, `{"error":"invalid-signature"}`},
		{"another tenant's secret", hostA, body, otherTenant, 400, `{"error":"invalid-signature"}`},
		{"right signature, wrong tenant", hostB, body, good, 400, `{"error":"invalid-signature"}`},
		{"tampered body", hostA, bytes.Replace(body, []byte(`"paid"`), []byte(`"unpaid"`), 1), good, 400, `{"error":"invalid-signature"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.deliver(t, tc.host, tc.body, tc.sig)
			if a.status != tc.status || a.raw != tc.want {
				t.Errorf("got %d %s, want %d %s", a.status, a.raw, tc.status, tc.want)
			}
		})
	}
	for _, db := range []struct {
		name string
		n    int
	}{{"alpha", count(t, e.db, `SELECT (SELECT count(*) FROM customer_order) + (SELECT count(*) FROM stripe_webhook_event) + (SELECT count(*) FROM email_outbox)`)},
		{"beta", count(t, e.dbB, `SELECT (SELECT count(*) FROM customer_order) + (SELECT count(*) FROM stripe_webhook_event) + (SELECT count(*) FROM email_outbox)`)}} {
		if db.n != 0 {
			t.Errorf("%s: %d rows written by refused deliveries", db.name, db.n)
		}
	}
	// The good delivery makes the guest order (a prospect order, viewable
	// by its identifier) and a redelivery is harmless.
	first := e.deliver(t, hostA, body, good)
	again := e.deliver(t, hostA, body, good)
	if first.status != 200 || again.status != 200 || first.json(t)["order_identifier"] != again.json(t)["order_identifier"] {
		t.Fatalf("deliveries: %s / %s", first.raw, again.raw)
	}
	ident := first.json(t)["order_identifier"].(string)
	if a := e.browser(t, hostA).get("/order/" + ident).raw; !strings.Contains(a, `"order_detail":"success"`) {
		t.Errorf("guest order view: %s", a)
	}
	if n := count(t, e.db, `SELECT count(*) FROM prospect WHERE email = 'guest@example.com' AND email_unsubscribed AND pr_cd IS NOT NULL`); n != 1 {
		t.Error("prospect not recorded")
	}
	// The cart is deleted (another tab) before the payment's event arrives.
	// A session with a snapshot was paid for what the snapshot holds: it
	// becomes exactly one order. One created before snapshots were recorded
	// can never apply: 200, logged, nothing written.
	goneTests := []struct {
		name, email string
		recorded    bool
	}{
		{"session recorded", "gone-recorded@example.com", true},
		{"session not recorded", "gone-unrecorded@example.com", false},
	}
	for i, tc := range goneTests {
		t.Run("cart gone, "+tc.name, func(t *testing.T) {
			b := e.browser(t, hostA)
			b.post("/order/cart-add-product-sku", form("sku_id", "6", "quantity", "1"))
			cs := b.post("/order/create-checkout-session", form("anonymous_email_address", tc.email)).json(t)
			id, _ := cs["session_id"].(string)
			if id == "" {
				t.Fatalf("create session: %v", cs)
			}
			if !tc.recorded {
				if _, err := e.db.Exec(t.Context(), `DELETE FROM checkout_session WHERE id = $1`, id); err != nil {
					t.Fatal(err)
				}
			}
			d.pay(id)
			if a := b.post("/order/cart-delete-cart", nil).raw; !strings.Contains(a, `"cart_delete_cart":"success"`) {
				t.Fatalf("delete cart: %s", a)
			}
			body, sig := d.event(t, id, fmt.Sprintf("evt_gone_%d", i), e.whA, time.Now())
			first := e.deliver(t, hostA, body, sig)
			again := e.deliver(t, hostA, body, sig)
			redirect := b.get("/order/checkout-session-success?session_id=" + id).json(t)
			orders := count(t, e.db, `SELECT count(*) FROM customer_order WHERE stripe_checkout_session_id = $1`, id)
			payments := count(t, e.db, `SELECT count(*) FROM order_payment WHERE stripe_payment_intent_id = 'pi_' || $1`, id)
			mails := count(t, e.db, `SELECT count(*) FROM email_outbox WHERE kind = 'order_confirmation' AND to_addresses = $1::jsonb`, `["`+tc.email+`"]`)
			if !tc.recorded {
				if first.status != 200 || first.raw != `{"ignored":"cart-not-found","received":true}` || again.raw != first.raw {
					t.Errorf("deliveries: %d %s / %s", first.status, first.raw, again.raw)
				}
				if errs, _ := redirect["errors"].(map[string]any); errs["error"] != "cart-not-found" {
					t.Errorf("success redirect: %v", redirect)
				}
				if orders+payments+mails != 0 {
					t.Errorf("%d orders, %d payments, %d mails for a session without a snapshot", orders, payments, mails)
				}
				return
			}
			ident, _ := first.json(t)["order_identifier"].(string)
			if first.status != 200 || len(ident) != 10 || again.json(t)["order_identifier"] != ident {
				t.Fatalf("deliveries: %d %s / %s", first.status, first.raw, again.raw)
			}
			if redirect["checkout_session_success"] != "success" || redirect["order_identifier"] != ident {
				t.Errorf("success redirect: %v", redirect)
			}
			if orders != 1 || payments != 1 || mails != 1 {
				t.Errorf("%d orders, %d payments, %d mails, want one each", orders, payments, mails)
			}
			if n := count(t, e.db, `SELECT count(*) FROM customer_order o JOIN prospect p ON p.id = o.prospect_id
				JOIN order_sku s ON s.order_id = o.id
				WHERE o.identifier = $1 AND o.member_id IS NULL AND p.email = $2 AND s.sku_id = 6 AND s.quantity = 1
				AND o.order_total = 3.99 AND NOT o.payment_amount_mismatch`, ident, tc.email); n != 1 {
				t.Error("the order is not the snapshot's, made for the guest's e-mail as a prospect")
			}
		})
	}
}

// Two tenants may share one Stripe account (a business running two forks):
// each webhook endpoint then receives the other's events, and a session id
// of one can be replayed on the other's success page. Cart ids are per
// database, so the other tenant's cart_id names some cart here; the session
// must never become an order anywhere but where it was created.
func TestSessionOfAnotherTenantMakesNoOrder(t *testing.T) {
	t.Parallel()
	d := newStripeDouble(t)
	e := newEnv(t, envOptions{stripeBase: d.srv.URL})
	// alpha's cart gets the same id as beta's (both databases are new).
	alpha := e.browser(t, hostA)
	alpha.post("/order/cart-add-product-sku", form("sku_id", "6", "quantity", "3"))
	beta := e.browser(t, hostB)
	beta.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
	if a, b := count(t, e.db, `SELECT max(id) FROM cart`), count(t, e.dbB, `SELECT max(id) FROM cart`); a != b {
		t.Fatalf("cart ids differ (alpha %d, beta %d); the test needs them equal", a, b)
	}
	cs := beta.post("/order/create-checkout-session", form("anonymous_email_address", "guest@example.com")).json(t)
	id, _ := cs["session_id"].(string)
	if id == "" {
		t.Fatalf("create session on beta: %v", cs)
	}
	d.pay(id)

	t.Run("webhook", func(t *testing.T) {
		body, sig := d.event(t, id, "evt_beta_on_alpha", e.whA, time.Now())
		a := e.deliver(t, hostA, body, sig)
		if a.status != 200 || strings.Contains(a.raw, "order_identifier") {
			t.Errorf("beta's event on alpha: %d %s, want 200 without an order", a.status, a.raw)
		}
	})
	t.Run("success page", func(t *testing.T) {
		a := alpha.get("/order/checkout-session-success?session_id=" + id).json(t)
		if a["checkout_session_success"] == "success" {
			t.Errorf("beta's session on alpha's success page: %v", a)
		}
	})
	if n := count(t, e.db, `SELECT count(*) FROM customer_order`); n != 0 {
		t.Errorf("alpha has %d orders made from beta's session", n)
	}
	if n := count(t, e.db, `SELECT count(*) FROM cart`); n != 1 {
		t.Errorf("alpha's cart was consumed by beta's session (%d carts left)", n)
	}
	// On its own tenant the session still becomes the order.
	if a := beta.get("/order/checkout-session-success?session_id=" + id).json(t); a["checkout_session_success"] != "success" {
		t.Errorf("beta's own success page: %v", a)
	}
}
