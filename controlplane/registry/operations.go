package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/tenancy"
)

// Operation is a long-running admin operation, polled by its id.
type Operation struct {
	ID         uuid.UUID               `json:"id"`
	TenantID   *int64                  `json:"tenant_id"`
	TenantSlug *string                 `json:"tenant"`
	Kind       string                  `json:"kind"`
	Status     tenancy.OperationStatus `json:"status"`
	Error      *string                 `json:"error"`
	CreatedAt  time.Time               `json:"created_at"`
	FinishedAt *time.Time              `json:"finished_at"`
}

// StartOperation records a running operation of kind on a tenant (0: none).
func (r *Registry) StartOperation(ctx context.Context, kind string, tenantID int64) (uuid.UUID, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return uuid.Nil, fmt.Errorf("start operation: %w", err)
	}
	var tid *int64
	if tenantID != 0 {
		tid = &tenantID
	}
	if _, err := r.db.Exec(ctx, `INSERT INTO operations (id, tenant_id, kind, status) VALUES ($1, $2, $3, $4)`,
		id, tid, kind, string(tenancy.OperationRunning)); err != nil {
		return uuid.Nil, fmt.Errorf("start operation %s: %w", kind, err)
	}
	return id, nil
}

// FinishOperation marks an operation succeeded (opErr nil) or failed.
func (r *Registry) FinishOperation(ctx context.Context, id uuid.UUID, opErr error) error {
	status, msg := tenancy.OperationSucceeded, (*string)(nil)
	if opErr != nil {
		status = tenancy.OperationFailed
		m := opErr.Error()
		msg = &m
	}
	tag, err := r.db.Exec(ctx, `UPDATE operations SET status = $2, error = $3, finished_at = now() WHERE id = $1`, id, string(status), msg)
	if err != nil {
		return fmt.Errorf("finish operation %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	return nil
}

// GetOperation returns one operation, or ErrNotFound.
func (r *Registry) GetOperation(ctx context.Context, id uuid.UUID) (Operation, error) {
	var o Operation
	err := r.db.QueryRow(ctx, `SELECT o.id, o.tenant_id, t.slug, o.kind, o.status, o.error, o.created_at, o.finished_at
		FROM operations o LEFT JOIN tenants t ON t.id = o.tenant_id WHERE o.id = $1`, id).
		Scan(&o.ID, &o.TenantID, &o.TenantSlug, &o.Kind, &o.Status, &o.Error, &o.CreatedAt, &o.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Operation{}, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Operation{}, fmt.Errorf("operation %s: %w", id, err)
	}
	return o, nil
}

// FailRunningOperations marks every running operation failed with msg and
// says how many there were. The API runs it at start: an operation still
// running then belonged to a process that died with it.
func (r *Registry) FailRunningOperations(ctx context.Context, msg string) (int64, error) {
	tag, err := r.db.Exec(ctx, `UPDATE operations SET status = $2, finished_at = now(), error = $1
		WHERE status = $3`, msg, string(tenancy.OperationFailed), string(tenancy.OperationRunning))
	if err != nil {
		return 0, fmt.Errorf("fail running operations: %w", err)
	}
	return tag.RowsAffected(), nil
}
