package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/startupwebapp/platform/controlplane/importer"
	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
)

// kindImport imports a Django StartupWebApp database into a tenant.
const kindImport = "import-django"

// The request of an accepted import, with its source connection string and
// any Django SECRET_KEY, is kept in the secrets store under the tenant (never
// in the operation record or a log), so a control plane that restarts can
// run it again; it is deleted once the import has finished either way (a
// new import of the tenant replaces one left behind).
func importSecretName(slug string) string { return secrets.TenantSecretName(slug) + "/import-django" }

// errImportLost answers a resumed import whose stored request is gone.
var errImportLost = errors.New("the import's source connection is no longer stored (it is kept only while the import runs); start the import again with its --from")

func (s *Server) importRoutes(v1 fiber.Router) {
	v1.Post("/tenants/:slug/import-django", s.importDjango)
	v1.Get("/operations/:id/report", s.operationReport)
}

func (s *Server) importer() *importer.Runner {
	return &importer.Runner{Provision: s.prov, Secrets: s.prov.Secrets(), Log: s.log}
}

// importDjango accepts an import: the tenant is reserved first when there is
// none (as by POST /v1/tenants), the request stored as a secret, and the
// operation queued.
func (s *Server) importDjango(c *fiber.Ctx) error {
	var req importer.Request
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	req.Slug = c.Params("slug")
	if err := req.Validate(); err != nil {
		return err
	}
	ctx := c.UserContext()
	store := s.prov.Secrets()
	pending, err := s.reg.PendingOperations(ctx)
	if err != nil {
		return err
	}
	for _, op := range pending {
		if op.Kind == kindImport && op.TenantSlug != nil && *op.TenantSlug == req.Slug {
			return conflict("an import into %s is already queued or running (operation %s)", req.Slug, op.ID)
		}
	}
	t, err := s.reg.Tenant(ctx, req.Slug)
	if errors.Is(err, registry.ErrNotFound) && req.DryRun {
		return conflict("a dry run needs the tenant %s to exist; create it first or import without dry_run", req.Slug)
	} else if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	if err := s.admit(c); err != nil {
		return err
	}
	if t.ID == 0 {
		t, err = s.prov.Reserve(ctx, provision.CreateRequest{Slug: req.Slug, DisplayName: req.Name, Domains: req.Domains, Origins: req.Origins}, actor(c))
		if err != nil && t.ID == 0 {
			s.work.release()
			return err
		}
		// Reserved with a failed secrets step: the import's Ensure resumes it.
	}
	raw, err := json.Marshal(req)
	if err != nil {
		s.work.release()
		return err
	}
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.RequestTimeout)
	defer cancel()
	if _, err := store.Put(rec, importSecretName(req.Slug), raw); err != nil {
		s.work.release()
		return err
	}
	return s.queue(rec, c, kindImport, t.ID, t.Slug, &t)
}

// runImport is the import operation: it reads its request back from the
// secrets store, runs it, and forgets the request once it is done.
func (s *Server) runImport(slug, who string) runFunc {
	return func(ctx context.Context) error {
		store := s.prov.Secrets()
		raw, err := store.Get(ctx, importSecretName(slug))
		if errors.Is(err, secrets.ErrNotFound) {
			return errImportLost
		}
		if err != nil {
			return err
		}
		var req importer.Request
		if err := json.Unmarshal(raw, &req); err != nil {
			return fmt.Errorf("import %s: stored request is malformed", slug)
		}
		_, runErr := s.importer().Run(ctx, req, who, operationID(ctx))
		if runErr != nil && s.ctx.Err() != nil {
			return runErr // stopped by the shutdown: kept for the next start
		}
		forget, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := store.Delete(forget, importSecretName(slug)); err != nil && runErr == nil {
			return fmt.Errorf("import %s: forget the source connection: %w", slug, err)
		}
		return runErr
	}
}

type operationReportBody struct {
	Operation operationView    `json:"operation"`
	Report    *importer.Report `json:"report"`
}

// operationReport answers the report of an import operation: null until it
// has finished.
func (s *Server) operationReport(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return invalid("id", "want an operation id (a UUID)")
	}
	ctx := c.UserContext()
	op, err := s.reg.GetOperation(ctx, id)
	if err != nil {
		return err
	}
	if op.Kind != kindImport || op.TenantSlug == nil {
		return &Error{Status: fiber.StatusNotFound, Code: codeNotFound, Message: "operation " + id.String() + " has no report (only import-django operations do)"}
	}
	rep, err := importer.LastReport(ctx, s.reg, *op.TenantSlug, id.String())
	if err != nil {
		return err
	}
	return c.JSON(operationReportBody{Operation: view(op), Report: rep})
}

type operationIDKey struct{}

// withOperationID gives an operation's context its id, for the records it
// writes.
func withOperationID(ctx context.Context, id uuid.UUID) context.Context {
	return context.WithValue(ctx, operationIDKey{}, id.String())
}

func operationID(ctx context.Context) string {
	id, _ := ctx.Value(operationIDKey{}).(string)
	return id
}
