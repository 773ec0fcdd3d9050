package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Move statuses (tenant_moves.status).
const (
	MoveMoving   = "moving"   // copying; the tenant still runs on the old server
	MoveSwitched = "switched" // the tenant runs on the new server; the old copy waits for its drop
	MoveFinished = "finished" // the old copy is dropped
	MoveFailed   = "failed"   // stopped by an error; writes were resumed on the old server
)

// MoveStatuses lists the statuses of a move, in the order a move goes
// through them (failed last).
func MoveStatuses() []string { return []string{MoveMoving, MoveSwitched, MoveFinished, MoveFailed} }

// Move is the latest move of a tenant to another database server.
type Move struct {
	TenantID     int64      `json:"-"`
	FromServerID int64      `json:"-"`
	ToServerID   int64      `json:"-"`
	From         string     `json:"from_server"`
	To           string     `json:"to_server"`
	Status       string     `json:"status"`
	Error        *string    `json:"error"`
	StartedAt    time.Time  `json:"started_at"`
	SwitchedAt   *time.Time `json:"switched_at"`
	PausedMS     *int       `json:"paused_ms"` // how long writes were paused
	DropAfter    *time.Time `json:"drop_after"`
	FinishedAt   *time.Time `json:"finished_at"`
}

const moveColumns = `m.tenant_id, m.from_server_id, m.to_server_id, f.name, t.name, m.status, m.error,
	m.started_at, m.switched_at, m.paused_ms, m.drop_after, m.finished_at
	FROM tenant_moves m JOIN db_servers f ON f.id = m.from_server_id JOIN db_servers t ON t.id = m.to_server_id`

func scanMove(row pgx.Row) (Move, error) {
	var m Move
	err := row.Scan(&m.TenantID, &m.FromServerID, &m.ToServerID, &m.From, &m.To, &m.Status, &m.Error,
		&m.StartedAt, &m.SwitchedAt, &m.PausedMS, &m.DropAfter, &m.FinishedAt)
	return m, err
}

// TenantMove returns the latest move of a tenant, or ErrNotFound.
func (r *Registry) TenantMove(ctx context.Context, tenantID int64) (Move, error) {
	m, err := scanMove(r.db.QueryRow(ctx, "SELECT "+moveColumns+" WHERE m.tenant_id = $1", tenantID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Move{}, fmt.Errorf("move of tenant %d: %w", tenantID, ErrNotFound)
	}
	if err != nil {
		return Move{}, fmt.Errorf("move of tenant %d: %w", tenantID, err)
	}
	return m, nil
}

// StartMove records a new move of a tenant from one server to another,
// replacing its previous (finished or failed) one.
func (r *Registry) StartMove(ctx context.Context, tenantID, from, to int64) error {
	const q = `INSERT INTO tenant_moves (tenant_id, from_server_id, to_server_id, status) VALUES ($1, $2, $3, 'moving')
		ON CONFLICT (tenant_id) DO UPDATE SET from_server_id = EXCLUDED.from_server_id, to_server_id = EXCLUDED.to_server_id,
		status = 'moving', error = NULL, started_at = now(), switched_at = NULL, paused_ms = NULL, drop_after = NULL, finished_at = NULL`
	if _, err := r.db.Exec(ctx, q, tenantID, from, to); err != nil {
		return fmt.Errorf("move of tenant %d: start: %w", tenantID, err)
	}
	return nil
}

// SetWritesPaused pauses or resumes the tenant's writes in the data plane
// (its generation changes, so replicas open new connections).
func (r *Registry) SetWritesPaused(ctx context.Context, tenantID int64, paused bool) error {
	if _, err := r.db.Exec(ctx, `UPDATE tenants SET writes_paused = $2, updated_at = now() WHERE id = $1`, tenantID, paused); err != nil {
		return fmt.Errorf("tenant %d: writes paused %v: %w", tenantID, paused, err)
	}
	return nil
}

// SwitchMove points the tenant at the move's new server and resumes its
// writes, and records the move switched, its old copy due for dropping at
// dropAfter. Run it in a transaction with the step's record.
func (r *Registry) SwitchMove(ctx context.Context, tenantID int64, pausedMS int, dropAfter time.Time) error {
	tag, err := r.db.Exec(ctx, `UPDATE tenants t SET db_server_id = m.to_server_id, writes_paused = false, updated_at = now()
		FROM tenant_moves m WHERE m.tenant_id = t.id AND t.id = $1 AND m.status = 'moving'`, tenantID)
	if err != nil {
		return fmt.Errorf("move of tenant %d: switch: %w", tenantID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("move of tenant %d: no move in progress: %w", tenantID, ErrConflict)
	}
	if _, err := r.db.Exec(ctx, `UPDATE tenant_moves SET status = 'switched', switched_at = now(), paused_ms = $2, drop_after = $3
		WHERE tenant_id = $1`, tenantID, pausedMS, dropAfter); err != nil {
		return fmt.Errorf("move of tenant %d: switch: %w", tenantID, err)
	}
	return nil
}

// EndMove records the move finished (status MoveFinished) or failed
// (MoveFailed, with msg, which holds no secret).
func (r *Registry) EndMove(ctx context.Context, tenantID int64, status, msg string) error {
	var e *string
	if msg != "" {
		e = &msg
	}
	if _, err := r.db.Exec(ctx, `UPDATE tenant_moves SET status = $2, error = $3, finished_at = now() WHERE tenant_id = $1`,
		tenantID, status, e); err != nil {
		return fmt.Errorf("move of tenant %d: %s: %w", tenantID, status, err)
	}
	return nil
}

// MovesDue lists the switched moves whose old copy is due for dropping at now.
func (r *Registry) MovesDue(ctx context.Context, now time.Time) ([]Move, error) {
	rows, err := r.db.Query(ctx, "SELECT "+moveColumns+" WHERE m.status = 'switched' AND m.drop_after <= $1 ORDER BY m.drop_after", now)
	if err != nil {
		return nil, fmt.Errorf("moves due: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Move, error) { return scanMove(row) })
	if err != nil {
		return nil, fmt.Errorf("moves due: %w", err)
	}
	return out, nil
}
