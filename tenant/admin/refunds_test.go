package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// refundDouble is the smallest Stripe double for what stripe-mock cannot
// do: keep state. It makes refunds (the same one again for the same
// Idempotency-Key, never more than the charge) and lists them by charge or
// payment intent; the real stripe-go client is on the other side. Before
// it answers a new refund it calls onRefund, which a test uses to order
// the answer and the webhook.
type refundDouble struct {
	mu       sync.Mutex
	charged  map[string]int64 // payment intent → cents
	refunds  []map[string]any
	byKey    map[string]map[string]any
	onRefund func(refund map[string]any)
	srv      *httptest.Server
}

func newRefundDouble(t *testing.T) *refundDouble {
	d := &refundDouble{charged: map[string]int64{}, byKey: map[string]map[string]any{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func stripeErr(w http.ResponseWriter, msg string) {
	w.WriteHeader(400)
	_, _ = fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":%q}}`, msg)
}

func (d *refundDouble) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/refunds":
		_ = r.ParseForm()
		pi := r.PostForm.Get("payment_intent")
		amount, _ := strconv.ParseInt(r.PostForm.Get("amount"), 10, 64)
		key := r.Header.Get("Idempotency-Key")
		d.mu.Lock()
		if re := d.byKey[key]; key != "" && re != nil {
			d.mu.Unlock()
			_ = json.NewEncoder(w).Encode(re)
			return
		}
		charged, ok := d.charged[pi]
		var done int64
		for _, re := range d.refunds {
			if re["payment_intent"] == pi {
				done += re["amount"].(int64)
			}
		}
		if !ok || amount <= 0 || done+amount > charged {
			d.mu.Unlock()
			stripeErr(w, "Refund amount is greater than the unrefunded amount on the charge")
			return
		}
		re := map[string]any{"id": fmt.Sprintf("re_double_%d", len(d.refunds)+1), "object": "refund", "amount": amount, "currency": "usd",
			"payment_intent": pi, "charge": "ch_" + pi, "status": "succeeded",
			"metadata": map[string]string{"swa_refund_id": r.PostForm.Get("metadata[swa_refund_id]")}}
		d.refunds = append(d.refunds, re)
		d.byKey[key] = re
		hook := d.onRefund
		d.mu.Unlock()
		if hook != nil {
			hook(re)
		}
		_ = json.NewEncoder(w).Encode(re)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/refunds":
		ch, pi := r.URL.Query().Get("charge"), r.URL.Query().Get("payment_intent")
		d.mu.Lock()
		list := []map[string]any{}
		for _, re := range d.refunds {
			if (ch != "" && re["charge"] == ch) || (pi != "" && re["payment_intent"] == pi) {
				list = append(list, re)
			}
		}
		d.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": list, "has_more": false, "url": "/v1/refunds"})
	default:
		stripeErr(w, "unknown path "+r.URL.Path)
	}
}

// chargeRefunded is a signed charge.refunded delivery for the payment
// intent, with the refunds made so far.
func (d *refundDouble) chargeRefunded(pi, secret string) ([]byte, string) {
	d.mu.Lock()
	var list []map[string]any
	var done int64
	for _, re := range d.refunds {
		if re["payment_intent"] == pi {
			list = append(list, re)
			done += re["amount"].(int64)
		}
	}
	charge := map[string]any{"id": "ch_" + pi, "object": "charge", "payment_intent": pi, "amount": d.charged[pi], "amount_refunded": done,
		"refunded": done == d.charged[pi], "refunds": map[string]any{"object": "list", "data": list, "has_more": false}}
	d.mu.Unlock()
	obj, _ := json.Marshal(charge)
	body := []byte(fmt.Sprintf(`{"id":"evt_%s","object":"event","api_version":"2023-10-16","type":"charge.refunded","data":{"object":%s}}`,
		pgtest.RandomName(""), obj))
	return body, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()}).Header
}

// seedOrder writes a paid Stripe order as the shop makes them (the
// shop's own tests cover making it) and returns its payment intent.
func seedOrder(t testing.TB, db *pgxpool.Pool, ident, email string, total string) string {
	t.Helper()
	pi := "pi_" + ident
	_, err := db.Exec(context.Background(), `
WITH p AS (INSERT INTO order_payment (email, payment_type, stripe_payment_intent_id) VALUES ($2, 'stripe', $3) RETURNING id),
     sa AS (INSERT INTO order_shipping_address (name, address_line1, city, state, zip, country, country_code)
            VALUES ('John Doe', '1 Main St', 'Springfield', 'IL', '62701', 'United States', 'US') RETURNING id),
     o AS (INSERT INTO customer_order (identifier, payment_id, shipping_address_id, item_subtotal, order_total, stripe_amount_total, agreed_with_terms_of_sale)
           SELECT $1, p.id, sa.id, $4::numeric, $4::numeric, $4::numeric, true FROM p, sa RETURNING id),
     l AS (INSERT INTO order_sku (order_id, sku_id, quantity, price_each) SELECT o.id, 1, 1, $4::numeric FROM o),
     m AS (INSERT INTO order_shipping_method (order_id, shipping_method_id) SELECT o.id, 2 FROM o)
INSERT INTO order_status_history (order_id, order_status_id) SELECT o.id, st.id FROM o, order_status st WHERE st.identifier = 'accepted'`,
		ident, email, pi, total)
	if err != nil {
		t.Fatal(err)
	}
	return pi
}

type hookResult struct {
	who    string
	status int
	raw    string // a transport error
}

// chargeRefunded delivers Stripe's charge.refunded webhook for the payment
// intent to the tenant of host, with the refunds the double made so far.
func (f *fixture) chargeRefunded(d *refundDouble, host, pi string) hookResult {
	tn := f.a
	if host == hostB {
		tn = f.b
	}
	body, sig := d.chargeRefunded(pi, f.whsec[tn.ID])
	req := httptest.NewRequest(http.MethodPost, "http://"+host+"/order/stripe-webhook", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sig)
	res, err := f.app.Test(req, -1)
	if err != nil {
		return hookResult{who: "webhook", raw: err.Error()}
	}
	res.Body.Close()
	return hookResult{who: "webhook", status: res.StatusCode}
}

// TestRefundRacesWebhook: a refund and its charge.refunded webhook, the
// webhook landing before the API's answer and after it, twice each, and
// both let go at once from a start barrier: one refund record each time,
// the order's state right (refunded only when refunded in full), and the
// amounts never over the charge.
func TestRefundRacesWebhook(t *testing.T) {
	t.Parallel()
	d := newRefundDouble(t)
	f := newFixture(t, fixtureOptions{stripeBase: d.srv.URL})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	db := f.dbs[f.a.ID]
	webhookNow := func(pi string) hookResult { return f.chargeRefunded(d, hostA, pi) }
	for round, order := range []string{"webhook-first", "answer-first", "together", "webhook-first", "answer-first", "together"} {
		ident := fmt.Sprintf("Race%d%s", round, pgtest.RandomName("")[:4])
		pi := seedOrder(t, db, ident, "buyer@example.com", "30.00")
		d.mu.Lock()
		d.charged[pi] = 3000
		d.mu.Unlock()
		amount := "30.00"
		if round%2 == 1 {
			amount = "12.25"
		}
		start := make(chan struct{})
		results := make(chan hookResult, 2)
		made := make(chan struct{})
		answered := make(chan struct{})
		var once sync.Once
		d.mu.Lock()
		d.onRefund = func(map[string]any) {
			once.Do(func() { close(made) })
			if order == "webhook-first" {
				// The answer waits until the webhook has been handled.
				r := <-results
				results <- r
			}
		}
		d.mu.Unlock()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the staff member's refund
			defer wg.Done()
			<-start
			c := f.client(hostA)
			c.t = nil
			c.cookies, c.csrf = owner.cookies, owner.csrf
			b, _ := json.Marshal(map[string]any{"amount": amount, "reason": "damaged"})
			req := httptest.NewRequest(http.MethodPost, "http://"+hostA+api+"/orders/"+ident+"/refunds", strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "application/json")
			c.prepare(req, http.MethodPost)
			res, err := f.app.Test(req, -1)
			close(answered)
			if err != nil {
				results <- hookResult{who: "api", raw: err.Error()}
				return
			}
			res.Body.Close()
			results <- hookResult{who: "api", status: res.StatusCode}
		}()
		go func() { // Stripe's webhook
			defer wg.Done()
			<-start
			<-made
			if order == "answer-first" {
				<-answered
			}
			results <- webhookNow(pi)
		}()
		close(start)
		wg.Wait()
		close(results)
		seen := map[string]hookResult{}
		for r := range results {
			seen[r.who] = r
		}
		if seen["api"].status != 201 || seen["webhook"].status != 200 {
			t.Fatalf("round %d (%s): api %+v, webhook %+v", round, order, seen["api"], seen["webhook"])
		}
		var n int
		var sum, stripeIDs string
		if err := db.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(r.amount), 0)::text, string_agg(coalesce(r.stripe_refund_id, '-') || ':' || r.status, ',')
FROM refund r JOIN customer_order o ON o.id = r.order_id WHERE o.identifier = $1`, ident).Scan(&n, &sum, &stripeIDs); err != nil {
			t.Fatal(err)
		}
		if n != 1 || sum != amount || !strings.HasPrefix(stripeIDs, "re_double_") || !strings.HasSuffix(stripeIDs, ":succeeded") {
			t.Fatalf("round %d (%s): %d refund rows, sum %s, %s; want one of %s, succeeded", round, order, n, sum, stripeIDs, amount)
		}
		detail := owner.must(200, "GET", api+"/orders/"+ident, nil)
		wantStatus := "refunded"
		if amount != "30.00" {
			wantStatus = "accepted"
		}
		if detail["status"] != wantStatus || detail["refunded"] != strings.TrimSuffix(strings.TrimSuffix(amount, "0"), ".0") && detail["refunded"] != amount {
			t.Fatalf("round %d (%s): order %s", round, order, owner.raw)
		}
		// A redelivery of the webhook changes nothing.
		if r := webhookNow(pi); r.status != 200 {
			t.Fatalf("redelivery = %+v", r)
		}
		if err := db.QueryRow(context.Background(), `SELECT count(*) FROM refund r JOIN customer_order o ON o.id = r.order_id WHERE o.identifier = $1`, ident).Scan(&n); err != nil || n != 1 {
			t.Fatalf("round %d: %d rows after a redelivery", round, n)
		}
	}
}

// TestRefundNeverOverCharge: two refunds of 20.00 of a 30.00 charge at
// once: one is made, the other refused before Stripe is asked; a refund
// above what is left, and bad amounts, are refused naming the field.
func TestRefundNeverOverCharge(t *testing.T) {
	t.Parallel()
	d := newRefundDouble(t)
	f := newFixture(t, fixtureOptions{stripeBase: d.srv.URL})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	pi := seedOrder(t, f.dbs[f.a.ID], "Over1", "buyer@example.com", "30.00")
	d.mu.Lock()
	d.charged[pi] = 3000
	d.mu.Unlock()
	start := make(chan struct{})
	statuses := make(chan int, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			b, _ := json.Marshal(map[string]any{"amount": "20.00"})
			req := httptest.NewRequest(http.MethodPost, "http://"+hostA+api+"/orders/Over1/refunds", strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "application/json")
			owner.prepare(req, http.MethodPost)
			res, err := f.app.Test(req, -1)
			if err != nil {
				statuses <- 0
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	if got[201] != 1 || got[409] != 1 {
		t.Fatalf("statuses %v, want one 201 and one 409", got)
	}
	owner.refused(409, "refund-exceeds-charge", "amount", "POST", api+"/orders/Over1/refunds", map[string]any{"amount": "10.01"})
	owner.refused(400, "invalid", "amount", "POST", api+"/orders/Over1/refunds", map[string]any{"amount": "0"})
	owner.refused(400, "invalid", "amount", "POST", api+"/orders/Over1/refunds", map[string]any{"amount": "x"})
	owner.refused(400, "required", "amount", "POST", api+"/orders/Over1/refunds", map[string]any{})
	owner.refused(404, "not-found", "", "POST", api+"/orders/Nope1/refunds", map[string]any{"amount": "1"})
	// The rest, with an Idempotency-Key sent twice: one refund.
	owner.header["Idempotency-Key"] = "rest-of-it"
	owner.must(201, "POST", api+"/orders/Over1/refunds", map[string]any{"amount": "10.00"})
	out := owner.must(201, "POST", api+"/orders/Over1/refunds", map[string]any{"amount": "10.00"})
	delete(owner.header, "Idempotency-Key")
	if out["status"] != "refunded" || out["refundable"] != "0" || len(out["refunds"].([]any)) != 2 {
		t.Fatalf("order = %s", owner.raw)
	}
	d.mu.Lock()
	n := len(d.refunds)
	d.mu.Unlock()
	if n != 2 {
		t.Fatalf("stripe made %d refunds, want 2", n)
	}
	// Tenants sharing a Stripe account each get every event: tenant b
	// answers a's charge.refunded 200 and records no refund.
	hook := f.chargeRefunded(d, hostB, pi)
	var rows int
	if err := f.dbs[f.b.ID].QueryRow(context.Background(), `SELECT count(*) FROM refund`).Scan(&rows); err != nil || hook.status != 200 || rows != 0 {
		t.Fatalf("tenant b: webhook %+v, %d refund rows, %v", hook, rows, err)
	}
}
