package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Step is the record of one step of a tenant workflow (create, fork, delete).
type Step struct {
	Operation  string     `json:"operation"`
	Step       string     `json:"step"`
	Status     string     `json:"status"` // started | done | failed
	Attempts   int        `json:"attempts"`
	Error      *string    `json:"error"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// StepStarted records that a step begins (again: attempts counts the runs).
func (r *Registry) StepStarted(ctx context.Context, tenantID int64, op, step string) error {
	const q = `INSERT INTO provisioning_steps (tenant_id, operation, step, status) VALUES ($1, $2, $3, 'started')
		ON CONFLICT (tenant_id, operation, step) DO UPDATE SET status = 'started', attempts = provisioning_steps.attempts + 1,
		error = NULL, started_at = now(), finished_at = NULL`
	if _, err := r.db.Exec(ctx, q, tenantID, op, step); err != nil {
		return fmt.Errorf("step %s/%s started: %w", op, step, err)
	}
	return nil
}

// StepDone records that a step finished.
func (r *Registry) StepDone(ctx context.Context, tenantID int64, op, step string) error {
	const q = `INSERT INTO provisioning_steps (tenant_id, operation, step, status, finished_at) VALUES ($1, $2, $3, 'done', now())
		ON CONFLICT (tenant_id, operation, step) DO UPDATE SET status = 'done', error = NULL, finished_at = now()`
	if _, err := r.db.Exec(ctx, q, tenantID, op, step); err != nil {
		return fmt.Errorf("step %s/%s done: %w", op, step, err)
	}
	return nil
}

// StepFailed records that a step failed with msg (which holds no secret).
func (r *Registry) StepFailed(ctx context.Context, tenantID int64, op, step, msg string) error {
	const q = `UPDATE provisioning_steps SET status = 'failed', error = $4, finished_at = now()
		WHERE tenant_id = $1 AND operation = $2 AND step = $3`
	if _, err := r.db.Exec(ctx, q, tenantID, op, step, msg); err != nil {
		return fmt.Errorf("step %s/%s failed: %w", op, step, err)
	}
	return nil
}

// Steps lists the recorded steps of one workflow of a tenant, oldest first.
func (r *Registry) Steps(ctx context.Context, tenantID int64, op string) ([]Step, error) {
	rows, err := r.db.Query(ctx, `SELECT operation, step, status, attempts, error, started_at, finished_at
		FROM provisioning_steps WHERE tenant_id = $1 AND operation = $2 ORDER BY started_at, step`, tenantID, op)
	if err != nil {
		return nil, fmt.Errorf("steps %s: %w", op, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Step])
	if err != nil {
		return nil, fmt.Errorf("steps %s: %w", op, err)
	}
	return out, nil
}

// ClearSteps forgets the step records of one workflow, so it can run again
// from the start (a tenant suspended and deleted twice, say).
func (r *Registry) ClearSteps(ctx context.Context, tenantID int64, op string) error {
	if _, err := r.db.Exec(ctx, `DELETE FROM provisioning_steps WHERE tenant_id = $1 AND operation = $2`, tenantID, op); err != nil {
		return fmt.Errorf("clear steps %s: %w", op, err)
	}
	return nil
}
