package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/tenant/admin"
)

// ownerRequest creates a tenant's back-office owner. The password is the
// owner's first one: the CLI makes a strong one up when none is given and
// shows it once; it is never stored or answered back.
type ownerRequest struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

type ownerResponse struct {
	Tenant string `json:"tenant"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Role   string `json:"role"`
}

func (s *Server) ownerRoutes(v1 fiber.Router) {
	v1.Post("/tenants/:slug/owners", s.createOwner)
}

// createOwner adds an owner to the tenant's back office (its first one,
// typically), audited in both the tenant's and the platform's logs. An
// address that is already staff there is a conflict, never a second row.
func (s *Server) createOwner(c *fiber.Ctx) error {
	var req ownerRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	req.Email, req.Name = strings.TrimSpace(req.Email), strings.TrimSpace(req.Name)
	switch {
	case req.Email == "":
		return invalid("email", "email is required")
	case req.Name == "":
		return invalid("name", "name is required")
	case req.Password == "":
		return invalid("password", "password is required")
	}
	ctx := c.UserContext()
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	if t.Status != registry.StatusActive && t.Status != registry.StatusSuspended {
		return conflict("tenant %s is %s; its back office has no database to write to yet", t.Slug, t.Status)
	}
	who := actor(c)
	var created bool
	err = s.prov.InTenant(ctx, t.Slug, func(ctx context.Context, tx pgx.Tx) error {
		created, err = admin.CreateOwner(ctx, tx, s.opts.Hasher, req.Email, req.Name, req.Password, who)
		return err
	})
	if field, detail, ok := admin.ClientError(err); ok {
		return invalid(field, "%s", detail)
	}
	if err != nil {
		return err
	}
	if !created {
		return &Error{Status: http.StatusConflict, Code: codeConflict, Field: "email",
			Message: "this address already belongs to a staff member of " + t.Slug}
	}
	if err := s.reg.Audit(ctx, who, "tenant.owner_created", t.ID, nil, map[string]string{"email": req.Email, "name": req.Name}); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(ownerResponse{Tenant: t.Slug, Email: req.Email, Name: req.Name, Role: admin.RoleOwner})
}
