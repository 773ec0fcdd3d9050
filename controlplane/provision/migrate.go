package provision

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// MigrateResult is the outcome of migrating one tenant's database.
type MigrateResult struct {
	Slug     string        `json:"slug"`
	From     int64         `json:"from"`
	To       int64         `json:"to"`
	Applied  int           `json:"applied"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// migrateTenant applies pending tenant migrations, connected as the tenant's
// own role so new objects belong to it.
func (s *Service) migrateTenant(ctx context.Context, sv *server, t registry.Tenant) (migrations.Result, error) {
	b, err := secrets.LoadBundle(ctx, s.opts.Secrets, t.SecretsRef)
	if err != nil {
		return migrations.Result{}, err
	}
	db := stdlib.OpenDB(*sv.as(t.DBName, t.DBRole, b.DBPassword))
	defer db.Close()
	res, err := migrations.UpFS(ctx, db, s.tenantFS)
	if err != nil {
		return res, fmt.Errorf("database %s: %w", t.DBName, err)
	}
	return res, nil
}

// Migrate applies pending tenant migrations to one tenant (active or
// suspended) and records the result in the registry.
func (s *Service) Migrate(ctx context.Context, slug, actor string) (MigrateResult, error) {
	t, err := s.reg.Tenant(ctx, slug)
	if err != nil {
		return MigrateResult{Slug: slug, Error: err.Error()}, err
	}
	if t.Status != registry.StatusActive && t.Status != registry.StatusSuspended {
		err := fmt.Errorf("tenant %s is %s: %w", slug, t.Status, registry.ErrConflict)
		return MigrateResult{Slug: slug, Error: err.Error()}, err
	}
	res := s.migrateOne(ctx, t, actor, s.lookup)
	if res.Error != "" {
		return res, fmt.Errorf("migrate %s: %s", slug, res.Error)
	}
	return res, nil
}

// migrateOne migrates one tenant; servers finds its database server's settings.
func (s *Service) migrateOne(ctx context.Context, t registry.Tenant, actor string,
	servers func(context.Context, *int64) (*server, error)) MigrateResult {
	start := time.Now()
	out := MigrateResult{Slug: t.Slug, From: t.SchemaVersion, To: t.SchemaVersion}
	err := func() error {
		sv, err := servers(ctx, t.DBServerID)
		if err != nil {
			return err
		}
		res, err := s.migrateTenant(ctx, sv, t)
		if err == nil {
			out.From, out.To, out.Applied = res.From, res.To, res.Applied
		}
		if rerr := s.reg.RecordMigration(ctx, t.ID, res.To, err); rerr != nil && err == nil {
			err = rerr
		}
		return err
	}()
	out.Duration = time.Since(start)
	if err != nil {
		out.Error = err.Error()
	}
	if err != nil || out.Applied > 0 {
		if aerr := s.reg.Audit(context.Background(), actor, "tenant.migrate", t.ID, nil, out); aerr != nil {
			s.log.Error("audit migrate", "tenant", t.Slug, "err", aerr)
		}
	}
	return out
}

// MigrateAllActor is the audit actor of MigrateAll.
const MigrateAllActor = "migrate-all"

// MigrateAll migrates every active and suspended tenant (a suspended one
// resumes on the newest schema), at most concurrency at a time, calling
// progress after each. One tenant's failure does not stop the others: it is
// in its result, and the returned error only reports that some failed.
// Results are sorted by slug.
func (s *Service) MigrateAll(ctx context.Context, concurrency int, progress func(MigrateResult)) ([]MigrateResult, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	tenants, err := s.reg.Tenants(ctx, registry.TenantFilter{Statuses: []tenancy.Status{registry.StatusActive, registry.StatusSuspended}})
	if err != nil {
		return nil, err
	}
	results := s.migrateSet(ctx, tenants, concurrency, s.serverCache(), progress)
	failed := 0
	for _, r := range results {
		if r.Error != "" {
			failed++
		}
	}
	if failed > 0 {
		return results, fmt.Errorf("migrate: %d of %d tenants failed", failed, len(results))
	}
	return results, ctx.Err()
}
