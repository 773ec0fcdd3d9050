package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// operationView is an operation with the URL to poll it at.
type operationView struct {
	registry.Operation
	URL string `json:"url"`
}

func operationURL(id uuid.UUID) string { return "/v1/operations/" + id.String() }

func view(op registry.Operation) operationView {
	return operationView{Operation: op, URL: operationURL(op.ID)}
}

// acceptedBody answers a request that started a long operation.
type acceptedBody struct {
	Operation operationView    `json:"operation"`
	Tenant    *registry.Tenant `json:"tenant,omitempty"`
}

var errClosing = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "the control plane is shutting down; try again"}

// track registers a background goroutine, unless the server is shutting down.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.ops.Add(1)
	return true
}

// accepted records an operation of kind on t, runs fn on the server's
// lifetime context, and answers 202 with the operation and the tenant as it
// is now.
func (s *Server) accepted(c *fiber.Ctx, kind string, t registry.Tenant, fn func(ctx context.Context) error) error {
	if !s.track() {
		return errClosing
	}
	id, err := s.reg.StartOperation(c.UserContext(), kind, t.ID)
	if err != nil {
		s.ops.Done()
		return err
	}
	go func() {
		defer s.ops.Done()
		s.finish(id, kind, fn(s.ctx))
	}()
	return s.respondAccepted(c, id, &t)
}

func (s *Server) respondAccepted(c *fiber.Ctx, id uuid.UUID, t *registry.Tenant) error {
	op, err := s.reg.GetOperation(c.UserContext(), id)
	if err != nil {
		return err
	}
	c.Location(operationURL(id))
	return c.Status(http.StatusAccepted).JSON(acceptedBody{Operation: view(op), Tenant: t})
}

// finish records the outcome of an operation. The recorded message has any
// credential removed; the full error goes to the log.
func (s *Server) finish(id uuid.UUID, kind string, opErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recorded error
	if opErr != nil {
		recorded = errors.New(publicMessage(opErr))
		s.log.Error("operation failed", "operation", id, "kind", kind, "err", publicMessage(opErr))
	} else {
		s.log.Info("operation succeeded", "operation", id, "kind", kind)
	}
	if err := s.reg.FinishOperation(ctx, id, recorded); err != nil {
		s.log.Error("recording operation outcome", "operation", id, "err", err)
	}
}

// startCreate reserves the tenant (row, domains, origins and secrets) while
// the request waits, so bad input (400) and a taken slug or hostname (409)
// are answered directly, then runs the remaining steps in the background and
// answers 202 with the reserved tenant and the operation to poll.
func (s *Server) startCreate(c *fiber.Ctx, req provision.CreateRequest, kind string) error {
	if !s.track() {
		return errClosing
	}
	ctx := c.UserContext()
	who := actor(c)
	t, err := s.prov.Reserve(ctx, req, who)
	if err != nil && t.ID == 0 {
		s.ops.Done()
		return err // refused before anything was reserved
	}
	id, oerr := s.reg.StartOperation(ctx, kind, t.ID)
	if oerr != nil {
		s.ops.Done()
		return oerr
	}
	if err != nil {
		// Reserved, then the secrets step failed: the tenant is failed and
		// a retry resumes it.
		s.ops.Done()
		s.finish(id, kind, err)
		return s.respondAccepted(c, id, &t)
	}
	go func() {
		defer s.ops.Done()
		_, err := s.prov.Retry(s.ctx, t.Slug, who)
		s.finish(id, kind, err)
	}()
	return s.respondAccepted(c, id, &t)
}

func (s *Server) getOperation(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return invalid("id", "want an operation id (a UUID)")
	}
	op, err := s.reg.GetOperation(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(view(op))
}

// tenantVersion is one line of the migration status.
type tenantVersion struct {
	Slug                string                   `json:"slug"`
	Status              tenancy.Status           `json:"status"`
	SchemaVersion       int64                    `json:"schema_version"`
	Current             bool                     `json:"current"`
	LastMigrationStatus *tenancy.MigrationStatus `json:"last_migration_status"`
	LastMigrationError  *string                  `json:"last_migration_error"`
	LastMigrationAt     *time.Time               `json:"last_migration_at"`
}

func (s *Server) migrationStatus(c *fiber.Ctx) error {
	latest := s.prov.LatestMigration()
	ts, err := s.reg.Tenants(c.UserContext(), registry.TenantFilter{})
	if err != nil {
		return err
	}
	out := make([]tenantVersion, 0, len(ts))
	for _, t := range ts {
		out = append(out, tenantVersion{
			Slug: t.Slug, Status: t.Status, SchemaVersion: t.SchemaVersion, Current: t.SchemaVersion >= latest,
			LastMigrationStatus: t.LastMigrationStatus, LastMigrationError: t.LastMigrationError, LastMigrationAt: t.LastMigrationAt,
		})
	}
	return c.JSON(fiber.Map{"latest": latest, "tenants": out})
}

func (s *Server) runMigrations(c *fiber.Ctx) error {
	if !s.track() {
		return errClosing
	}
	id, err := s.reg.StartOperation(c.UserContext(), "migrate-all", 0)
	if err != nil {
		s.ops.Done()
		return err
	}
	go func() {
		defer s.ops.Done()
		results, err := s.prov.MigrateAll(s.ctx, s.opts.MigrateConcurrency, func(r provision.MigrateResult) {
			if r.Error != "" {
				s.log.Warn("tenant migration failed", "operation", id, "tenant", r.Slug, "err", r.Error)
			}
		})
		if err != nil {
			var failed []string
			for _, r := range results {
				if r.Error != "" {
					failed = append(failed, r.Slug)
				}
			}
			if len(failed) > 0 {
				err = fmt.Errorf("%d of %d tenants failed to migrate: %s", len(failed), len(results), strings.Join(failed, ", "))
			}
		}
		s.finish(id, "migrate-all", err)
	}()
	return s.respondAccepted(c, id, nil)
}

type auditPage struct {
	Entries    []registry.AuditEntry `json:"entries"`
	NextBefore *int64                `json:"next_before"`
}

func (s *Server) listAudit(c *fiber.Ctx) error {
	limit, err := intParam(c, "limit", 50, 500)
	if err != nil {
		return err
	}
	before, err := intParam(c, "before", 0, 1<<62)
	if err != nil {
		return err
	}
	slug := c.Query("tenant")
	ctx := c.UserContext()
	if slug != "" {
		if _, err := s.reg.Tenant(ctx, slug); err != nil {
			return err
		}
	}
	entries, err := s.reg.ListAudit(ctx, registry.AuditFilter{TenantSlug: slug, BeforeID: before, Limit: int(limit)})
	if err != nil {
		return err
	}
	page := auditPage{Entries: entries}
	if page.Entries == nil {
		page.Entries = []registry.AuditEntry{}
	}
	if n := len(entries); int64(n) == limit {
		last := entries[n-1].ID
		page.NextBefore = &last
	}
	return c.JSON(page)
}
