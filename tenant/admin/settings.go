package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Registry is the data plane's connection to the platform registry. Its
// role may read the registry and call backoffice_update_settings (platform
// migration 00007), the one write the back office makes there.
type Registry interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// shopSettings is what an owner edits on the settings page: the shop's
// name, the storefront's contact details and look, and the frontend
// origin. The rest of a tenant's settings (sender address, cookie domain,
// rate limits, legal texts, domains) stays the control plane's.
type shopSettings struct {
	ShopName       string `json:"shop_name"`
	FrontendOrigin string `json:"frontend_origin"`
	ContactEmail   string `json:"contact_email"`
	ContactPhone   string `json:"contact_phone"`
	Tagline        string `json:"tagline"`
	LogoURL        string `json:"logo_url"`
	PrimaryColor   string `json:"primary_color"`
	AccentColor    string `json:"accent_color"`
}

// branding is the part of s stored under settings.branding.
func (s shopSettings) branding() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{"contact_email": s.ContactEmail, "contact_phone": s.ContactPhone,
		"tagline": s.Tagline, "logo_url": s.LogoURL, "primary_color": s.PrimaryColor, "accent_color": s.AccentColor} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

var colour = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// clean trims every field and checks it, naming the first bad one.
func (s *shopSettings) clean() error {
	for _, f := range []*string{&s.ShopName, &s.FrontendOrigin, &s.ContactEmail, &s.ContactPhone, &s.Tagline, &s.LogoURL, &s.PrimaryColor, &s.AccentColor} {
		*f = strings.TrimSpace(*f)
	}
	text := func(field, v string, max int) error {
		if utf8.RuneCountInString(v) > max || strings.ContainsFunc(v, unicode.IsControl) {
			return invalid(field, fmt.Sprintf("%s is at most %d characters on one line", field, max))
		}
		return nil
	}
	if s.ShopName == "" {
		return required("shop_name")
	}
	for _, c := range []struct {
		field, v string
		max      int
	}{{"shop_name", s.ShopName, 200}, {"contact_phone", s.ContactPhone, 40}, {"tagline", s.Tagline, 200}} {
		if err := text(c.field, c.v, c.max); err != nil {
			return err
		}
	}
	if s.FrontendOrigin != "" {
		o, err := registry.NormalizeOrigin(s.FrontendOrigin)
		if err != nil || strings.Contains(o, "*") {
			return invalid("frontend_origin", "the frontend origin is scheme://host[:port], http or https, with no path")
		}
		s.FrontendOrigin = o
	}
	if s.ContactEmail != "" {
		if !strings.Contains(s.ContactEmail, "@") || len(s.ContactEmail) > 254 || strings.ContainsFunc(s.ContactEmail, unicode.IsSpace) {
			return invalid("contact_email", "the contact address is an email address")
		}
	}
	if s.LogoURL != "" {
		u, err := url.Parse(s.LogoURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(s.LogoURL) > 500 {
			return invalid("logo_url", "the logo is an http or https URL of at most 500 characters")
		}
	}
	for _, c := range []struct{ field, v string }{{"primary_color", s.PrimaryColor}, {"accent_color", s.AccentColor}} {
		if c.v != "" && !colour.MatchString(c.v) {
			return invalid(c.field, "a colour is #rrggbb")
		}
	}
	return nil
}

// errNoRegistry answers settings requests on a data plane started without
// a registry connection for them.
var errNoRegistry = &apiError{Status: fiber.StatusServiceUnavailable, Code: "unavailable", Detail: "settings cannot be changed here"}

// settings reads the tenant's settings from the registry (not the
// directory's snapshot, which follows a change a moment later).
func (a *App) settings(r *req) (*shopSettings, error) {
	if a.registry == nil {
		return nil, errNoRegistry
	}
	var name string
	var raw []byte
	if err := a.registry.QueryRow(r.ctx, `SELECT display_name, settings FROM tenants WHERE id = $1`, r.tenant.ID).Scan(&name, &raw); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	var st tenancy.Settings
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	out := &shopSettings{ShopName: name, FrontendOrigin: st.FrontendOrigin}
	if b := st.Branding; b != nil {
		out.ContactEmail, out.ContactPhone, out.Tagline, out.LogoURL = b.ContactEmail, b.ContactPhone, b.Tagline, b.LogoURL
		out.PrimaryColor, out.AccentColor = b.PrimaryColor, b.AccentColor
	}
	return out, nil
}

// updateSettings replaces the editable settings. The registry's function
// writes them and the platform's audit entry in one transaction; the
// tenant's own audit log gets its entry after (two databases: no
// transaction spans both, and none is held across the other's call).
func (a *App) updateSettings(r *req, s shopSettings) (*shopSettings, error) {
	if err := s.clean(); err != nil {
		return nil, err
	}
	before, err := a.settings(r)
	if err != nil {
		return nil, err
	}
	brand, err := json.Marshal(s.branding())
	if err != nil {
		return nil, err
	}
	actor := fmt.Sprintf("staff:%d %s", r.who.staff.ID, r.who.staff.Email)
	_, err = a.registry.Exec(r.ctx, `SELECT backoffice_update_settings($1, $2, $3, $4, $5)`,
		r.tenant.ID, actor, s.ShopName, s.FrontendOrigin, brand)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "P0002" {
		return nil, &apiError{Status: fiber.StatusConflict, Code: "tenant-not-serving", Detail: "the shop is being changed by the platform; try again later"}
	}
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		return r.audit(tx, auditEntry{Action: "settings.updated", TargetType: "settings", Before: before, After: s})
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func (a *App) apiSettingsGet(c *fiber.Ctx) error {
	s, err := a.settings(a.r(c))
	if err != nil {
		return err
	}
	return c.JSON(s)
}

func (a *App) apiSettingsPut(c *fiber.Ctx) error {
	var in shopSettings
	if err := body(c, &in); err != nil {
		return err
	}
	s, err := a.updateSettings(a.r(c), in)
	if err != nil {
		return err
	}
	return c.JSON(s)
}

func (a *App) pageSettings(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Settings", "settings")
	s, err := a.settings(r)
	if err != nil {
		return a.render(c, "settings", v, err)
	}
	v.Data = s
	return a.render(c, "settings", v, nil)
}

func (a *App) pageSettingsPost(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Settings", "settings")
	in := shopSettings{
		ShopName: formValue(c, "shop_name"), FrontendOrigin: formValue(c, "frontend_origin"),
		ContactEmail: formValue(c, "contact_email"), ContactPhone: formValue(c, "contact_phone"),
		Tagline: formValue(c, "tagline"), LogoURL: formValue(c, "logo_url"),
		PrimaryColor: formValue(c, "primary_color"), AccentColor: formValue(c, "accent_color"),
	}
	s, err := a.updateSettings(r, in)
	if err != nil {
		v.Data = &in
		return a.render(c, "settings", v, err)
	}
	v.Data, v.Notice = s, "Saved. The storefront and every server show the new settings within a few seconds."
	markDone(c, v, nil)
	v.Site = s.ShopName
	return a.render(c, "settings", v, nil)
}
