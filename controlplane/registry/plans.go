package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PlanLimits is one plan of the registry (table plans) with its limits; a
// nil limit is unlimited.
type PlanLimits struct {
	Name              string `json:"name"`
	DisplayName       string `json:"display_name"`
	MonthlyPriceCents int64  `json:"monthly_price_cents"`
	Listed            bool   `json:"listed"`
	Products          *int64 `json:"products"`
	StaffSeats        *int64 `json:"staff_seats"`
	OrdersPerMonth    *int64 `json:"orders_per_month"`
	EventsPerMonth    *int64 `json:"events_per_month"`
	EmailsPerMonth    *int64 `json:"emails_per_month"`
	CustomDomains     *int64 `json:"custom_domains"`
	StorageBytes      *int64 `json:"storage_bytes"`
}

const planColumns = `name, display_name, monthly_price_cents, listed, products, staff_seats, orders_per_month,
	events_per_month, emails_per_month, custom_domains, storage_bytes`

func scanPlan(row pgx.Row) (PlanLimits, error) {
	var p PlanLimits
	err := row.Scan(&p.Name, &p.DisplayName, &p.MonthlyPriceCents, &p.Listed, &p.Products, &p.StaffSeats,
		&p.OrdersPerMonth, &p.EventsPerMonth, &p.EmailsPerMonth, &p.CustomDomains, &p.StorageBytes)
	return p, err
}

// Plans lists every plan, in the pricing page's order.
func (r *Registry) Plans(ctx context.Context) ([]PlanLimits, error) {
	rows, err := r.db.Query(ctx, `SELECT `+planColumns+` FROM plans ORDER BY sort_order, name`)
	if err != nil {
		return nil, fmt.Errorf("plans: %w", err)
	}
	defer rows.Close()
	out := []PlanLimits{}
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, fmt.Errorf("plans: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Plan returns one plan by name (ErrNotFound).
func (r *Registry) Plan(ctx context.Context, name string) (PlanLimits, error) {
	p, err := scanPlan(r.db.QueryRow(ctx, `SELECT `+planColumns+` FROM plans WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return PlanLimits{}, fmt.Errorf("plan %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return PlanLimits{}, fmt.Errorf("plan %s: %w", name, err)
	}
	return p, nil
}

// QuotaFlag records that a tenant went past a quota its data plane never
// refuses (platform migration 00012): in Month, on Plan with Limit.
type QuotaFlag struct {
	Quota     string    `json:"quota"` // orders_per_month
	Month     string    `json:"month"` // YYYY-MM
	Plan      string    `json:"plan"`
	Limit     int64     `json:"limit"`
	FlaggedAt time.Time `json:"flagged_at"`
}

// QuotaFlags lists a tenant's flags, newest month first.
func (r *Registry) QuotaFlags(ctx context.Context, tenantID int64) ([]QuotaFlag, error) {
	rows, err := r.db.Query(ctx, `SELECT quota, to_char(month, 'YYYY-MM'), plan, quota_limit, flagged_at
		FROM quota_flags WHERE tenant_id = $1 ORDER BY month DESC, quota`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("quota flags: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[QuotaFlag])
	if err != nil {
		return nil, fmt.Errorf("quota flags: %w", err)
	}
	if out == nil {
		out = []QuotaFlag{}
	}
	return out, nil
}
