// Package secrets keeps tenant secrets (database passwords, signing keys,
// Stripe and SMTP credentials) behind one Store interface with two backends:
// local (AES-256-GCM in the platform database) and aws (Secrets Manager).
//
// Secret values never appear in logs, errors, API responses or the audit log:
// errors name the secret, never its value.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotFound is returned for a secret (or version) that does not exist.
var ErrNotFound = errors.New("secret not found")

// Store keeps named, versioned secret values.
type Store interface {
	// Put stores value as the newest version of name and returns that version.
	Put(ctx context.Context, name string, value []byte) (version int, err error)
	// Get returns the newest version of name, or ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// GetVersion returns one version of name, or ErrNotFound.
	GetVersion(ctx context.Context, name string, version int) ([]byte, error)
	// Versions lists the versions of name, oldest first (empty if none).
	Versions(ctx context.Context, name string) ([]int, error)
	// Delete forgets every version of name; deleting a missing secret is not an error.
	Delete(ctx context.Context, name string) error
}

// TenantSecretName is the name of a tenant's secret bundle in every backend.
func TenantSecretName(slug string) string { return "swa/tenants/" + slug }

// TenantBundle is the JSON document stored for each tenant.
type TenantBundle struct {
	// DBPassword is the password of the tenant's own database role.
	DBPassword string `json:"db_password"`
	// SessionKey (base64, 32 bytes) signs the tenant's cookies, email codes
	// and unsubscribe tokens; a value signed for one tenant is worthless on another.
	SessionKey string `json:"session_key"`
	// PreviousSessionKeys are the session keys a rotation replaced, newest
	// first (at most KeptSessionKeys): mailed links, unsubscribe tokens and
	// sealed TOTP secrets made under one of them still verify or open.
	PreviousSessionKeys []string `json:"previous_session_keys,omitempty"`

	StripeSecretKey      string `json:"stripe_secret_key,omitempty"`
	StripePublishableKey string `json:"stripe_publishable_key,omitempty"`
	StripeWebhookSecret  string `json:"stripe_webhook_secret,omitempty"`

	SMTPHost     string `json:"smtp_host,omitempty"`
	SMTPPort     int    `json:"smtp_port,omitempty"`
	SMTPUsername string `json:"smtp_username,omitempty"`
	SMTPPassword string `json:"smtp_password,omitempty"`
}

// KeptSessionKeys is how many replaced session keys a bundle keeps.
const KeptSessionKeys = 3

// RotateSessionKey makes next the bundle's session key and keeps the one it
// replaces first among PreviousSessionKeys.
func (b TenantBundle) RotateSessionKey(next string) TenantBundle {
	prev := append([]string{b.SessionKey}, b.PreviousSessionKeys...)
	if len(prev) > KeptSessionKeys {
		prev = prev[:KeptSessionKeys]
	}
	b.PreviousSessionKeys = prev
	b.SessionKey = next
	return b
}

// String keeps a bundle out of logs even when printed by mistake.
func (TenantBundle) String() string { return "TenantBundle{***}" }

// GoString is String for %#v.
func (b TenantBundle) GoString() string { return b.String() }

// LoadBundle reads and decodes a tenant's bundle.
func LoadBundle(ctx context.Context, s Store, name string) (TenantBundle, error) {
	raw, err := s.Get(ctx, name)
	if err != nil {
		return TenantBundle{}, fmt.Errorf("load secret %s: %w", name, err)
	}
	var b TenantBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		// The decoder's message could quote the value: do not wrap it.
		return TenantBundle{}, fmt.Errorf("load secret %s: malformed bundle", name)
	}
	return b, nil
}

// SaveBundle encodes and stores a tenant's bundle as a new version.
func SaveBundle(ctx context.Context, s Store, name string, b TenantBundle) (int, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return 0, fmt.Errorf("save secret %s: encode", name)
	}
	v, err := s.Put(ctx, name, raw)
	if err != nil {
		return 0, fmt.Errorf("save secret %s: %w", name, err)
	}
	return v, nil
}
