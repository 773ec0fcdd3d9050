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

// Operation statuses: an accepted operation is queued until a worker takes
// it, then running until it succeeds or fails.
const (
	OperationQueued    = tenancy.OperationQueued
	OperationRunning   = tenancy.OperationRunning
	OperationSucceeded = tenancy.OperationSucceeded
	OperationFailed    = tenancy.OperationFailed
)

// Operation is a long-running admin operation, polled by its id. Its record
// says what to run (kind, tenant, actor), so a control plane that restarts
// runs again what was left queued or running; it never holds a secret.
type Operation struct {
	ID         uuid.UUID               `json:"id"`
	TenantID   *int64                  `json:"tenant_id"`
	TenantSlug *string                 `json:"tenant"`
	Kind       string                  `json:"kind"`
	Status     tenancy.OperationStatus `json:"status"`
	Error      *string                 `json:"error"`
	CreatedAt  time.Time               `json:"created_at"`
	FinishedAt *time.Time              `json:"finished_at"`
	// Actor is the admin the operation acts for (its audit entries' actor).
	Actor string `json:"-"`
}

// QueueOperation records an operation of kind on a tenant (0: none), queued,
// on behalf of actor.
func (r *Registry) QueueOperation(ctx context.Context, kind string, tenantID int64, actor string) (uuid.UUID, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return uuid.Nil, fmt.Errorf("queue operation: %w", err)
	}
	var tid *int64
	if tenantID != 0 {
		tid = &tenantID
	}
	if _, err := r.db.Exec(ctx, `INSERT INTO operations (id, tenant_id, kind, status, actor, created_at)
		VALUES ($1, $2, $3, 'queued', $4, clock_timestamp())`,
		id, tid, kind, actor); err != nil {
		return uuid.Nil, fmt.Errorf("queue operation %s: %w", kind, err)
	}
	return id, nil
}

// OperationStarted marks a queued operation running (one already running,
// resumed after a restart, stays so).
func (r *Registry) OperationStarted(ctx context.Context, id uuid.UUID) error {
	tag, err := r.db.Exec(ctx, `UPDATE operations SET status = 'running' WHERE id = $1 AND status IN ('queued', 'running')`, id)
	if err != nil {
		return fmt.Errorf("start operation %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("operation %s is not pending: %w", id, ErrConflict)
	}
	return nil
}

// FinishOperation marks an operation succeeded (opErr nil) or failed.
func (r *Registry) FinishOperation(ctx context.Context, id uuid.UUID, opErr error) error {
	status, msg := OperationSucceeded, (*string)(nil)
	if opErr != nil {
		status = OperationFailed
		m := opErr.Error()
		msg = &m
	}
	tag, err := r.db.Exec(ctx, `UPDATE operations SET status = $2, error = $3, finished_at = now() WHERE id = $1`, id, status, msg)
	if err != nil {
		return fmt.Errorf("finish operation %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	return nil
}

const operationColumns = `o.id, o.tenant_id, t.slug, o.kind, o.status, o.error, o.created_at, o.finished_at, o.actor`

func scanOperation(row pgx.Row) (Operation, error) {
	var o Operation
	err := row.Scan(&o.ID, &o.TenantID, &o.TenantSlug, &o.Kind, &o.Status, &o.Error, &o.CreatedAt, &o.FinishedAt, &o.Actor)
	return o, err
}

// GetOperation returns one operation, or ErrNotFound.
func (r *Registry) GetOperation(ctx context.Context, id uuid.UUID) (Operation, error) {
	o, err := scanOperation(r.db.QueryRow(ctx, `SELECT `+operationColumns+`
		FROM operations o LEFT JOIN tenants t ON t.id = o.tenant_id WHERE o.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Operation{}, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Operation{}, fmt.Errorf("operation %s: %w", id, err)
	}
	return o, nil
}

// PendingOperations lists the operations queued or running, oldest first:
// at start, the ones a previous process accepted and did not finish.
func (r *Registry) PendingOperations(ctx context.Context) ([]Operation, error) {
	rows, err := r.db.Query(ctx, `SELECT `+operationColumns+`
		FROM operations o LEFT JOIN tenants t ON t.id = o.tenant_id
		WHERE o.status IN ('queued', 'running') ORDER BY o.created_at, o.id`)
	if err != nil {
		return nil, fmt.Errorf("pending operations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Operation, error) { return scanOperation(row) })
	if err != nil {
		return nil, fmt.Errorf("pending operations: %w", err)
	}
	return out, nil
}
