package shop_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// slowStripe is the smallest double for the one thing stripe-mock cannot
// do: be slow. It forwards every request to stripe-mock, except that while
// stalling, a request made with the stalled tenant's secret key is held
// until its client gives up; each held request is announced on reached.
// The real stripe-go client is on the other side.
type slowStripe struct {
	stallKey string
	stalling atomic.Bool
	held     atomic.Int32
	reached  chan struct{}
	done     chan struct{}
	proxy    *httputil.ReverseProxy
	srv      *httptest.Server
}

func newSlowStripe(t *testing.T, stallKey string) *slowStripe {
	mock, err := url.Parse(pgtest.Service(t, "SWA_STRIPE_API_BASE"))
	if err != nil {
		t.Fatal(err)
	}
	p := &slowStripe{stallKey: stallKey, reached: make(chan struct{}, 64), done: make(chan struct{}),
		proxy: httputil.NewSingleHostReverseProxy(mock)}
	p.stalling.Store(true)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	t.Cleanup(func() { close(p.done) }) // runs first: frees any held request
	return p
}

func (p *slowStripe) serve(w http.ResponseWriter, r *http.Request) {
	if p.stalling.Load() && r.Header.Get("Authorization") == "Bearer "+p.stallKey {
		p.held.Add(1)
		p.reached <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-p.done:
		}
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// result is one request's answer, sent back to the test goroutine.
type result struct {
	name    string
	a       answer
	err     error
	elapsed time.Duration
}

// TestSlowStripe: alpha's Stripe stalls. Alpha's checkouts (more of them
// than alpha's pool has connections), a success redirect and a webhook
// delivery each answer a clear contract-shaped error once the Stripe
// timeout passes, well inside any request deadline (the webhook a 500, so
// Stripe retries it), and no tenant connection is held while they wait on
// Stripe: the pool lends none out and alpha's database shows no busy
// session. Meanwhile
// beta's requests, checkout included, and alpha's own cart requests all
// answer. Once Stripe answers again, the same cart checks out and its
// session is recorded.
func TestSlowStripe(t *testing.T) {
	t.Parallel()
	const stripeTimeout = 3 * time.Second
	p := newSlowStripe(t, "sk_test_alpha")
	e := newEnv(t, envOptions{stripeBase: p.srv.URL, stripeTimeout: stripeTimeout})

	const stalled = 10 // more than the pool's 8 connections
	buyers := make([]*browser, stalled)
	for i := range buyers {
		buyers[i] = e.browser(t, hostA)
		if a := buyers[i].post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1")); !strings.Contains(a.raw, `"success"`) {
			t.Fatalf("alpha add: %s", a.raw)
		}
	}
	betaBuyer := e.browser(t, hostB)
	if a := betaBuyer.post("/order/cart-add-product-sku", form("sku_id", "6", "quantity", "2")); !strings.Contains(a.raw, `"success"`) {
		t.Fatalf("beta add: %s", a.raw)
	}

	// Alpha's requests that call Stripe: the checkouts, a success
	// redirect and a webhook delivery of a paid session.
	type stalledCall struct {
		name string
		call func() (answer, error)
		want string
	}
	const checkoutWant = `{"create_checkout_session":"error","errors":{"error":"unexpected-error","description":"Payments did not answer in time. Please try again."},"order-api-version":"0.0.1"}`
	var calls []stalledCall
	for i, b := range buyers {
		calls = append(calls, stalledCall{fmt.Sprint("alpha checkout ", i), func() (answer, error) {
			return b.try(http.MethodPost, "/order/create-checkout-session", form("anonymous_email_address", "slow@example.com"), nil)
		}, checkoutWant})
	}
	calls = append(calls, stalledCall{"alpha success redirect", func() (answer, error) {
		return buyers[0].try(http.MethodGet, "/order/checkout-session-success?session_id=cs_test_stalled", nil, nil)
	}, `{"checkout_session_success":"error","errors":{"error":"unexpected-error","description":"The payment could not be confirmed. Please try again."},"order-api-version":"0.0.1"}`})
	event := []byte(`{"id":"evt_stalled","object":"event","type":"checkout.session.completed","data":{"object":` +
		`{"id":"cs_test_stalled","object":"checkout.session","payment_status":"paid","metadata":{"cart_id":"1"}}}}`)
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: event, Secret: e.whA, Timestamp: time.Now()}).Header
	calls = append(calls, stalledCall{"alpha webhook", func() (answer, error) { return e.send(hostA, event, sig) }, `{"error":"processing-error"}`})
	wantOf := map[string]string{}
	stalledAnswers := make(chan result, len(calls))
	for _, sc := range calls {
		wantOf[sc.name] = sc.want
		go func() {
			start := time.Now()
			a, err := sc.call()
			stalledAnswers <- result{name: sc.name, a: a, err: err, elapsed: time.Since(start)}
		}()
	}
	// Barrier: every one of them is waiting on Stripe.
	for range calls {
		select {
		case <-p.reached:
		case r := <-stalledAnswers:
			t.Fatalf("%s answered before reaching Stripe: %v %d %s", r.name, r.err, r.a.status, r.a.raw)
		case <-time.After(stripeTimeout):
			t.Fatalf("only %d of %d requests reached Stripe", p.held.Load(), len(calls))
		}
	}
	if st := e.pools.Stats(); st.Acquired != 0 {
		t.Errorf("%d tenant connections lent out while every request waits on Stripe", st.Acquired)
	}
	if n := count(t, e.db, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state <> 'idle'`, e.roleA); n != 0 {
		t.Errorf("%d of alpha's database sessions busy (in a transaction?) while its requests wait on Stripe", n)
	}

	// Meanwhile, all at once: beta's shop (its checkout goes through to
	// stripe-mock) and alpha's cart.
	others := []struct {
		name, method, path string
		b                  *browser
		form               url.Values
		want               string
	}{
		{"beta checkout", http.MethodPost, "/order/create-checkout-session", betaBuyer, form("anonymous_email_address", "fast@example.com"), `"create_checkout_session":"success"`},
		{"beta totals", http.MethodGet, "/order/cart-totals", betaBuyer, nil, `"cart_total":"7.98"`},
		{"beta products", http.MethodGet, "/order/products", e.browser(t, hostB), nil, `"products_data"`},
		{"alpha totals", http.MethodGet, "/order/cart-totals", buyers[0], nil, `"cart_total":"3.50"`},
		{"alpha items", http.MethodGet, "/order/cart-items", buyers[1], nil, `"cart_found":true`},
	}
	start := make(chan struct{})
	answers := make(chan result, len(others))
	var wg sync.WaitGroup
	for _, o := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			a, err := o.b.try(o.method, o.path, o.form, nil)
			answers <- result{name: o.name, a: a, err: err, elapsed: time.Since(t0)}
		}()
	}
	close(start)
	wg.Wait()
	close(answers)
	seen := map[string]bool{}
	for r := range answers {
		seen[r.name] = true
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
			continue
		}
		for _, o := range others {
			if o.name == r.name && (r.a.status != 200 || !strings.Contains(r.a.raw, o.want)) {
				t.Errorf("%s during alpha's stall: %d %s, want %s", r.name, r.a.status, r.a.raw, o.want)
			}
		}
		// Loose: nothing waits for the stalled Stripe calls.
		if r.elapsed >= stripeTimeout {
			t.Errorf("%s took %v during alpha's stall (Stripe timeout %v)", r.name, r.elapsed, stripeTimeout)
		}
	}
	if len(seen) != len(others) {
		t.Errorf("%d of %d requests answered", len(seen), len(others))
	}

	for range calls {
		var r result
		select {
		case r = <-stalledAnswers:
		case <-time.After(stripeTimeout + 20*time.Second):
			t.Fatal("a request on a stalled Stripe did not answer")
		}
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
			continue
		}
		status := 200
		if r.name == "alpha webhook" {
			status = 500 // so that Stripe delivers it again
		}
		if r.a.status != status || r.a.raw != wantOf[r.name] {
			t.Errorf("%s on a stalled Stripe: %d %s\nwant %d %s", r.name, r.a.status, r.a.raw, status, wantOf[r.name])
		}
		// Generous: the Stripe timeout plus a retry's pause, far from the
		// minute and more stripe-go would wait unbounded.
		if r.elapsed > stripeTimeout+10*time.Second {
			t.Errorf("%s answered after %v (Stripe timeout %v)", r.name, r.elapsed, stripeTimeout)
		}
	}
	if n := int(p.held.Load()); n > len(calls)*3 {
		t.Errorf("%d calls to the stalled Stripe for %d requests: retries are not bounded", n, len(calls))
	}
	if n := count(t, e.db, `SELECT (SELECT count(*) FROM checkout_session) + (SELECT count(*) FROM customer_order)`); n != 0 {
		t.Errorf("%d checkout records or orders written for sessions Stripe never confirmed", n)
	}
	if n := count(t, e.db, `SELECT count(*) FROM stripe_webhook_event WHERE event_id = 'evt_stalled'`); n != 0 {
		t.Error("the webhook event that failed on a stalled Stripe is recorded: its redelivery would be skipped")
	}

	// Stripe answers again: the same cart checks out and is recorded.
	p.stalling.Store(false)
	a := buyers[0].post("/order/create-checkout-session", form("anonymous_email_address", "slow@example.com")).json(t)
	id, _ := a["session_id"].(string)
	if a["create_checkout_session"] != "success" || id == "" {
		t.Fatalf("checkout once Stripe answers: %v", a)
	}
	if n := count(t, e.db, `SELECT count(*) FROM checkout_session WHERE id = $1`, id); n != 1 {
		t.Errorf("session %s recorded %d times", id, n)
	}
}
