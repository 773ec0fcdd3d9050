package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Tenant statuses: the registry's names for the statuses of package
// tenancy, which owns the list and what each means for routing.
const (
	StatusProvisioning = tenancy.Provisioning
	StatusActive       = tenancy.Active
	StatusSuspended    = tenancy.Suspended
	StatusFailed       = tenancy.Failed
	StatusDeleting     = tenancy.Deleting
	StatusDeleted      = tenancy.Deleted
)

// Tenant is one row of the registry with its domains and origins, in the
// shape the admin API returns.
type Tenant struct {
	ID                  int64                    `json:"id"`
	Slug                string                   `json:"slug"`
	DisplayName         string                   `json:"display_name"`
	Status              tenancy.Status           `json:"status"`
	Plan                string                   `json:"plan"`
	ForkOf              *string                  `json:"fork_of"`
	DBServer            *string                  `json:"db_server"`
	DBName              string                   `json:"db_name"`
	DBRole              string                   `json:"db_role"`
	SchemaVersion       int64                    `json:"schema_version"`
	LastMigrationStatus *tenancy.MigrationStatus `json:"last_migration_status"`
	LastMigrationError  *string                  `json:"last_migration_error"`
	LastMigrationAt     *time.Time               `json:"last_migration_at"`
	Settings            tenancy.Settings         `json:"settings"`
	Domains             []string                 `json:"domains"` // the default domain first
	Origins             []string                 `json:"origins"`
	// WritesPaused: a move to another database server is copying its last
	// changes; the data plane answers requests that would write with 503.
	WritesPaused bool      `json:"writes_paused"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`

	ForkOfID   *int64 `json:"-"`
	DBServerID *int64 `json:"-"`
	SecretsRef string `json:"-"` // name of the tenant's secrets.TenantBundle
}

const tenantColumns = `t.id, t.slug, t.display_name, t.status, t.plan, f.slug, s.name, t.db_name, t.db_role,
	t.schema_version, t.last_migration_status, t.last_migration_error, t.last_migrated_at, t.settings,
	ARRAY(SELECT d.hostname FROM domains d WHERE d.tenant_id = t.id ORDER BY d.is_default DESC, d.hostname),
	ARRAY(SELECT o.origin FROM tenant_origins o WHERE o.tenant_id = t.id ORDER BY o.origin),
	t.writes_paused, t.created_at, t.updated_at, t.fork_of, t.db_server_id, t.secrets_ref
	FROM tenants t LEFT JOIN tenants f ON f.id = t.fork_of LEFT JOIN db_servers s ON s.id = t.db_server_id`

func scanTenant(row pgx.Row) (Tenant, error) {
	var t Tenant
	err := row.Scan(&t.ID, &t.Slug, &t.DisplayName, &t.Status, &t.Plan, &t.ForkOf, &t.DBServer, &t.DBName, &t.DBRole,
		&t.SchemaVersion, &t.LastMigrationStatus, &t.LastMigrationError, &t.LastMigrationAt, &t.Settings,
		&t.Domains, &t.Origins, &t.WritesPaused, &t.CreatedAt, &t.UpdatedAt, &t.ForkOfID, &t.DBServerID, &t.SecretsRef)
	return t, err
}

// Tenant returns the tenant with slug, or ErrNotFound.
func (r *Registry) Tenant(ctx context.Context, slug string) (Tenant, error) {
	t, err := scanTenant(r.db.QueryRow(ctx, "SELECT "+tenantColumns+" WHERE t.slug = $1", slug))
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fmt.Errorf("tenant %s: %w", slug, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %s: %w", slug, err)
	}
	return t, nil
}

// TenantByID returns the tenant with id, or ErrNotFound.
func (r *Registry) TenantByID(ctx context.Context, id int64) (Tenant, error) {
	t, err := scanTenant(r.db.QueryRow(ctx, "SELECT "+tenantColumns+" WHERE t.id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fmt.Errorf("tenant %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %d: %w", id, err)
	}
	return t, nil
}

// TenantFilter narrows Tenants; the zero value lists every tenant but the
// deleted.
type TenantFilter struct {
	Statuses []tenancy.Status // empty: every status but deleted
	After    string           // only slugs after this one (the previous page's last)
	Limit    int              // at most this many (0: no limit)
}

// Tenants lists tenants by slug.
func (r *Registry) Tenants(ctx context.Context, f TenantFilter) ([]Tenant, error) {
	if f.Limit < 0 {
		return nil, invalid("limit", "want a positive number")
	}
	var statuses []string // nil: every status but deleted
	for _, st := range f.Statuses {
		statuses = append(statuses, string(st))
	}
	var limit *int
	if f.Limit > 0 {
		limit = &f.Limit
	}
	q := "SELECT " + tenantColumns + `
		WHERE (CASE WHEN $1::text[] IS NULL THEN t.status <> $4 ELSE t.status = ANY($1) END)
		  AND t.slug > $2
		ORDER BY t.slug LIMIT $3`
	rows, err := r.db.Query(ctx, q, statuses, f.After, limit, string(tenancy.Deleted))
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Tenant, error) { return scanTenant(row) })
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}

// NewTenant is the row InsertTenant reserves.
type NewTenant struct {
	Slug, DisplayName, Plan string
	DBServerID              int64
	DBName, DBRole          string
	ForkOfID                *int64
	Settings                tenancy.Settings
	SecretsRef              string
	DefaultDomain           string
	Domains                 []string // normalized, without the default
	Origins                 []string // normalized
}

// InsertTenant reserves a tenant's slug, database names and domains, with
// status provisioning. A taken slug or hostname is ErrConflict. Run it in a
// transaction: it writes several tables.
func (r *Registry) InsertTenant(ctx context.Context, n NewTenant) (Tenant, error) {
	if err := ValidateSlug(n.Slug); err != nil {
		return Tenant{}, err
	}
	plan := n.Plan
	if plan == "" {
		plan = tenancy.DefaultPlan
	}
	const ins = `INSERT INTO tenants (slug, display_name, plan, db_server_id, db_name, db_role, fork_of, settings, secrets_ref)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`
	var id int64
	err := r.db.QueryRow(ctx, ins, n.Slug, n.DisplayName, plan, n.DBServerID, n.DBName, n.DBRole, n.ForkOfID,
		n.Settings, n.SecretsRef).Scan(&id)
	if _, dup := uniqueViolation(err); dup {
		return Tenant{}, fmt.Errorf("tenant %s: slug is taken: %w", n.Slug, ErrConflict)
	}
	if unknownPlan(err) {
		return Tenant{}, errUnknownPlan(plan)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %s: insert: %w", n.Slug, err)
	}
	if err := r.insertDomain(ctx, id, n.DefaultDomain, true); err != nil {
		return Tenant{}, err
	}
	for _, d := range n.Domains {
		if d == n.DefaultDomain {
			continue
		}
		if err := r.insertDomain(ctx, id, d, false); err != nil {
			return Tenant{}, err
		}
	}
	for _, o := range n.Origins {
		if _, err := r.db.Exec(ctx, `INSERT INTO tenant_origins (tenant_id, origin) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, o); err != nil {
			return Tenant{}, fmt.Errorf("tenant %s: origin: %w", n.Slug, err)
		}
	}
	return r.TenantByID(ctx, id)
}

func (r *Registry) insertDomain(ctx context.Context, tenantID int64, host string, isDefault bool) error {
	// An operator vouches for the domain: the tenant's own claim of it, if
	// any, becomes verified; other shops' pending claims stay pending (they
	// can no longer verify); another shop's verified domain is refused by
	// the unique index of routed hostnames.
	_, err := r.db.Exec(ctx, `INSERT INTO domains (hostname, tenant_id, is_default) VALUES ($1, $2, $3)
		ON CONFLICT (hostname, tenant_id) DO UPDATE SET is_default = domains.is_default OR EXCLUDED.is_default,
			status = 'verified', token = NULL, next_check_at = NULL, check_error = NULL, misses = 0, expires_at = NULL,
			verified_at = coalesce(domains.verified_at, now())`, host, tenantID, isDefault)
	if _, taken := uniqueViolation(err); taken {
		return fmt.Errorf("domain %s is taken by another tenant: %w", host, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("domain %s: %w", host, err)
	}
	return nil
}

// SetStatus moves tenant id to status to, if its status is one of from;
// otherwise ErrConflict naming the current status.
func (r *Registry) SetStatus(ctx context.Context, id int64, from []tenancy.Status, to tenancy.Status) (Tenant, error) {
	froms := make([]string, len(from))
	for i, st := range from {
		froms[i] = string(st)
	}
	tag, err := r.db.Exec(ctx, `UPDATE tenants SET status = $2, updated_at = now() WHERE id = $1 AND status = ANY($3)`, id, string(to), froms)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %d: set status %s: %w", id, to, err)
	}
	t, err := r.TenantByID(ctx, id)
	if err != nil {
		return Tenant{}, err
	}
	if tag.RowsAffected() == 0 && t.Status != to {
		return t, fmt.Errorf("tenant %s is %s, cannot become %s: %w", t.Slug, t.Status, to, ErrConflict)
	}
	if tag.RowsAffected() == 0 {
		return t, fmt.Errorf("tenant %s is already %s: %w", t.Slug, to, ErrConflict)
	}
	return t, nil
}

// touch bumps updated_at, which the data plane reads as the tenant's generation.
// Touch marks the tenant changed (updated_at, and so its generation in the
// data plane) without changing a column: used after its secrets change, so
// replicas drop what they cached from the old ones.
func (r *Registry) Touch(ctx context.Context, id int64) error { return r.touch(ctx, id) }

func (r *Registry) touch(ctx context.Context, id int64) error {
	_, err := r.db.Exec(ctx, `UPDATE tenants SET updated_at = now() WHERE id = $1`, id)
	return err
}

// AddDomain routes hostname to the tenant at once: operators vouch for
// the domains they add, which are verified and never DNS-checked. Adding
// a hostname the tenant already has verifies it (one its owner added and
// that is still pending routes from then on); one another tenant has is
// ErrConflict.
//
// Domains other than the default one count against the plan's
// custom_domains: past it the add is a *PlanLimitError. Run in a
// transaction (as the provisioning service does), the tenant's row stays
// locked until the end, so two adds at the limit cannot both pass.
func (r *Registry) AddDomain(ctx context.Context, tenantID int64, hostname string) (string, error) {
	h, err := NormalizeHostname(hostname)
	if err != nil {
		return "", err
	}
	var plan string
	var limit *int64
	var used int64
	var has bool
	err = r.db.QueryRow(ctx, `SELECT coalesce(p.display_name, t.plan), p.custom_domains,
		(SELECT count(*) FROM domains d WHERE d.tenant_id = t.id AND NOT d.is_default),
		EXISTS (SELECT 1 FROM domains d WHERE d.tenant_id = t.id AND d.hostname = $2)
		FROM tenants t LEFT JOIN plans p ON p.name = t.plan WHERE t.id = $1 FOR UPDATE OF t`, tenantID, h).Scan(&plan, &limit, &used, &has)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("tenant %d: %w", tenantID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("domain %s: %w", h, err)
	}
	if !has && limit != nil && used >= *limit {
		return "", &PlanLimitError{Plan: plan, Limit: *limit, What: "custom domains"}
	}
	if err := r.insertDomain(ctx, tenantID, h, false); err != nil {
		return "", err
	}
	return h, r.touch(ctx, tenantID)
}

// RemoveDomain stops routing hostname to the tenant. The default domain
// and the one the tenant's own site is served on (site mode domain) cannot
// be removed (ErrConflict); an unknown one is ErrNotFound. Run it in a
// transaction: the domain's row stays locked until the end, so a site mode
// change naming the domain (which locks it to check it) comes before or
// after, never between the check and the deletion.
func (r *Registry) RemoveDomain(ctx context.Context, tenantID int64, hostname string) (string, error) {
	h, err := NormalizeHostname(hostname)
	if err != nil {
		return "", err
	}
	var isDefault, servesSite bool
	err = r.db.QueryRow(ctx, `SELECT is_default FROM domains WHERE hostname = $1 AND tenant_id = $2 FOR UPDATE`, h, tenantID).Scan(&isDefault)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("domain %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("domain %s: %w", h, err)
	}
	if isDefault {
		return "", fmt.Errorf("domain %s is the tenant's default domain and cannot be removed: %w", h, ErrConflict)
	}
	err = r.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sites WHERE tenant_id = $1 AND mode = 'domain' AND domain = $2)`,
		tenantID, h).Scan(&servesSite)
	if err != nil {
		return "", fmt.Errorf("domain %s: %w", h, err)
	}
	if servesSite {
		return "", fmt.Errorf("domain %s serves the tenant's own site (site mode domain) and cannot be removed; "+
			"serve the site on another domain or in mode replace first: %w", h, ErrConflict)
	}
	if _, err := r.db.Exec(ctx, `DELETE FROM domains WHERE hostname = $1 AND tenant_id = $2`, h, tenantID); err != nil {
		return "", fmt.Errorf("domain %s: %w", h, err)
	}
	return h, r.touch(ctx, tenantID)
}

// ReleaseDomains forgets every hostname of a tenant, so others may take them.
func (r *Registry) ReleaseDomains(ctx context.Context, tenantID int64) error {
	if _, err := r.db.Exec(ctx, `DELETE FROM domains WHERE tenant_id = $1`, tenantID); err != nil {
		return fmt.Errorf("tenant %d: release domains: %w", tenantID, err)
	}
	return nil
}

// AddOrigin trusts a browser origin for the tenant (idempotent).
func (r *Registry) AddOrigin(ctx context.Context, tenantID int64, origin string) (string, error) {
	o, err := NormalizeOrigin(origin)
	if err != nil {
		return "", err
	}
	if _, err := r.db.Exec(ctx, `INSERT INTO tenant_origins (tenant_id, origin) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tenantID, o); err != nil {
		return "", fmt.Errorf("origin %s: %w", o, err)
	}
	return o, r.touch(ctx, tenantID)
}

// RemoveOrigin stops trusting an origin; an unknown one is ErrNotFound.
func (r *Registry) RemoveOrigin(ctx context.Context, tenantID int64, origin string) (string, error) {
	o, err := NormalizeOrigin(origin)
	if err != nil {
		return "", err
	}
	tag, err := r.db.Exec(ctx, `DELETE FROM tenant_origins WHERE tenant_id = $1 AND origin = $2`, tenantID, o)
	if err != nil {
		return "", fmt.Errorf("origin %s: %w", o, err)
	}
	if tag.RowsAffected() == 0 {
		return "", fmt.Errorf("origin %s: %w", o, ErrNotFound)
	}
	return o, r.touch(ctx, tenantID)
}

// ValidateSettings checks the fields of a settings document.
func ValidateSettings(s tenancy.Settings) error {
	if s.FrontendOrigin != "" {
		if _, err := NormalizeOrigin(s.FrontendOrigin); err != nil || strings.Contains(s.FrontendOrigin, "*") {
			return invalid("settings.frontend_origin", "want scheme://host[:port]")
		}
	}
	if s.FromAddress != "" && (!strings.Contains(s.FromAddress, "@") || strings.ContainsAny(s.FromAddress, "\r\n")) {
		return invalid("settings.from_address", "want an email address")
	}
	if s.CookieDomain != "" {
		if _, err := NormalizeHostname(strings.TrimPrefix(s.CookieDomain, ".")); err != nil {
			return invalid("settings.cookie_domain", "want a domain name")
		}
	}
	for name, v := range s.RateLimits {
		// The data plane reads these with ratelimit.ParseRate: the
		// registry accepts exactly what it can use.
		if _, err := ratelimit.ParseRate(v); err != nil {
			return invalid("settings.rate_limits."+name, `want "N/period" (period s, m, h or d, optionally with a count such as 15m) or "off"`)
		}
	}
	return nil
}

// UpdateSettings replaces the tenant's settings document.
func (r *Registry) UpdateSettings(ctx context.Context, tenantID int64, s tenancy.Settings) error {
	if err := ValidateSettings(s); err != nil {
		return err
	}
	if _, err := r.db.Exec(ctx, `UPDATE tenants SET settings = $2, updated_at = now() WHERE id = $1`, tenantID, s); err != nil {
		return fmt.Errorf("tenant %d: settings: %w", tenantID, err)
	}
	return nil
}

// Rename sets the tenant's display name and plan (validated by the caller).
func (r *Registry) Rename(ctx context.Context, tenantID int64, displayName, plan string) error {
	tag, err := r.db.Exec(ctx, `UPDATE tenants SET display_name = $2, plan = $3, updated_at = now() WHERE id = $1`,
		tenantID, displayName, plan)
	if unknownPlan(err) {
		return errUnknownPlan(plan)
	}
	if err != nil {
		return fmt.Errorf("tenant %d: name and plan: %w", tenantID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("tenant %d: %w", tenantID, ErrNotFound)
	}
	return nil
}

// RecordMigration stores the outcome of migrating a tenant's database:
// version is the schema version the database is at, migErr the failure (nil
// for success).
func (r *Registry) RecordMigration(ctx context.Context, tenantID, version int64, migErr error) error {
	status, msg := tenancy.MigrationOK, (*string)(nil)
	if migErr != nil {
		status = tenancy.MigrationFailed
		m := migErr.Error()
		msg = &m
	}
	const q = `UPDATE tenants SET schema_version = CASE WHEN $2 > 0 THEN $2 ELSE schema_version END,
		last_migration_status = $3, last_migration_error = $4, last_migrated_at = now() WHERE id = $1`
	if _, err := r.db.Exec(ctx, q, tenantID, version, string(status), msg); err != nil {
		return fmt.Errorf("tenant %d: record migration: %w", tenantID, err)
	}
	return nil
}
