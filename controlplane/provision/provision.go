// Package provision runs the tenant workflows of the control plane: create
// and fork (a running tenant in about a second), suspend, resume, domains,
// origins, settings, secrets and their rotation, migrations, and delete.
//
// Multi-step workflows record every step in provisioning_steps before and
// after it runs; each step is idempotent, so a crash or a retry resumes at
// the first unfinished one. A tenant is routed by the data plane only once it
// is active, which is the last step.
package provision

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/sites"
)

// Options configures a Service.
type Options struct {
	Platform *pgxpool.Pool // the platform database (registry)
	Secrets  secrets.Store
	Log      *slog.Logger

	// DBPrefix prefixes tenant database and role names (default "t_"); the
	// template database is named {DBPrefix}_template_{version}_{digest}.
	DBPrefix string
	// BaseDomain gives every tenant the default hostname {slug}.{BaseDomain}.
	BaseDomain string
	// DBServer names the database server new tenants go on; empty picks the
	// least loaded registered server.
	DBServer string

	// DevStripeAPIBase is set in development (stripe-mock): tenants created
	// without Stripe keys then get DevStripeSecretKey and
	// DevStripePublishableKey (defaults sk_test_123 / pk_test_123).
	DevStripeAPIBase        string
	DevStripeSecretKey      string
	DevStripePublishableKey string

	// TenantMigrations is the tenant migration set (default: the embedded
	// migrations.Tenant). Tests add migrations to it to see what a new one
	// does to every tenant.
	TenantMigrations fs.FS

	// AfterStep, when set, runs after each workflow step is recorded done;
	// an error stops the workflow there as a crash would. For tests.
	AfterStep func(op, step string) error
	// InStep, when set, runs inside workflow steps at named points: after a
	// side effect (a database created, a secret version written) and before
	// the step is recorded done, or inside a step's transaction just before
	// it commits (PointInTx). An error stops the workflow there as a crash
	// would, recording nothing more. ctx is the workflow's. For tests.
	InStep func(ctx context.Context, op, step, point string) error

	// MoveGrace is how long a moved tenant's old database is kept on its
	// old server before DropMovedCopies drops it (default 24 hours; a
	// negative value: at once). MoveDrain is how long a move waits for the
	// tenant's busy sessions on the old database to end before ending them
	// (default 3 s).
	MoveGrace time.Duration
	MoveDrain time.Duration

	// SiteBlobs keeps tenants' site files (default: the platform database);
	// SiteRetain is how many site versions a tenant keeps (default 10).
	SiteBlobs  sites.Blobs
	SiteRetain int
}

// Service runs the workflows.
type Service struct {
	opts     Options
	reg      *registry.Registry
	log      *slog.Logger
	template string // name of the template database at the newest tenant migration
	latest   int64  // newest tenant migration version
	tenantFS fs.FS  // the tenant migrations
	sites    *sites.Store
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,19}$`)

// New returns a Service. The platform pool and the secrets store are required.
func New(o Options) (*Service, error) {
	if o.Platform == nil || o.Secrets == nil {
		return nil, errors.New("provision: platform pool and secrets store are required")
	}
	if o.DBPrefix == "" {
		o.DBPrefix = "t_"
	}
	if !prefixRE.MatchString(o.DBPrefix) {
		return nil, fmt.Errorf("provision: DBPrefix %q: want 1-20 characters of a-z, 0-9 and '_', starting with a letter", o.DBPrefix)
	}
	if o.BaseDomain == "" {
		o.BaseDomain = "localhost"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MoveGrace == 0 {
		o.MoveGrace = DefaultMoveGrace
	}
	if o.MoveDrain <= 0 {
		o.MoveDrain = DefaultMoveDrain
	}
	if o.DevStripeSecretKey == "" {
		o.DevStripeSecretKey = "sk_test_123"
	}
	if o.DevStripePublishableKey == "" {
		o.DevStripePublishableKey = "pk_test_123"
	}
	if o.TenantMigrations == nil {
		fsys, err := migrations.Tenant.FS()
		if err != nil {
			return nil, fmt.Errorf("provision: tenant migrations: %w", err)
		}
		o.TenantMigrations = fsys
	}
	latest, err := migrations.LatestFS(o.TenantMigrations)
	if err != nil {
		return nil, fmt.Errorf("provision: tenant migrations: %w", err)
	}
	sum, err := migrations.Digest(o.TenantMigrations)
	if err != nil {
		return nil, fmt.Errorf("provision: tenant migrations: %w", err)
	}
	svc := &Service{
		opts:     o,
		reg:      registry.New(o.Platform, o.Secrets),
		log:      o.Log,
		template: fmt.Sprintf("%s_template_%d_%s", o.DBPrefix, latest, sum[:10]),
		latest:   latest,
		tenantFS: o.TenantMigrations,
	}
	if svc.sites, err = svc.newSites(); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return svc, nil
}

// LatestMigration is the newest version of the tenant migrations: the
// schema version every migrated tenant reaches.
func (s *Service) LatestMigration() int64 { return s.latest }

// Registry returns the registry the service works on (for reads: tenants,
// audit, operations, tokens).
func (s *Service) Registry() *registry.Registry { return s.reg }

// Secrets returns the secrets store the service keeps tenant secrets in.
func (s *Service) Secrets() secrets.Store { return s.opts.Secrets }

// TemplateName is the template database new tenants are cloned from.
func (s *Service) TemplateName() string { return s.template }

// DBName is the database (and role) name of a tenant slug.
func (s *Service) DBName(slug string) string {
	return s.opts.DBPrefix + strings.ReplaceAll(slug, "-", "_")
}

// CreateRequest describes a new tenant.
type CreateRequest struct {
	Slug        string             `json:"slug"`
	DisplayName string             `json:"display_name"`
	Plan        string             `json:"plan"`
	ForkOf      string             `json:"fork_of"` // slug of the tenant whose catalog and settings to copy
	Domains     []string           `json:"domains"` // besides the default {slug}.{BaseDomain}
	Origins     []string           `json:"origins"`
	Settings    directory.Settings `json:"settings"`
	Secrets     SecretsInput       `json:"secrets"`
}

// SecretsInput sets tenant secrets; nil fields are left unchanged.
type SecretsInput struct {
	StripeSecretKey      *string `json:"stripe_secret_key,omitempty"`
	StripePublishableKey *string `json:"stripe_publishable_key,omitempty"`
	StripeWebhookSecret  *string `json:"stripe_webhook_secret,omitempty"`
	SMTPHost             *string `json:"smtp_host,omitempty"`
	SMTPPort             *int    `json:"smtp_port,omitempty"`
	SMTPUsername         *string `json:"smtp_username,omitempty"`
	SMTPPassword         *string `json:"smtp_password,omitempty"`
}

// String keeps the values out of logs.
func (SecretsInput) String() string { return "SecretsInput{***}" }

// GoString is String for %#v.
func (in SecretsInput) GoString() string { return in.String() }

// Validate checks the shape of the given values; its errors name the field,
// never the value.
func (in SecretsInput) Validate() error {
	prefixed := func(field string, v *string, prefixes ...string) error {
		if v == nil || *v == "" {
			return nil
		}
		for _, p := range prefixes {
			if strings.HasPrefix(*v, p) {
				return nil
			}
		}
		return &registry.InvalidError{Field: field, Message: "want a value starting with " + strings.Join(prefixes, " or ")}
	}
	if err := prefixed("secrets.stripe_secret_key", in.StripeSecretKey, "sk_", "rk_"); err != nil {
		return err
	}
	if err := prefixed("secrets.stripe_publishable_key", in.StripePublishableKey, "pk_"); err != nil {
		return err
	}
	if err := prefixed("secrets.stripe_webhook_secret", in.StripeWebhookSecret, "whsec_"); err != nil {
		return err
	}
	if in.SMTPHost != nil && *in.SMTPHost != "" && strings.ContainsAny(*in.SMTPHost, " /:@") {
		return &registry.InvalidError{Field: "secrets.smtp_host", Message: "want a host name without port"}
	}
	if in.SMTPPort != nil && (*in.SMTPPort < 0 || *in.SMTPPort > 65535) {
		return &registry.InvalidError{Field: "secrets.smtp_port", Message: "want 0-65535"}
	}
	return nil
}

// apply merges the input into b and reports whether anything changed.
func (in SecretsInput) apply(b *secrets.TenantBundle) (changed []string) {
	set := func(name string, dst *string, v *string) {
		if v != nil && *dst != *v {
			*dst = *v
			changed = append(changed, name)
		}
	}
	set("stripe_secret_key", &b.StripeSecretKey, in.StripeSecretKey)
	set("stripe_publishable_key", &b.StripePublishableKey, in.StripePublishableKey)
	set("stripe_webhook_secret", &b.StripeWebhookSecret, in.StripeWebhookSecret)
	set("smtp_host", &b.SMTPHost, in.SMTPHost)
	set("smtp_username", &b.SMTPUsername, in.SMTPUsername)
	set("smtp_password", &b.SMTPPassword, in.SMTPPassword)
	if in.SMTPPort != nil && b.SMTPPort != *in.SMTPPort {
		b.SMTPPort = *in.SMTPPort
		changed = append(changed, "smtp_port")
	}
	return changed
}

// SecretsStatus says which of a tenant's secrets are set, never their values.
type SecretsStatus struct {
	Version              int  `json:"version"` // newest version of the bundle (0: none)
	DBPassword           bool `json:"db_password"`
	SessionKey           bool `json:"session_key"`
	StripeSecretKey      bool `json:"stripe_secret_key"`
	StripePublishableKey bool `json:"stripe_publishable_key"`
	StripeWebhookSecret  bool `json:"stripe_webhook_secret"`
	SMTPHost             bool `json:"smtp_host"`
	SMTPPort             bool `json:"smtp_port"`
	SMTPUsername         bool `json:"smtp_username"`
	SMTPPassword         bool `json:"smtp_password"`
}

func statusOf(b secrets.TenantBundle, version int) SecretsStatus {
	return SecretsStatus{
		Version:              version,
		DBPassword:           b.DBPassword != "",
		SessionKey:           b.SessionKey != "",
		StripeSecretKey:      b.StripeSecretKey != "",
		StripePublishableKey: b.StripePublishableKey != "",
		StripeWebhookSecret:  b.StripeWebhookSecret != "",
		SMTPHost:             b.SMTPHost != "",
		SMTPPort:             b.SMTPPort != 0,
		SMTPUsername:         b.SMTPUsername != "",
		SMTPPassword:         b.SMTPPassword != "",
	}
}

// SettingsPatch changes some settings; nil fields are left unchanged, an
// empty string clears a field, and rate limits merge by name (an empty value
// removes the override).
type SettingsPatch struct {
	FrontendOrigin *string           `json:"frontend_origin,omitempty"`
	FromAddress    *string           `json:"from_address,omitempty"`
	CookieDomain   *string           `json:"cookie_domain,omitempty"`
	RateLimits     map[string]string `json:"rate_limits,omitempty"`
	// Branding replaces the storefront branding as a whole; an empty
	// object clears it.
	Branding *directory.Branding `json:"branding,omitempty"`
}

func (p SettingsPatch) apply(s directory.Settings) directory.Settings {
	if p.FrontendOrigin != nil {
		s.FrontendOrigin = *p.FrontendOrigin
	}
	if p.FromAddress != nil {
		s.FromAddress = *p.FromAddress
	}
	if p.CookieDomain != nil {
		s.CookieDomain = *p.CookieDomain
	}
	if len(p.RateLimits) > 0 {
		m := make(map[string]string, len(s.RateLimits)+len(p.RateLimits))
		for k, v := range s.RateLimits {
			m[k] = v
		}
		for k, v := range p.RateLimits {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		s.RateLimits = m
		if len(m) == 0 {
			s.RateLimits = nil
		}
	}
	if p.Branding != nil {
		s.Branding = p.Branding
		if reflect.DeepEqual(*p.Branding, directory.Branding{}) {
			s.Branding = nil
		}
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
