package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// auditEntry is one row of the staff audit log. Before and After are
// marshalled to JSON and must never hold a secret.
type auditEntry struct {
	StaffID    int64 // 0: nobody signed in (an invitation accepted, a reset)
	Actor      string
	Action     string
	TargetType string
	TargetID   int64
	Before     any
	After      any
	ClientIP   string
	RequestID  string
}

func jsonOrNil(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// writeAudit records e in tx, so the entry commits with the change.
func writeAudit(ctx context.Context, tx pgx.Tx, e auditEntry) error {
	before, err := jsonOrNil(e.Before)
	if err != nil {
		return fmt.Errorf("audit before: %w", err)
	}
	after, err := jsonOrNil(e.After)
	if err != nil {
		return fmt.Errorf("audit after: %w", err)
	}
	var staffID *int64
	if e.StaffID != 0 {
		staffID = &e.StaffID
	}
	target := ""
	if e.TargetID != 0 {
		target = strconv.FormatInt(e.TargetID, 10)
	}
	_, err = tx.Exec(ctx, `INSERT INTO staff_audit_log (staff_id, actor, action, target_type, target_id, before, after, client_ip, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, staffID, e.Actor, e.Action, e.TargetType, target, before, after, e.ClientIP, e.RequestID)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// audit fills in who and from where for the request and writes e.
func (r *req) audit(tx pgx.Tx, e auditEntry) error {
	if r.who != nil && e.StaffID == 0 {
		e.StaffID, e.Actor = r.who.staff.ID, r.who.staff.Email
	}
	e.ClientIP, e.RequestID = r.clientIP, r.requestID
	return writeAudit(r.ctx, tx, e)
}

type auditJSON struct {
	ID         int64           `json:"id"`
	StaffID    *int64          `json:"staff_id"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	ClientIP   string          `json:"client_ip"`
	RequestID  string          `json:"request_id"`
	CreatedAt  time.Time       `json:"created_at"`
}

// listAudit returns a page of the log, newest first, optionally one action.
func (a *App) listAudit(r *req, p page, action string) ([]auditJSON, string, error) {
	var out []auditJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		rows, err := c.Query(r.ctx, `SELECT id, staff_id, actor, action, target_type, target_id,
coalesce(before, 'null'::jsonb), coalesce(after, 'null'::jsonb), client_ip, request_id, created_at
FROM staff_audit_log WHERE ($1 = 0 OR id < $1) AND ($2 = '' OR action = $2) ORDER BY id DESC LIMIT $3`, p.after, action, p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditJSON, error) {
			var e auditJSON
			var before, after []byte
			err := row.Scan(&e.ID, &e.StaffID, &e.Actor, &e.Action, &e.TargetType, &e.TargetID, &before, &after,
				&e.ClientIP, &e.RequestID, &e.CreatedAt)
			e.Before, e.After = before, after
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	return pageTail(out, p, func(x auditJSON) int64 { return x.ID })
}

func (a *App) apiAudit(c *fiber.Ctx) error {
	r := a.r(c)
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	items, next, err := a.listAudit(r, p, c.Query("action"))
	if err != nil {
		return err
	}
	return c.JSON(listJSON(items, next))
}
