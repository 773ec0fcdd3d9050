package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// intParam reads an optional positive integer query parameter.
func intParam(c *fiber.Ctx, name string, def, max int64) (int64, error) {
	raw := c.Query(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 1 || n > max {
		return 0, invalid(name, "want an integer from 1 to %d", max)
	}
	return n, nil
}

// param returns a path parameter, percent-decoded (hostnames and origins are
// sent escaped).
func param(c *fiber.Ctx, name string) (string, error) {
	v, err := url.PathUnescape(c.Params(name))
	if err != nil {
		return "", invalid(name, "malformed percent-encoding")
	}
	return v, nil
}

// tenant loads the tenant named by the :slug path parameter (404 if none).
func (s *Server) tenant(c *fiber.Ctx) (registry.Tenant, error) {
	return s.reg.Tenant(c.UserContext(), c.Params("slug"))
}

// statusList names every tenant status for error messages.
func statusList() string {
	var b strings.Builder
	for i, st := range tenancy.Statuses() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(st))
	}
	return b.String()
}

type tenantPage struct {
	Tenants   []registry.Tenant `json:"tenants"`
	NextAfter *string           `json:"next_after"`
}

func (s *Server) listTenants(c *fiber.Ctx) error {
	limit, err := intParam(c, "limit", 50, 500)
	if err != nil {
		return err
	}
	var f registry.TenantFilter
	if st := c.Query("status"); st != "" {
		for _, v := range strings.Split(st, ",") {
			if !tenancy.Status(v).Valid() {
				return invalid("status", "want one or more of %s, comma-separated", statusList())
			}
			f.Statuses = append(f.Statuses, tenancy.Status(v))
		}
	}
	// One more than the page tells whether another page follows.
	f.After, f.Limit = c.Query("after"), int(limit)+1
	ts, err := s.reg.Tenants(c.UserContext(), f)
	if err != nil {
		return err
	}
	page := tenantPage{Tenants: ts}
	if len(ts) > int(limit) {
		page.Tenants = ts[:limit]
		last := page.Tenants[limit-1].Slug
		page.NextAfter = &last
	}
	if page.Tenants == nil {
		page.Tenants = []registry.Tenant{}
	}
	return c.JSON(page)
}

func (s *Server) getTenant(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (s *Server) createTenant(c *fiber.Ctx) error {
	var req provision.CreateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	kind := provision.OpCreate
	if req.ForkOf != "" {
		kind = provision.OpFork
	}
	return s.startCreate(c, req, kind)
}

// forkRequest is a CreateRequest whose source is in the path.
type forkRequest struct {
	Slug        string                 `json:"slug"`
	DisplayName string                 `json:"display_name"`
	Plan        string                 `json:"plan"`
	Domains     []string               `json:"domains"`
	Origins     []string               `json:"origins"`
	Settings    directory.Settings     `json:"settings"`
	Secrets     provision.SecretsInput `json:"secrets"`
}

func (s *Server) forkTenant(c *fiber.Ctx) error {
	src, err := s.tenant(c)
	if err != nil {
		return err
	}
	var req forkRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	return s.startCreate(c, provision.CreateRequest{
		Slug: req.Slug, DisplayName: req.DisplayName, Plan: req.Plan, ForkOf: src.Slug,
		Domains: req.Domains, Origins: req.Origins, Settings: req.Settings, Secrets: req.Secrets,
	}, provision.OpFork)
}

func (s *Server) updateTenant(c *fiber.Ctx) error {
	var req provision.TenantPatch
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, err := s.prov.Update(c.UserContext(), c.Params("slug"), req, actor(c))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

// suspendRequest is the optional body of POST /v1/tenants/{slug}/suspend.
type suspendRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) suspendTenant(c *fiber.Ctx) error {
	var req suspendRequest
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	t, err := s.prov.SuspendFor(c.UserContext(), c.Params("slug"), actor(c), req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (s *Server) resumeTenant(c *fiber.Ctx) error {
	t, err := s.prov.Resume(c.UserContext(), c.Params("slug"), actor(c))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (s *Server) deleteTenant(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	if t.Status == registry.StatusDeleted {
		return conflict("tenant %s is already deleted", t.Slug)
	}
	return s.accepted(c, kindDelete, &t)
}

func (s *Server) retryTenant(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	if t.Status != registry.StatusProvisioning && t.Status != registry.StatusFailed {
		return conflict("tenant %s is %s, nothing to retry", t.Slug, t.Status)
	}
	return s.accepted(c, kindRetry, &t)
}

func (s *Server) rotateSecrets(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	return s.accepted(c, kindRotate, &t)
}

func (s *Server) migrateTenant(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	if t.Status != registry.StatusActive && t.Status != registry.StatusSuspended {
		return conflict("tenant %s is %s and cannot be migrated", t.Slug, t.Status)
	}
	return s.accepted(c, kindMigrate, &t)
}

type hostnameRequest struct {
	Hostname string `json:"hostname"`
}

type originRequest struct {
	Origin string `json:"origin"`
}

func (s *Server) listDomains(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	details, err := s.reg.Domains(c.UserContext(), t.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"domains": nonNil(t.Domains), "details": details})
}

func (s *Server) addDomain(c *fiber.Ctx) error {
	var req hostnameRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	slug := c.Params("slug")
	if err := s.prov.AddDomain(c.UserContext(), slug, req.Hostname, actor(c)); err != nil {
		return err
	}
	return s.respondList(c, http.StatusCreated, "domains")
}

func (s *Server) removeDomain(c *fiber.Ctx) error {
	host, err := param(c, "hostname")
	if err != nil {
		return err
	}
	if err := s.prov.RemoveDomain(c.UserContext(), c.Params("slug"), host, actor(c)); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

func (s *Server) listOrigins(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"origins": nonNil(t.Origins)})
}

func (s *Server) addOrigin(c *fiber.Ctx) error {
	var req originRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.prov.AddOrigin(c.UserContext(), c.Params("slug"), req.Origin, actor(c)); err != nil {
		return err
	}
	return s.respondList(c, http.StatusCreated, "origins")
}

func (s *Server) removeOrigin(c *fiber.Ctx) error {
	origin, err := param(c, "origin")
	if err != nil {
		return err
	}
	if err := s.prov.RemoveOrigin(c.UserContext(), c.Params("slug"), origin, actor(c)); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// respondList answers with the tenant's current domains or origins.
func (s *Server) respondList(c *fiber.Ctx, status int, which string) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	list := t.Domains
	if which == "origins" {
		list = t.Origins
	}
	return c.Status(status).JSON(fiber.Map{which: nonNil(list)})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) getSecrets(c *fiber.Ctx) error {
	st, err := s.prov.SecretsStatus(c.UserContext(), c.Params("slug"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(st)
}

func (s *Server) putSecrets(c *fiber.Ctx) error {
	var in provision.SecretsInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	st, err := s.prov.SetSecrets(c.UserContext(), c.Params("slug"), in, actor(c))
	if err != nil {
		var inv *registry.InvalidError
		if errors.As(err, &inv) {
			// Validation names fields as "secrets.x"; here the body is the secrets object.
			return invalid(strings.TrimPrefix(inv.Field, "secrets."), "%s", inv.Message)
		}
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(st)
}
