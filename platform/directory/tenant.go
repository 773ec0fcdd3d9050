// Package directory maps a request's host to its tenant. It keeps an
// in-memory snapshot of the registry, refreshed on NOTIFY tenant_changed and
// by a periodic full resync, and keeps serving the last snapshot when the
// platform database is unreachable.
package directory

// Tenant is what the data plane knows of one tenant: enough to route a
// request, open its database and apply its settings.
type Tenant struct {
	ID          int64
	Slug        string
	DisplayName string
	Status      string // provisioning | active | suspended | failed | deleting | deleted

	Hosts   []string // every hostname routed to the tenant, default first
	Origins []string // browser origins trusted for CORS and CSRF

	DBHost     string
	DBPort     int
	DBName     string
	DBRole     string
	SecretsRef string // name of the tenant's secrets.TenantBundle

	Settings Settings

	// Generation changes whenever the registry row changes (updated_at), so
	// caches keyed by tenant can tell a rotated tenant from the one they hold.
	Generation int64
}

// Settings is the JSON document in tenants.settings.
type Settings struct {
	// FrontendOrigin is the public origin of the tenant's frontend, used in
	// email links and Stripe redirect URLs (e.g. http://localhost:8080).
	FrontendOrigin string `json:"frontend_origin,omitempty"`
	// FromAddress is the From header of the tenant's email.
	FromAddress string `json:"from_address,omitempty"`
	// CookieDomain is the Domain attribute of the tenant's cookies; empty
	// means host-only cookies.
	CookieDomain string `json:"cookie_domain,omitempty"`
	// RateLimits overrides platform defaults by limit name (login,
	// create_account, reset_password, chat, notify_me), as "N/period" with
	// period s, m, h or d (e.g. "10/h"), or "off".
	RateLimits map[string]string `json:"rate_limits,omitempty"`
	// Branding is how the built-in storefront presents the tenant; nil
	// means defaults drawn from the display name.
	Branding *Branding `json:"branding,omitempty"`
}

// Branding is the built-in storefront's look and shop details. Every field
// is optional; colours are #rrggbb (anything else is ignored).
type Branding struct {
	ShopName     string `json:"shop_name,omitempty"`
	Tagline      string `json:"tagline,omitempty"`
	LogoURL      string `json:"logo_url,omitempty"`
	PrimaryColor string `json:"primary_color,omitempty"`
	AccentColor  string `json:"accent_color,omitempty"`
	ContactEmail string `json:"contact_email,omitempty"`
	ContactPhone string `json:"contact_phone,omitempty"`
	// About, PrivacyPolicy, TermsOfUse and TermsOfSale are plain text
	// (paragraphs separated by blank lines) for those pages.
	About         string       `json:"about,omitempty"`
	PrivacyPolicy string       `json:"privacy_policy,omitempty"`
	TermsOfUse    string       `json:"terms_of_use,omitempty"`
	TermsOfSale   string       `json:"terms_of_sale,omitempty"`
	FooterLinks   []FooterLink `json:"footer_links,omitempty"`
}

// FooterLink is one extra link in the storefront's footer.
type FooterLink struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// Serving reports whether requests for the tenant are answered.
func (t *Tenant) Serving() bool { return t.Status == "active" }

// AllowsOrigin reports whether origin (scheme://host[:port], exactly as a
// browser sends it) may call the tenant with credentials (CORS) and is
// trusted for CSRF: both checks use this one rule, so they never disagree.
func (t *Tenant) AllowsOrigin(origin string) bool {
	for _, p := range t.Origins {
		if OriginMatches(p, origin) {
			return true
		}
	}
	return false
}
