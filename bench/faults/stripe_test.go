package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// stripeState is the smallest double for what stripe-mock does not do:
// keep state. stripe-mock answers every retrieve with one unpaid fixture,
// so a webhook, which makes its order from the session as Stripe has it,
// could never make one. Session creation is forwarded to stripe-mock
// (which checks the parameters against Stripe's API description); the
// double remembers each session it made, lets the test mark it paid and
// serves it back on retrieve. The data plane's real stripe-go client
// reaches it through the test's proxy.
type stripeState struct {
	mock string
	mu   sync.Mutex
	n    int
	sess map[string]map[string]any
	srv  *httptest.Server
}

func newStripeState(t *testing.T) *stripeState {
	d := &stripeState{mock: pgtest.Service(t, "SWA_STRIPE_API_BASE"), sess: map[string]map[string]any{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *stripeState) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	id, retrieve := strings.CutPrefix(r.URL.Path, "/v1/checkout/sessions/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, d.mock+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
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
		meta := map[string]string{}
		for k := range f {
			if name, ok := strings.CutPrefix(k, "metadata["); ok {
				meta[strings.TrimSuffix(name, "]")] = f.Get(k)
			}
		}
		email := f.Get("customer_email")
		addr := map[string]any{"line1": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "62701", "country": "US"}
		d.mu.Lock()
		d.n++
		id := fmt.Sprintf("cs_test_faults_%d", d.n)
		s := map[string]any{
			"id": id, "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/" + id,
			"payment_status": "unpaid", "status": "open", "amount_total": total, "currency": "usd",
			"metadata": meta, "customer_email": email, "payment_intent": "pi_" + id,
			"customer_details": map[string]any{"name": "Jane Doe", "email": email, "address": addr},
			"shipping_details": map[string]any{"name": "Jane Doe", "address": addr},
		}
		d.sess[id] = s
		raw, _ := json.Marshal(s)
		d.mu.Unlock()
		_, _ = w.Write(raw)
	case r.Method == http.MethodGet && retrieve:
		d.mu.Lock()
		s := d.sess[id]
		raw, _ := json.Marshal(s)
		d.mu.Unlock()
		if s == nil {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"No such checkout.session"}}`))
			return
		}
		_, _ = w.Write(raw)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"unknown path"}}`))
	}
}

// pay marks a session paid and returns it as a webhook event's object.
func (d *stripeState) pay(t *testing.T, id string) []byte {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sess[id]
	if s == nil {
		t.Fatalf("no session %s", id)
	}
	s["payment_status"], s["status"] = "paid", "complete"
	raw, _ := json.Marshal(s)
	return raw
}

// webhookAnswer is a webhook delivery's answer.
type webhookAnswer struct {
	status int
	body   map[string]any
	err    error
}

// deliverWebhook posts a signed event body to the tenant's webhook.
func (p *plane) deliverWebhook(slug string, body []byte) webhookAnswer {
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: webhookSecret(slug), Timestamp: time.Now()}).Header
	req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+"/order/stripe-webhook", bytes.NewReader(body))
	if err != nil {
		return webhookAnswer{err: err}
	}
	req.Host = host(slug)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sig)
	resp, err := client.Do(req)
	if err != nil {
		return webhookAnswer{err: err}
	}
	defer resp.Body.Close()
	a := webhookAnswer{status: resp.StatusCode}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a.body); err != nil {
		a.err = fmt.Errorf("%d, not JSON: %q", resp.StatusCode, raw)
	}
	return a
}

// TestStripeSlowThenDown puts a proxy in front of Stripe (stripe-mock,
// behind the smallest double that keeps sessions; see stripeState) with
// a Stripe call timeout of 1 s. With +2 s latency on every answer, then
// with the proxy stopped, create-checkout-session answers the contract's
// error (200, create_checkout_session "error", errors.error
// "unexpected-error" with a description) within the Stripe timeout plus a
// margin, never 500, and writes neither a checkout record nor an order.
// With Stripe healthy again the same cart checks out, and the session's
// checkout.session.completed event, delivered twice, makes exactly one
// order.
func TestStripeSlowThenDown(t *testing.T) {
	t.Parallel()
	const (
		stripeTimeout = time.Second
		deadline      = 5 * time.Second
		// margin absorbs a retry's pause and a loaded machine; it is far
		// below the request deadline.
		margin = 2 * time.Second
	)
	d := newStripeState(t)
	proxy := newProxy(t, "stripe", strings.TrimPrefix(d.srv.URL, "http://"))
	p := newPlane(t, planeOptions{
		Tenants: []string{"store"}, Accounts: true, RequestTimeout: deadline,
		StripeBase: "http://" + proxy.Listen, StripeTimeout: stripeTimeout,
	})
	buyer := &visitor{p: p, slug: "store", cookies: map[string]string{}}
	buyer.do(t, "GET", "/user/token", nil)
	if st, body := buyer.do(t, "POST", "/order/cart-add-product-sku", url.Values{"sku_id": {"1"}, "quantity": {"2"}}); st != 200 || body["cart_add_product_sku"] != "success" {
		t.Fatalf("add to cart: %d %v", st, body)
	}
	checkout := func() (int, map[string]any, time.Duration) {
		start := time.Now()
		st, body := buyer.do(t, "POST", "/order/create-checkout-session", url.Values{"anonymous_email_address": {"buyer@example.com"}})
		return st, body, time.Since(start)
	}
	db := p.tenantDB(t, "store")
	records := func() (sessions, orders int) {
		if err := db.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM checkout_session), (SELECT count(*) FROM customer_order)`).Scan(&sessions, &orders); err != nil {
			t.Fatal(err)
		}
		return sessions, orders
	}
	const (
		timedOut    = "Payments did not answer in time. Please try again."
		unavailable = "Payments are not available at the moment."
	)
	failing := func(name string, wantDesc ...string) {
		t.Helper()
		st, body, took := checkout()
		t.Logf("%s: create-checkout-session answered %d in %v: %v", name, st, took.Round(time.Millisecond), body)
		errs, _ := body["errors"].(map[string]any)
		desc, _ := errs["description"].(string)
		if st != 200 || body["create_checkout_session"] != "error" || errs["error"] != "unexpected-error" || !slices.Contains(wantDesc, desc) {
			t.Errorf("%s: create-checkout-session %d %v, want the contract's unexpected-error with one of %q", name, st, body, wantDesc)
		}
		if body["order-api-version"] != "0.0.1" {
			t.Errorf("%s: answer without the order API version: %v", name, body)
		}
		if took > stripeTimeout+margin {
			t.Errorf("%s: answered after %v (Stripe timeout %v, request deadline %v)", name, took, stripeTimeout, deadline)
		}
		if s, o := records(); s != 0 || o != 0 {
			t.Errorf("%s: %d checkout records and %d orders written for a session Stripe never made", name, s, o)
		}
	}

	addToxic(t, proxy, `{"name":"lat","type":"latency","stream":"downstream","attributes":{"latency":2000}}`)
	failing("Stripe +2s", timedOut)
	if err := proxy.Toxics.RemoveToxic(t.Context(), "lat"); err != nil {
		t.Fatal(err)
	}
	proxy.Stop()
	// A refused connection is retried (stripe-go, MaxNetworkRetries) until
	// the call's bound ends, so either answer is right here.
	failing("Stripe down", unavailable, timedOut)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}

	st, body, took := checkout()
	id, _ := body["session_id"].(string)
	t.Logf("Stripe back: create-checkout-session answered %d in %v", st, took.Round(time.Millisecond))
	if st != 200 || body["create_checkout_session"] != "success" || id == "" {
		t.Fatalf("checkout with Stripe back: %d %v", st, body)
	}
	event := []byte(`{"id":"evt_faults_1","object":"event","api_version":"2025-11-17.clover","type":"checkout.session.completed","data":{"object":` +
		string(d.pay(t, id)) + `}}`)
	var ident string
	for i := range 2 {
		a := p.deliverWebhook("store", event)
		if a.err != nil || a.status != 200 {
			t.Fatalf("webhook delivery %d: %d %v %v", i, a.status, a.body, a.err)
		}
		got, _ := a.body["order_identifier"].(string)
		if got == "" || (ident != "" && got != ident) {
			t.Errorf("webhook delivery %d: order %q (first delivery's %q)", i, got, ident)
		}
		ident = got
	}
	if s, o := records(); s != 1 || o != 1 {
		t.Errorf("after the webhook delivered twice: %d checkout records and %d orders, want 1 and 1", s, o)
	}
	var n int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM customer_order WHERE identifier = $1 AND stripe_checkout_session_id = $2`, ident, id).Scan(&n); err != nil || n != 1 {
		t.Errorf("order %s of session %s: %d rows, %v", ident, id, n, err)
	}
}
