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
}
