package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Audit records that actor did action to a tenant (tenantID 0: to none),
// with the state before and after as JSON (nil: none). Callers pass
// snapshots without secret values (Tenant, SecretsStatus, field names);
// run it in the transaction of the change it records.
func Audit(ctx context.Context, db DB, actor, action string, tenantID int64, before, after any) error {
	b, err := auditJSON(before)
	if err != nil {
		return fmt.Errorf("audit %s: before: %w", action, err)
	}
	a, err := auditJSON(after)
	if err != nil {
		return fmt.Errorf("audit %s: after: %w", action, err)
	}
	var tid *int64
	if tenantID != 0 {
		tid = &tenantID
	}
	if actor == "" {
		actor = "unknown"
	}
	if _, err := db.Exec(ctx, `INSERT INTO audit_log (actor, action, tenant_id, before, after) VALUES ($1, $2, $3, $4, $5)`,
		actor, action, tid, b, a); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

func auditJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// Audit is the package-level Audit on the registry's database.
func (r *Registry) Audit(ctx context.Context, actor, action string, tenantID int64, before, after any) error {
	return Audit(ctx, r.db, actor, action, tenantID, before, after)
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID         int64           `json:"id"`
	At         time.Time       `json:"at"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	TenantID   *int64          `json:"tenant_id"`
	TenantSlug *string         `json:"tenant"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
}

// AuditFilter pages through the audit log, newest first.
type AuditFilter struct {
	TenantSlug string // empty: every tenant
	BeforeID   int64  // 0: from the newest; else entries with a smaller id
	Limit      int    // 0: 50; at most 500
}

// ListAudit returns audit entries, newest first.
func (r *Registry) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, invalid("limit", "want a positive number")
	case limit == 0:
		limit = 50
	case limit > 500:
		limit = 500
	}
	const q = `SELECT a.id, a.at, a.actor, a.action, a.tenant_id, t.slug, a.before, a.after
		FROM audit_log a LEFT JOIN tenants t ON t.id = a.tenant_id
		WHERE ($1 = '' OR t.slug = $1) AND ($2 = 0 OR a.id < $2)
		ORDER BY a.id DESC LIMIT $3`
	rows, err := r.db.Query(ctx, q, f.TenantSlug, f.BeforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.TenantID, &e.TenantSlug, &e.Before, &e.After)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}
