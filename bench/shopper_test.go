package bench

import (
	"bytes"
	"context"
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
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// shopperPassword is every benchmark member's password.
const shopperPassword = "Quiet!Harbour#Lamp42"

// The steps of a shopper's visit, in order; a sample's label is its step.
// The visit ends with an order, and the next one starts again from the
// catalogue with an empty cart.
const (
	stepProducts = iota
	stepProduct
	stepSignIn
	stepAddToCart
	stepShipping
	stepCartTotals
	stepCheckout
	stepWebhook
	stepCount
)

var stepNames = [stepCount]string{"products", "product", "sign-in", "add-to-cart", "shipping", "cart-totals", "checkout", "webhook"}

// shopper is one member of one tenant going through the steps, one
// request per call of step; it is used by one goroutine at a time.
type shopper struct {
	hc       *fasthttp.HostClient
	host     string
	username string
	secret   string // the tenant's webhook secret
	stripe   *stripeDouble
	cookies  map[string]string
	next     int
	session  string // the Checkout Session of the visit
	orders   int    // orders the webhook answered with
}

// step sends the shopper's next request and returns its step and status.
func (s *shopper) step() (label, status int) {
	label = s.next
	switch label {
	case stepProducts:
		status = s.do("GET", "/order/products", nil, `"products_data"`)
	case stepProduct:
		status = s.do("GET", "/order/product/bSusp6dBHm", nil, `"product_data"`)
	case stepSignIn:
		s.cookies = map[string]string{}
		if status = s.do("GET", "/user/token", nil, ""); status == 200 {
			status = s.do("POST", "/user/login", url.Values{"username": {s.username}, "password": {shopperPassword}, "remember_me": {"false"}}, `"login":"true"`)
		}
	case stepAddToCart:
		status = s.do("POST", "/order/cart-add-product-sku", url.Values{"sku_id": {"1"}, "quantity": {"2"}}, `"cart_add_product_sku":"success"`)
	case stepShipping:
		status = s.do("POST", "/order/cart-update-shipping-method", url.Values{"shipping_method_identifier": {"USPSRetailGround"}}, `"cart_update_shipping_method":"success"`)
	case stepCartTotals:
		status = s.do("GET", "/order/cart-totals", nil, `"cart_total"`)
	case stepCheckout:
		var body []byte
		status, body = s.send("POST", "/order/create-checkout-session", url.Values{}, `"create_checkout_session":"success"`)
		var out struct {
			SessionID string `json:"session_id"`
		}
		if status == 200 && (json.Unmarshal(body, &out) != nil || out.SessionID == "") {
			status = statusBadAnswer
		}
		s.session = out.SessionID
	case stepWebhook:
		status = s.webhook()
	}
	if status == 200 {
		s.next = (s.next + 1) % stepCount
	} else if label >= stepAddToCart {
		s.next = stepSignIn // start the purchase again
	}
	return label, status
}

// webhook delivers checkout.session.completed for the visit's session,
// signed with the tenant's webhook secret, as Stripe would once paid.
func (s *shopper) webhook() int {
	obj, ok := s.stripe.paid(s.session)
	if !ok {
		return statusBadAnswer
	}
	body := fmt.Appendf(nil, `{"id":"evt_%s","object":"event","api_version":"2025-11-17.clover","type":"checkout.session.completed","data":{"object":%s}}`, s.session, obj)
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: s.secret, Timestamp: time.Now()}).Header
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/order/stripe-webhook")
	req.Header.SetHost(s.host)
	req.Header.SetContentType("application/json")
	req.Header.Set("Stripe-Signature", sig)
	req.SetBody(body)
	if err := s.hc.DoTimeout(req, resp, requestTimeout); err != nil {
		return 0
	}
	if resp.StatusCode() != 200 {
		return resp.StatusCode()
	}
	if !bytes.Contains(resp.Body(), []byte(`"order_identifier"`)) {
		return statusBadAnswer
	}
	s.orders++
	return 200
}

func (s *shopper) do(method, path string, form url.Values, want string) int {
	status, _ := s.send(method, path, form, want)
	return status
}

// send makes one request with the shopper's cookies (and CSRF token on a
// POST) and keeps the cookies it is given. A 200 whose body lacks want is
// statusBadAnswer.
func (s *shopper) send(method, path string, form url.Values, want string) (int, []byte) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.SetHost(s.host)
	req.Header.Set("Origin", frontendOrigin)
	for k, v := range s.cookies {
		req.Header.SetCookie(k, v)
	}
	if method == "POST" {
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.Header.Set("X-CSRFToken", s.cookies["csrftoken"])
		req.SetBodyString(form.Encode())
	}
	if err := s.hc.DoTimeout(req, resp, requestTimeout); err != nil {
		return 0, nil
	}
	resp.Header.VisitAllCookie(func(k, v []byte) {
		c := fasthttp.AcquireCookie()
		defer fasthttp.ReleaseCookie(c)
		if c.ParseBytes(v) != nil {
			return
		}
		if len(c.Value()) == 0 || c.MaxAge() < 0 || (!c.Expire().IsZero() && c.Expire().Before(time.Now())) {
			delete(s.cookies, string(k))
		} else {
			s.cookies[string(k)] = string(c.Value())
		}
	})
	if resp.StatusCode() != 200 {
		return resp.StatusCode(), nil
	}
	body := append([]byte(nil), resp.Body()...)
	if want != "" && !bytes.Contains(body, []byte(want)) {
		return statusBadAnswer, body
	}
	return 200, body
}

// webhookSecret is tenant slug's webhook signing secret in the benchmarks.
func webhookSecret(slug string) string { return "whsec_bench_" + slug }

// configureStripe gives every tenant of p Stripe keys and a webhook secret
// in its bundle, as `swa tenant secrets set` does.
func configureStripe(b *testing.B, p *platform) {
	b.Helper()
	for _, t := range p.tenants {
		bundle, err := secrets.LoadBundle(context.Background(), p.store, t.SecretsRef)
		if err != nil {
			b.Fatal(err)
		}
		bundle.StripeSecretKey, bundle.StripePublishableKey = "sk_test_"+t.Slug, "pk_test_"+t.Slug
		bundle.StripeWebhookSecret = webhookSecret(t.Slug)
		if _, err := secrets.SaveBundle(context.Background(), p.store, t.SecretsRef, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

// newShoppers makes perTenant members on each of the platform's tenants
// (through /user/create-account, which also signs them in); the tenants
// have their Stripe configuration (configureStripe).
func newShoppers(b *testing.B, p *platform, addr string, d *stripeDouble, perTenant int) []*shopper {
	b.Helper()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 512, MaxIdleConnDuration: time.Minute,
		ReadTimeout: requestTimeout, WriteTimeout: requestTimeout}
	b.Cleanup(hc.CloseIdleConnections)
	var out []*shopper
	for i, t := range p.tenants {
		secret := webhookSecret(t.Slug)
		for j := range perTenant {
			m := &member{b: b, addr: addr, host: p.host(i), cookies: map[string]string{}}
			name := fmt.Sprintf("shopper%d", j)
			m.get("/user/token")
			m.post("/user/create-account", "create_account", "true", url.Values{
				"firstname": {"Bench"}, "lastname": {"Shopper"}, "username": {name},
				"email_address": {name + "@example.com"}, "password": {shopperPassword},
				"confirm_password": {shopperPassword}, "newsletter": {"false"}, "remember_me": {"false"},
			})
			out = append(out, &shopper{hc: hc, host: p.host(i), username: name, secret: secret, stripe: d, cookies: m.cookies})
		}
	}
	return out
}

// stripeDouble stands in for Stripe where the scenario needs state that
// stripe-mock does not keep: stripe-mock answers every retrieve with the
// same unpaid fixture, so the webhook could never make an order. Session
// creation is forwarded to stripe-mock (which validates the parameters
// against Stripe's API description); the double remembers each session's
// metadata, address and total and serves it back, paid, on retrieve, as
// Stripe does once the shopper has paid. The shop's real stripe-go client
// talks to it.
type stripeDouble struct {
	mock string
	mu   sync.Mutex
	n    int
	sess map[string]map[string]any
	url  string
}

func newStripeDouble(b *testing.B) *stripeDouble {
	d := &stripeDouble{mock: pgtest.Service(b, "SWA_STRIPE_API_BASE"), sess: map[string]map[string]any{}}
	srv := httptest.NewServer(http.HandlerFunc(d.serve))
	b.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

func (d *stripeDouble) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
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
		meta := map[string]string{}
		for k := range f {
			if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") {
				meta[strings.TrimSuffix(name, "]")] = f.Get(k)
			}
		}
		d.mu.Lock()
		d.n++
		id := fmt.Sprintf("cs_test_bench_%d", d.n)
		addr := map[string]any{"line1": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "62701", "country": "US"}
		s := map[string]any{
			"id": id, "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/" + id,
			"payment_status": "paid", "status": "complete", "amount_total": total, "currency": "usd",
			"metadata": meta, "customer_email": f.Get("customer_email"), "payment_intent": "pi_" + id,
			"customer_details": map[string]any{"name": "Bench Shopper", "email": f.Get("customer_email"), "address": addr},
			"shipping_details": map[string]any{"name": "Bench Shopper", "address": addr},
		}
		d.sess[id] = s
		d.mu.Unlock()
		_ = json.NewEncoder(w).Encode(s)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions/"):
		obj, ok := d.paid(strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/"))
		if !ok {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"No such checkout.session"}}`))
			return
		}
		_, _ = w.Write(obj)
	default:
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"unknown path"}}`))
	}
}

// paid returns session id as JSON (paid), or false if it was never made.
func (d *stripeDouble) paid(id string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sess[id]
	if !ok {
		return nil, false
	}
	raw, _ := json.Marshal(s)
	return raw, true
}
