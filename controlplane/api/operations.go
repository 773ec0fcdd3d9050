package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
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

var (
	errClosing = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "the control plane is shutting down; try again"}
	errBusy    = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
		Message: "the control plane is busy with other operations; try again after Retry-After seconds"}
)

// busyRetryAfter is the Retry-After, in seconds, of a request refused
// because every operation worker and queue slot is taken.
const busyRetryAfter = 5

// runFunc runs one operation on a context with the operation deadline.
type runFunc func(ctx context.Context) error

// admit takes a worker slot for an operation about to be accepted: 503 with
// Retry-After when there is none, before anything is recorded.
func (s *Server) admit(c *fiber.Ctx) error {
	ok, closing := s.work.reserve()
	switch {
	case closing:
		return errClosing
	case !ok:
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(busyRetryAfter))
		return errBusy
	}
	return nil
}

// accepted records an operation of kind on t (nil: none) as queued, hands
// it to the workers, and answers 202 with the operation and the tenant as it
// is now.
func (s *Server) accepted(c *fiber.Ctx, kind string, t *registry.Tenant) error {
	if err := s.admit(c); err != nil {
		return err
	}
	var (
		tid  int64
		slug string
	)
	if t != nil {
		tid, slug = t.ID, t.Slug
	}
	return s.queue(c.UserContext(), c, kind, tid, slug, t)
}

// queue records an operation in a slot taken by admit, on ctx, and queues it.
func (s *Server) queue(ctx context.Context, c *fiber.Ctx, kind string, tenantID int64, slug string, t *registry.Tenant) error {
	who := actor(c)
	run, err := s.runner(kind, slug, who)
	if err != nil {
		s.work.release()
		return err
	}
	id, err := s.reg.QueueOperation(ctx, kind, tenantID, who)
	if err != nil {
		s.work.release()
		return err
	}
	s.work.push(job{id: id, kind: kind, run: run})
	return s.respondAccepted(ctx, c, id, t)
}

func (s *Server) respondAccepted(ctx context.Context, c *fiber.Ctx, id uuid.UUID, t *registry.Tenant) error {
	op, err := s.reg.GetOperation(ctx, id)
	if err != nil {
		return err
	}
	c.Location(operationURL(id))
	return c.Status(http.StatusAccepted).JSON(acceptedBody{Operation: view(op), Tenant: t})
}

// runner is what an operation of kind on the tenant slug runs, for the
// admin who. It is rebuilt from the operation's record after a restart, so
// it needs nothing else: the workflows resume from their recorded steps.
func (s *Server) runner(kind, slug, who string) (runFunc, error) {
	if slug == "" && kind != kindMigrateAll {
		return nil, fmt.Errorf("operation %s has no tenant", kind)
	}
	switch kind {
	case provision.OpCreate, provision.OpFork, kindRetry:
		return func(ctx context.Context) error {
			_, err := s.prov.Retry(ctx, slug, who)
			if errors.Is(err, registry.ErrConflict) {
				// Finished already: resumed after a stop that came between
				// the workflow's end and the operation's record.
				if t, terr := s.reg.Tenant(ctx, slug); terr == nil &&
					(t.Status == registry.StatusActive || t.Status == registry.StatusSuspended) {
					return nil
				}
			}
			return err
		}, nil
	case kindDelete:
		return func(ctx context.Context) error {
			_, err := s.prov.Delete(ctx, slug, who)
			return err
		}, nil
	case kindRotate:
		return func(ctx context.Context) error { return s.prov.RotateSecrets(ctx, slug, who) }, nil
	case kindMigrate:
		return func(ctx context.Context) error {
			_, err := s.prov.Migrate(ctx, slug, who)
			return err
		}, nil
	case kindMigrateAll:
		return s.migrateAll, nil
	case kindImport:
		return s.runImport(slug, who), nil
	case kindMove:
		return func(ctx context.Context) error {
			_, err := s.prov.Move(ctx, slug, "", who) // the move recorded by its request
			return err
		}, nil
	}
	return nil, fmt.Errorf("unknown operation kind %q", kind)
}

// Operation kinds besides the workflows' own (provision.OpCreate, OpFork).
const (
	kindRetry      = "retry"
	kindDelete     = "delete"
	kindRotate     = "rotate-secrets"
	kindMigrate    = "migrate"
	kindMigrateAll = "migrate-all"
)

// execute runs one operation on a worker, with the operation deadline, and
// records its outcome. One cut off by the server's shutdown is left queued
// or running in the registry: the next start runs it again.
func (s *Server) execute(j job) {
	rec, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	err := s.reg.OperationStarted(rec, j.id)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Error("starting operation", "operation", j.id, "kind", j.kind, "err", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(withOperationID(s.ctx, j.id), s.opts.OperationTimeout)
	err = j.run(ctx)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	if err != nil && s.ctx.Err() != nil {
		s.log.Warn("operation stopped by the shutdown; the next start resumes it", "operation", j.id, "kind", j.kind)
		return
	}
	if err != nil && timedOut {
		err = fmt.Errorf("timed out after %s: %w", s.opts.OperationTimeout, err)
	}
	s.finish(j.id, j.kind, err)
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
// are answered directly, then queues the remaining steps and answers 202
// with the reserved tenant and the operation to poll. A worker slot is taken
// first: with none free nothing is reserved.
func (s *Server) startCreate(c *fiber.Ctx, req provision.CreateRequest, kind string) error {
	if err := s.admit(c); err != nil {
		return err
	}
	t, err := s.prov.Reserve(c.UserContext(), req, actor(c))
	if err != nil && t.ID == 0 {
		s.work.release()
		return err // refused before anything was reserved
	}
	// Once the tenant is reserved its operation is recorded even if the
	// request's deadline has passed meanwhile, so the client can follow it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), 10*time.Second)
	defer cancel()
	if err != nil {
		// Reserved, then the secrets step failed: the tenant is failed and
		// a retry resumes it.
		s.work.release()
		id, oerr := s.reg.QueueOperation(ctx, kind, t.ID, actor(c))
		if oerr != nil {
			return oerr
		}
		s.finish(id, kind, err)
		return s.respondAccepted(ctx, c, id, &t)
	}
	return s.queue(ctx, c, kind, t.ID, t.Slug, &t)
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
	return s.accepted(c, kindMigrateAll, nil)
}

// migrateAll migrates every tenant; its error names the ones that failed.
func (s *Server) migrateAll(ctx context.Context) error {
	results, err := s.prov.MigrateAll(ctx, s.opts.MigrateConcurrency, func(r provision.MigrateResult) {
		if r.Error != "" {
			s.log.Warn("tenant migration failed", "tenant", r.Slug, "err", r.Error)
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
	return err
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
