package payments_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

func TestCents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{"0", 0, nil},
		{"0.00", 0, nil},
		{"3.50", 350, nil},
		{"14.99", 1499, nil},
		{"1.15", 115, nil}, // int(float(1.15)*100) is 114 upstream (§12 Q5)
		{"0.29", 29, nil},  // and 28
		{"99999999.99", 9999999999, nil},
		{"0.001", 0, payments.ErrFractionalCents},
		{"3.505", 0, payments.ErrFractionalCents},
		{"-1.00", 0, payments.ErrNegativeAmount},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := payments.Cents(decimal.RequireFromString(tc.in))
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("Cents(%s) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
			}
			if tc.err == nil && !payments.FromCents(got).Equal(decimal.RequireFromString(tc.in)) {
				t.Errorf("FromCents(%d) = %s", got, payments.FromCents(got))
			}
		})
	}
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	const secret = "whsec_tenant_a"
	body := []byte(`{"id":"evt_1","object":"event","type":"checkout.session.completed","api_version":"2025-11-17.clover","data":{"object":{"id":"cs_1","object":"checkout.session"}}}`)
	sign := func(payload []byte, secret string, at time.Time) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
	}
	now := time.Now()
	tests := []struct {
		name   string
		body   []byte
		header string
		secret string
		err    error
	}{
		{"valid", body, sign(body, secret, now), secret, nil},
		// Stripe timestamps are whole seconds and the check runs later, so the
		// last accepted second is not exact: keep a margin below 300 s.
		{"valid, 290 s old", body, sign(body, secret, now.Add(-290*time.Second)), secret, nil},
		{"too old", body, sign(body, secret, now.Add(-301*time.Second)), secret, payments.ErrBadSignature},
		{"another tenant's secret", body, sign(body, "whsec_tenant_b", now), secret, payments.ErrBadSignature},
		{"body changed after signing", append([]byte(" "), body...), sign(body, secret, now), secret, payments.ErrBadSignature},
		{"no header", body, "", secret, payments.ErrBadSignature},
		{"garbage header", body, "t=abc,v1=zz", secret, payments.ErrBadSignature},
		{"signed garbage", []byte("not json"), sign([]byte("not json"), secret, now), secret, payments.ErrBadPayload},
		{"no secret configured", body, sign(body, "", now), "", payments.ErrNotConfigured},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := payments.VerifyWebhook(tc.body, tc.header, tc.secret)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (ev.ID != "evt_1" || ev.Type != "checkout.session.completed") {
				t.Errorf("event %s %s", ev.ID, ev.Type)
			}
		})
	}
}

func newStore(t *testing.T) secrets.Store {
	t.Helper()
	key, err := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	s, err := secrets.NewLocal(pgtest.NewPool(t, migrations.Platform), key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tenant(id int64, slug string) *directory.Tenant {
	return &directory.Tenant{ID: id, Slug: slug, SecretsRef: secrets.TenantSecretName(slug)}
}

// TestPerTenantKeys checks that each tenant's calls carry its own secret key
// and that a rotated key takes effect, against a recording HTTP double.
func TestPerTenantKeys(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	var mu sync.Mutex
	var seen []string
	double := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"cs_x","object":"checkout.session"}`))
	}))
	t.Cleanup(double.Close)
	cs := payments.New(payments.Options{Secrets: store, APIBase: double.URL})

	a, b, none := tenant(1, "alpha"), tenant(2, "beta"), tenant(3, "nostripe")
	for _, x := range []struct {
		t   *directory.Tenant
		key string
	}{{a, "sk_test_alpha"}, {b, "sk_test_beta"}, {none, ""}} {
		if _, err := secrets.SaveBundle(ctx, store, x.t.SecretsRef, secrets.TenantBundle{DBPassword: "p", StripeSecretKey: x.key, StripeWebhookSecret: "whsec_" + x.t.Slug}); err != nil {
			t.Fatal(err)
		}
	}
	call := func(tn *directory.Tenant) {
		t.Helper()
		acct, err := cs.For(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acct.API.CheckoutSessions.Get("cs_x", nil); err != nil {
			t.Fatal(err)
		}
	}
	call(a)
	call(b)
	if _, err := secrets.SaveBundle(ctx, store, a.SecretsRef, secrets.TenantBundle{DBPassword: "p", StripeSecretKey: "sk_test_alpha2"}); err != nil {
		t.Fatal(err)
	}
	call(a)
	want := []string{"Bearer sk_test_alpha", "Bearer sk_test_beta", "Bearer sk_test_alpha2"}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("calls %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("call %d Authorization %q, want %q", i, seen[i], want[i])
		}
	}
	if _, err := cs.For(ctx, none); !errors.Is(err, payments.ErrNotConfigured) {
		t.Errorf("tenant without key: %v", err)
	}
	if s, err := cs.WebhookSecret(ctx, b); err != nil || s != "whsec_beta" {
		t.Errorf("webhook secret %q, %v", s, err)
	}
}

// TestStripeMock creates a Checkout Session on the local stripe-mock through
// a tenant's client, as the dev stack does.
func TestStripeMock(t *testing.T) {
	t.Parallel()
	base := pgtest.Service(t, "SWA_STRIPE_API_BASE")
	store := newStore(t)
	ctx := context.Background()
	tn := tenant(7, "mocked")
	if _, err := secrets.SaveBundle(ctx, store, tn.SecretsRef, secrets.TenantBundle{DBPassword: "p", StripeSecretKey: "sk_test_123"}); err != nil {
		t.Fatal(err)
	}
	acct, err := payments.New(payments.Options{Secrets: store, APIBase: base}).For(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	params := &stripe.CheckoutSessionParams{
		Mode:       stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL: stripe.String("http://localhost:8080/checkout/success?session_id={CHECKOUT_SESSION_ID}"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String("usd"),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("Paper Clips")},
				UnitAmount:  stripe.Int64(350),
			},
			Quantity: stripe.Int64(2),
		}},
	}
	params.SetIdempotencyKey("test-" + pgtest.RandomName(""))
	s, err := acct.API.CheckoutSessions.New(params)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID == "" || s.URL == "" {
		t.Errorf("session %q url %q", s.ID, s.URL)
	}
}
