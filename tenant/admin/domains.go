package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/customdomains"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// An owner adds the shop's own domains. The data plane may not write the
// registry's domains: backoffice_add_domain (platform migration 00013)
// stores the domain pending with a fresh token, and the control plane's
// checker marks it verified once the TXT record the page shows is served;
// only then does it route. backoffice_remove_domain stops routing one at
// once on every replica.

// domainRow is a domain as the registry's json_agg below spells it.
type domainRow struct {
	Hostname   string               `json:"hostname"`
	Default    bool                 `json:"default"`
	Status     tenancy.DomainStatus `json:"status"`
	Token      *string              `json:"token"`
	AddedBy    *string              `json:"added_by"`
	CheckedAt  *time.Time           `json:"checked_at"`
	CheckError *string              `json:"check_error"`
	Misses     int                  `json:"misses"`
	VerifiedAt *time.Time           `json:"verified_at"`
	ExpiresAt  *time.Time           `json:"expires_at"`
	CreatedAt  time.Time            `json:"created_at"`
}

const domainsQuery = `SELECT coalesce(json_agg(json_build_object('hostname', d.hostname, 'default', d.is_default,
	'status', d.status, 'token', d.token, 'added_by', d.added_by, 'checked_at', d.checked_at, 'check_error', d.check_error,
	'misses', d.misses, 'verified_at', d.verified_at, 'expires_at', d.expires_at, 'created_at', d.created_at) ORDER BY d.is_default DESC, d.hostname), '[]')
	FROM domains d WHERE d.tenant_id = $1`

// domains lists the tenant's domains from the registry (not the
// directory's snapshot, which holds only the verified ones).
func (a *App) domains(r *req) ([]registry.Domain, error) {
	if a.registry == nil {
		return nil, errNoRegistry
	}
	var raw []byte
	if err := a.registry.QueryRow(r.ctx, domainsQuery, r.tenant.ID).Scan(&raw); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	var rows []domainRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	out := make([]registry.Domain, len(rows))
	for i, d := range rows {
		out[i] = registry.Domain{Hostname: d.Hostname, Default: d.Default, Status: d.Status, AddedBy: d.AddedBy,
			CheckedAt: d.CheckedAt, CheckError: d.CheckError, Misses: d.Misses, VerifiedAt: d.VerifiedAt, ExpiresAt: d.ExpiresAt, CreatedAt: d.CreatedAt}
		if d.Token != nil {
			out[i].Challenge = registry.ChallengeFor(d.Hostname, *d.Token)
		}
	}
	return out, nil
}

// cleanHostname normalizes an owner's hostname and refuses what no shop
// may add: not a DNS name, localhost, or a name under the platform's base
// domain (tenants' subdomains there are the platform's).
func (a *App) cleanHostname(in string) (string, error) {
	h, err := registry.NormalizeHostname(strings.TrimSuffix(strings.TrimSpace(in), "."))
	if err != nil || h == "localhost" {
		return "", invalid("hostname", "want a domain name such as shop.example.com, without http://, port or path")
	}
	if b := a.baseDomain; b != "" && (h == b || strings.HasSuffix(h, "."+b)) {
		return "", invalid("hostname", "names under "+b+" are the platform's; add a domain of your own")
	}
	return h, nil
}

func (a *App) actor(r *req) string {
	return fmt.Sprintf("staff:%d %s", r.who.staff.ID, r.who.staff.Email)
}

// addDomain stores hostname pending with a new token and returns it with
// the record to publish. The registry's function audits it on the
// platform's side, the tenant's own log after (no transaction spans the
// two databases).
func (a *App) addDomain(r *req, hostname string) (*registry.Domain, error) {
	if a.registry == nil {
		return nil, errNoRegistry
	}
	h, err := a.cleanHostname(hostname)
	if err != nil {
		return nil, err
	}
	_, err = a.registry.Exec(r.ctx, `SELECT backoffice_add_domain($1, $2, $3, $4)`, r.tenant.ID, a.actor(r), h, customdomains.NewToken())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "P0002":
			return nil, &apiError{Status: fiber.StatusConflict, Code: "tenant-not-serving", Detail: "the shop is being changed by the platform; try again later"}
		case "23505":
			return nil, &apiError{Status: fiber.StatusConflict, Code: "domain-taken", Field: "hostname", Detail: h + " is already in use by another shop"}
		case "54000":
			return nil, planLimited(r.tenant.Plan, deref(r.tenant.Plan.CustomDomains), "custom domains")
		case "22023":
			return nil, invalid("hostname", "want a domain name of your own, such as shop.example.com")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("add domain: %w", err)
	}
	ds, err := a.domains(r)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i].Hostname == h {
			d := &ds[i]
			err := a.tx(r, func(tx pgx.Tx) error {
				return r.audit(tx, auditEntry{Action: "domain.added", TargetType: "domain", After: map[string]any{"hostname": h, "status": d.Status}})
			})
			return d, err
		}
	}
	return nil, fmt.Errorf("add domain: %s not found after adding it", h)
}

// removeDomain stops routing hostname; the registry's delete wakes every
// replica's directory at its commit.
func (a *App) removeDomain(r *req, hostname string) error {
	if a.registry == nil {
		return errNoRegistry
	}
	h := strings.ToLower(strings.TrimSpace(hostname))
	var removed bool
	err := a.registry.QueryRow(r.ctx, `SELECT backoffice_remove_domain($1, $2, $3)`, r.tenant.ID, a.actor(r), h).Scan(&removed)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "P0002":
			return &apiError{Status: fiber.StatusConflict, Code: "tenant-not-serving", Detail: "the shop is being changed by the platform; try again later"}
		case "55000":
			return &apiError{Status: fiber.StatusConflict, Code: "domain-in-use", Field: "hostname",
				Detail: h + " is the shop's default domain or serves its own site, and cannot be removed"}
		}
	}
	if err != nil {
		return fmt.Errorf("remove domain: %w", err)
	}
	if !removed {
		return errNotFound
	}
	return a.tx(r, func(tx pgx.Tx) error {
		return r.audit(tx, auditEntry{Action: "domain.removed", TargetType: "domain", Before: map[string]any{"hostname": h}})
	})
}

func (a *App) apiDomainList(c *fiber.Ctx) error {
	ds, err := a.domains(a.r(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"domains": ds})
}

func (a *App) apiDomainAdd(c *fiber.Ctx) error {
	var in struct {
		Hostname string `json:"hostname"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.Hostname) == "" {
		return required("hostname")
	}
	d, err := a.addDomain(a.r(c), in.Hostname)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(d)
}

func (a *App) apiDomainRemove(c *fiber.Ctx) error {
	if err := a.removeDomain(a.r(c), c.Params("hostname")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// mountDomainPages adds the domains page (owners): each domain with its
// state and the record to publish, a form to add one, and removal.
func (a *App) mountDomainPages(g fiber.Router) {
	g.Get("/domains", a.pageGuard(ownerOnly), a.pageDomains)
	g.Post("/domains", a.pageGuard(ownerOnly), a.pageDomainAdd)
	g.Post("/domains/remove", a.pageGuard(ownerOnly), a.pageDomainRemove)
}

func (a *App) renderDomains(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Domains", "domains")
	ds, err := a.domains(r)
	if err != nil {
		return a.render(c, "domains", v, err)
	}
	v.Data, v.Notice = ds, notice
	markDone(c, v, actionErr)
	return a.render(c, "domains", v, actionErr)
}

func (a *App) pageDomains(c *fiber.Ctx) error { return a.renderDomains(c, "", nil) }

func (a *App) pageDomainAdd(c *fiber.Ctx) error {
	h := formValue(c, "hostname")
	if strings.TrimSpace(h) == "" {
		return a.renderDomains(c, "", required("hostname"))
	}
	d, err := a.addDomain(a.r(c), h)
	if err != nil {
		return a.renderDomains(c, "", err)
	}
	return a.renderDomains(c, d.Hostname+" added. Create its TXT record below; the domain serves the shop once the record is seen.", nil)
}

func (a *App) pageDomainRemove(c *fiber.Ctx) error {
	if formValue(c, "confirm") != "yes" {
		return a.renderDomains(c, "", errUnconfirmed)
	}
	h := formValue(c, "hostname")
	if err := a.removeDomain(a.r(c), h); err != nil {
		return a.renderDomains(c, "", err)
	}
	return a.renderDomains(c, h+" removed; it no longer serves the shop.", nil)
}
