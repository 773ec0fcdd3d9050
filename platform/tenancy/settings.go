package tenancy

// Settings is the JSON document in tenants.settings: the per-tenant options
// the control plane validates and writes and the data plane applies.
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
