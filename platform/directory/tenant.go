// Package directory maps a request's host to its tenant. It keeps an
// in-memory snapshot of the registry, refreshed on NOTIFY tenant_changed and
// by a periodic full resync, and keeps serving the last snapshot when the
// platform database is unreachable.
package directory

import "github.com/startupwebapp/platform/platform/tenancy"

// Tenant is what the data plane knows of one tenant: enough to route a
// request, open its database and apply its settings.
type Tenant struct {
	ID          int64
	Slug        string
	DisplayName string
	Status      tenancy.Status

	Hosts   []string // every hostname routed to the tenant, default first
	Origins []string // browser origins trusted for CORS and CSRF

	DBHost     string
	DBPort     int
	DBName     string
	DBRole     string
	SecretsRef string // name of the tenant's secrets.TenantBundle

	Settings Settings

	// WritesPaused: the tenant's database is moving to another server and
	// its last changes are being copied; requests that would write are
	// answered 503 with Retry-After, reads are served.
	WritesPaused bool

	// Site is the tenant's own deployed frontend (platform/sites); nil
	// when it has none.
	Site *Site

	// Plan is the tenant's plan and its limits (registry table plans).
	Plan Plan

	// Generation changes whenever the registry row changes (updated_at), so
	// caches keyed by tenant can tell a rotated tenant from the one they hold.
	Generation int64
}

// Settings is the JSON document in tenants.settings; the type belongs to
// package tenancy, which the control plane writes it with.
type Settings = tenancy.Settings

// Branding and FooterLink are the storefront's part of Settings.
type (
	Branding   = tenancy.Branding
	FooterLink = tenancy.FooterLink
)

// Serving reports whether requests for the tenant are answered.
func (t *Tenant) Serving() bool { return t.Status.Serving() }

// AllowsOrigin reports whether origin (scheme://host[:port], exactly as a
// browser sends it) may call the tenant with credentials (CORS) and is
// trusted for CSRF: both checks use this one rule, so they never disagree.
func (t *Tenant) AllowsOrigin(origin string) bool {
	for _, p := range t.Origins {
		if OriginMatches(p, origin) {
			return true
		}
	}
	// A site served on a domain of its own calls the API on the tenant's
	// other hosts: its origin is the tenant's, on either scheme and any port.
	if t.Site != nil && t.Site.Domain != "" {
		if scheme, host, _, ok := splitOrigin(origin); ok && asciiEqualFold(host, t.Site.Domain) &&
			(asciiEqualFold(scheme, "https") || asciiEqualFold(scheme, "http")) {
			return true
		}
	}
	return false
}

// Site is what the data plane needs of a tenant's deployed frontend: which
// version to serve, and where.
type Site struct {
	// Version is the id of the site version served (site_versions.id).
	Version int64
	// Domain, when set, is the one host the site is served on; the tenant's
	// other hosts keep the built-in storefront. Empty: the site replaces the
	// storefront on every host of the tenant.
	Domain string
}

// SiteOn returns the site version served on host (as a request names it,
// with or without a port), or false when the tenant serves no site there.
func (t *Tenant) SiteOn(host string) (int64, bool) {
	if t.Site == nil {
		return 0, false
	}
	if t.Site.Domain != "" && normalizeHost(host) != t.Site.Domain {
		return 0, false
	}
	return t.Site.Version, true
}

// Plan is a tenant's plan as the data plane enforces it. A nil limit is
// unlimited.
type Plan struct {
	Name        string // e.g. free
	DisplayName string // e.g. Free

	Products       *int64
	StaffSeats     *int64
	OrdersPerMonth *int64
	EventsPerMonth *int64
	EmailsPerMonth *int64
	CustomDomains  *int64
	StorageBytes   *int64
}

// Allows reports whether one more of something limited by limit fits when
// used are already taken: a nil limit allows everything.
func Allows(limit *int64, used int64) bool { return limit == nil || used < *limit }
