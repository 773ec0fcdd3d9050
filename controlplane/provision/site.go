package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/sites"
)

// A site deploy reports its crash points to Options.InStep as op OpSite,
// step StepSiteDeploy, and the points of sites.DeployPoints.
const (
	OpSite         = "site"
	StepSiteDeploy = "deploy"
)

func (s *Service) newSites() (*sites.Store, error) {
	var hook func(ctx context.Context, point string) error
	if s.opts.InStep != nil {
		hook = func(ctx context.Context, point string) error {
			return s.opts.InStep(ctx, OpSite, StepSiteDeploy, point)
		}
	}
	return sites.New(sites.Options{DB: s.opts.Platform, Blobs: s.opts.SiteBlobs, Retain: s.opts.SiteRetain, Hook: hook})
}

// siteTenant returns the tenant a site change is for: any tenant but one
// being deleted or deleted.
func (s *Service) siteTenant(ctx context.Context, slug string) (registry.Tenant, error) {
	t, err := s.reg.Tenant(ctx, slug)
	if err != nil {
		return t, err
	}
	if t.Status == registry.StatusDeleting || t.Status == registry.StatusDeleted {
		return t, fmt.Errorf("tenant %s is %s: %w", slug, t.Status, registry.ErrConflict)
	}
	return t, nil
}

// siteAudit records a site change for actor in the change's transaction.
func siteAudit(actor string, tenantID int64) sites.Audit {
	return func(ctx context.Context, tx pgx.Tx, action string, before, after any) error {
		return registry.Audit(ctx, tx, actor, action, tenantID, before, after)
	}
}

// siteError carries a sites error as the registry's kind of it, so the
// admin API maps both the same way.
type siteError struct {
	err  error
	kind error
}

func (e *siteError) Error() string { return e.err.Error() }
func (e *siteError) Unwrap() []error {
	return []error{e.err, e.kind}
}

func mapSiteError(err error) error {
	var fe *sites.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return &registry.InvalidError{Field: fe.Field, Message: fe.Message}
	case errors.Is(err, sites.ErrNotFound):
		return &siteError{err, registry.ErrNotFound}
	case errors.Is(err, sites.ErrConflict):
		return &siteError{err, registry.ErrConflict}
	}
	return err
}

// DeploySite makes bundle the tenant's served site version. It runs while
// the caller waits (the bundle is in memory, bounded by sites.Limits); one
// cut off anywhere leaves the previous version served, and the same call
// again completes it.
func (s *Service) DeploySite(ctx context.Context, slug string, bundle *sites.Bundle, actor string) (sites.Version, error) {
	t, err := s.siteTenant(ctx, slug)
	if err != nil {
		return sites.Version{}, err
	}
	if err := s.checkSiteStorage(ctx, t, bundle); err != nil {
		return sites.Version{}, err
	}
	v, err := s.sites.Deploy(ctx, t.ID, bundle, actor, siteAudit(actor, t.ID))
	if err != nil {
		return sites.Version{}, mapSiteError(fmt.Errorf("tenant %s: %w", slug, err))
	}
	return v, nil
}

// Site returns the tenant's site: mode, domain, served version and the
// versions kept.
func (s *Service) Site(ctx context.Context, slug string) (sites.Site, error) {
	t, err := s.reg.Tenant(ctx, slug)
	if err != nil {
		return sites.Site{}, err
	}
	site, err := s.sites.Get(ctx, t.ID)
	return site, mapSiteError(err)
}

// RollbackSite serves a kept version again.
func (s *Service) RollbackSite(ctx context.Context, slug string, number int, actor string) (sites.Site, error) {
	t, err := s.siteTenant(ctx, slug)
	if err != nil {
		return sites.Site{}, err
	}
	site, err := s.sites.Rollback(ctx, t.ID, number, siteAudit(actor, t.ID))
	return site, mapSiteError(err)
}

// SetSiteMode chooses where the tenant's site is served: sites.ModeReplace
// on every host, or sites.ModeDomain on domain, one of the tenant's domains.
func (s *Service) SetSiteMode(ctx context.Context, slug, mode, domain, actor string) (sites.Site, error) {
	t, err := s.siteTenant(ctx, slug)
	if err != nil {
		return sites.Site{}, err
	}
	if mode == sites.ModeDomain && domain != "" {
		if domain, err = registry.NormalizeHostname(domain); err != nil {
			return sites.Site{}, &registry.InvalidError{Field: "domain", Message: "want one of the tenant's domains, such as www.example.com"}
		}
	}
	site, err := s.sites.SetMode(ctx, t.ID, mode, domain, siteAudit(actor, t.ID))
	return site, mapSiteError(err)
}

// DeleteSiteVersion deletes a version that is not served.
func (s *Service) DeleteSiteVersion(ctx context.Context, slug string, number int, actor string) error {
	t, err := s.siteTenant(ctx, slug)
	if err != nil {
		return err
	}
	return mapSiteError(s.sites.DeleteVersion(ctx, t.ID, number, siteAudit(actor, t.ID)))
}

// checkSiteStorage refuses a deploy whose files would take the tenant's
// stored site bytes (its blobs, every kept version's files once) past the
// plan's storage_bytes: a *registry.PlanLimitError, 403 plan_limit. Files
// already stored count once; compressed copies are not counted. Two
// deploys of one tenant at the same moment are checked each on its own.
func (s *Service) checkSiteStorage(ctx context.Context, t registry.Tenant, b *sites.Bundle) error {
	plan, err := s.reg.Plan(ctx, t.Plan)
	if err != nil || plan.StorageBytes == nil {
		return err
	}
	sums := make([][]byte, 0, len(b.Files))
	sizes := make([]int64, 0, len(b.Files))
	for _, f := range b.Files {
		sums = append(sums, f.Sum[:])
		sizes = append(sizes, int64(len(f.Data)))
	}
	var after int64
	if err := s.opts.Platform.QueryRow(ctx, `SELECT
  (SELECT coalesce(sum(size), 0) FROM site_blobs WHERE tenant_id = $1)
+ (SELECT coalesce(sum(n.size), 0) FROM (SELECT DISTINCT ON (sum) sum, size FROM unnest($2::bytea[], $3::bigint[]) AS f (sum, size)) n
    WHERE NOT EXISTS (SELECT 1 FROM site_blobs b WHERE b.tenant_id = $1 AND b.sha256 = n.sum))`,
		t.ID, sums, sizes).Scan(&after); err != nil {
		return fmt.Errorf("tenant %s: site storage: %w", t.Slug, err)
	}
	if after > *plan.StorageBytes {
		return &registry.PlanLimitError{Plan: plan.DisplayName, Limit: *plan.StorageBytes,
			What: fmt.Sprintf("bytes of site storage (this deploy would make %d)", after)}
	}
	return nil
}
