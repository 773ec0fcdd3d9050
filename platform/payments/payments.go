// Package payments talks to Stripe with each tenant's own keys: a Stripe API
// client per tenant (pointed at SWA_STRIPE_API_BASE when set, e.g. the local
// stripe-mock), exact conversion of decimal amounts to integer cents, and
// the webhook signature check.
package payments

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
)

// ErrNotConfigured is returned for a tenant whose bundle has no Stripe
// secret key (or, for webhooks, no webhook secret).
var ErrNotConfigured = errors.New("payments: stripe is not configured for this tenant")

// Options configures the per-tenant clients.
type Options struct {
	// Secrets holds each tenant's bundle (Tenant.SecretsRef).
	Secrets secrets.Store
	// APIBase overrides Stripe's API URL (SWA_STRIPE_API_BASE); empty means
	// https://api.stripe.com.
	APIBase string
	// Timeout bounds one Stripe call, its retries included (default
	// DefaultTimeout). Callers apply it with Clients.Bound; it is also each
	// attempt's HTTP timeout when HTTPClient is not given.
	Timeout time.Duration
	// HTTPClient is used for Stripe calls (default: Timeout per attempt).
	HTTPClient *http.Client
	// MaxNetworkRetries is stripe-go's retry count for idempotent-safe
	// failures (default 2; requests carry idempotency keys). Retries stop
	// once the call's context (see Bound) is done.
	MaxNetworkRetries int64
	Log               *slog.Logger
}

// Account is one tenant's Stripe configuration.
type Account struct {
	// API is the tenant's Stripe client.
	API *client.API
	// PublishableKey is returned to the browser where the contract asks.
	PublishableKey string
	// WebhookSecret verifies the tenant's webhook deliveries.
	WebhookSecret string
}

// Clients hands out per-tenant Stripe clients, caching one per tenant and
// secret key (a rotated key gets a new client).
type Clients struct {
	o       Options
	backend stripe.Backends

	mu    sync.Mutex
	cache map[int64]cached
}

type cached struct {
	keyHash [32]byte
	api     *client.API
}

// DefaultTimeout is the default bound of one Stripe call, retries
// included: well inside the data plane's request deadline, so a request
// whose Stripe is slow still gets a clear answer in time.
const DefaultTimeout = 8 * time.Second

// New returns the client factory.
func New(o Options) *Clients {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	if o.MaxNetworkRetries == 0 {
		o.MaxNetworkRetries = 2
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	cfg := func(kind stripe.SupportedBackend) stripe.Backend {
		c := &stripe.BackendConfig{
			HTTPClient:        o.HTTPClient,
			MaxNetworkRetries: stripe.Int64(o.MaxNetworkRetries),
			// stripe-go's own logger could print request details; errors
			// are returned and logged by the caller instead.
			LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		}
		if o.APIBase != "" {
			c.URL = stripe.String(o.APIBase)
		}
		return stripe.GetBackendWithConfig(kind, c)
	}
	return &Clients{
		o:       o,
		backend: stripe.Backends{API: cfg(stripe.APIBackend), Connect: cfg(stripe.ConnectBackend), Uploads: cfg(stripe.UploadsBackend)},
		cache:   map[int64]cached{},
	}
}

// Bound returns ctx limited to Options.Timeout, the context to put in a
// Stripe call's params (stripe.Params.Context): the call and its retries
// end when the request's deadline or this bound comes first.
func (cs *Clients) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, cs.o.Timeout)
}

// For returns the tenant's Stripe account: its client and keys. It fails
// with ErrNotConfigured when the tenant has no secret key.
func (cs *Clients) For(ctx context.Context, t *directory.Tenant) (*Account, error) {
	b, err := secrets.LoadBundle(ctx, cs.o.Secrets, t.SecretsRef)
	if err != nil {
		return nil, fmt.Errorf("payments: tenant %s: %w", t.Slug, err)
	}
	if b.StripeSecretKey == "" {
		return &Account{PublishableKey: b.StripePublishableKey, WebhookSecret: b.StripeWebhookSecret}, ErrNotConfigured
	}
	h := sha256.Sum256([]byte(b.StripeSecretKey))
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, ok := cs.cache[t.ID]
	if !ok || c.keyHash != h {
		api := &client.API{}
		api.Init(b.StripeSecretKey, &cs.backend)
		c = cached{keyHash: h, api: api}
		cs.cache[t.ID] = c
	}
	return &Account{API: c.api, PublishableKey: b.StripePublishableKey, WebhookSecret: b.StripeWebhookSecret}, nil
}

// WebhookSecret returns the tenant's webhook signing secret, or
// ErrNotConfigured.
func (cs *Clients) WebhookSecret(ctx context.Context, t *directory.Tenant) (string, error) {
	b, err := secrets.LoadBundle(ctx, cs.o.Secrets, t.SecretsRef)
	if err != nil {
		return "", fmt.Errorf("payments: tenant %s: %w", t.Slug, err)
	}
	if b.StripeWebhookSecret == "" {
		return "", ErrNotConfigured
	}
	return b.StripeWebhookSecret, nil
}

// ErrFractionalCents is returned by Cents for an amount that is not a whole
// number of cents.
var ErrFractionalCents = errors.New("payments: amount has a fraction of a cent")

// ErrNegativeAmount is returned by Cents for an amount below zero.
var ErrNegativeAmount = errors.New("payments: amount is negative")

var hundred = decimal.NewFromInt(100)

// Cents converts a dollar amount to integer cents exactly (§12 Q5: never
// through a float). An amount with a fraction of a cent is refused rather
// than rounded, so what Stripe charges is what the order says.
func Cents(d decimal.Decimal) (int64, error) {
	if d.IsNegative() {
		return 0, ErrNegativeAmount
	}
	c := d.Mul(hundred)
	if !c.Equal(c.Truncate(0)) {
		return 0, ErrFractionalCents
	}
	if !c.BigInt().IsInt64() {
		return 0, fmt.Errorf("payments: amount %s out of range", d)
	}
	return c.IntPart(), nil
}

// FromCents converts Stripe's integer cents to a two-decimal amount.
func FromCents(c int64) decimal.Decimal { return decimal.New(c, -2) }

// WebhookTolerance is how old a signed webhook delivery may be.
const WebhookTolerance = 300 * time.Second

// ErrBadSignature is returned by VerifyWebhook for a missing, malformed,
// wrong or expired Stripe-Signature.
var ErrBadSignature = errors.New("payments: invalid webhook signature")

// ErrBadPayload is returned by VerifyWebhook for a correctly signed body
// that is not a Stripe event.
var ErrBadPayload = errors.New("payments: invalid webhook payload")

// VerifyWebhook checks the Stripe-Signature header against the raw body with
// the tenant's webhook secret (HMAC-SHA256 over "<t>.<body>", any v1 may
// match, t at most WebhookTolerance old) and decodes the event. The event's
// API version is not required to match the library's: a tenant's endpoint
// may be pinned to any version, and only stable fields are read.
func VerifyWebhook(payload []byte, header, secret string) (stripe.Event, error) {
	if secret == "" {
		return stripe.Event{}, ErrNotConfigured
	}
	ev, err := webhook.ConstructEventWithOptions(payload, header, secret, webhook.ConstructEventOptions{
		Tolerance:                WebhookTolerance,
		IgnoreAPIVersionMismatch: true,
	})
	switch {
	case err == nil:
		return ev, nil
	case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader),
		errors.Is(err, webhook.ErrNoValidSignature), errors.Is(err, webhook.ErrTooOld):
		return stripe.Event{}, ErrBadSignature
	default:
		return stripe.Event{}, ErrBadPayload
	}
}
