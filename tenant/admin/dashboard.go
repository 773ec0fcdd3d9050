package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// The dashboard's figures: today's orders and revenue (UTC day), the
// latest orders, and the SKUs that are not in stock.

type lowStockJSON struct {
	SKUID     int64  `json:"sku_id"`
	Product   string `json:"product_title"`
	Color     string `json:"color"`
	Size      string `json:"size"`
	Inventory string `json:"inventory"`
}

type figuresJSON struct {
	Day          string             `json:"day"`
	OrdersToday  int                `json:"orders_today"`
	RevenueToday decimal.Decimal    `json:"revenue_today"`
	Recent       []orderSummaryJSON `json:"recent_orders"`
	LowStock     []lowStockJSON     `json:"low_stock"`
	// OverOrders is set when the tenant went past its plan's monthly
	// orders this UTC month (platform registry quota_flags): orders still
	// complete, and the owner is told to upgrade.
	OverOrders *overOrdersJSON `json:"over_plan_orders,omitempty"`
}

type overOrdersJSON struct {
	Month string `json:"month"` // YYYY-MM
	Plan  string `json:"plan"`
	Limit int64  `json:"limit"`
}

// overOrders reads the month's flag from the registry; a registry that
// does not answer leaves the dashboard without the notice.
func (a *App) overOrders(r *req, month time.Time) *overOrdersJSON {
	if a.registry == nil {
		return nil
	}
	var o overOrdersJSON
	err := a.registry.QueryRow(r.ctx, `SELECT to_char(f.month, 'YYYY-MM'), coalesce(p.display_name, f.plan), f.quota_limit
FROM quota_flags f LEFT JOIN plans p ON p.name = f.plan
WHERE f.tenant_id = $1 AND f.quota = 'orders_per_month' AND f.month = $2::date`, r.tenant.ID, month).Scan(&o.Month, &o.Plan, &o.Limit)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		a.log.Warn("dashboard: quota flags not read", "tenant", r.tenant.Slug, "err", err)
		return nil
	}
	return &o
}

func (a *App) figures(r *req) (*figuresJSON, error) {
	now := a.now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	out := &figuresJSON{Day: day.Format(time.DateOnly)}
	out.OverOrders = a.overOrders(r, time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC))
	var err error
	if out.Recent, _, err = a.listOrders(r, page{limit: 5}, orderFilter{}); err != nil {
		return nil, err
	}
	if out.Recent == nil {
		out.Recent = []orderSummaryJSON{}
	}
	err = a.conn(r, func(conn *pgxpool.Conn) error {
		if err := conn.QueryRow(r.ctx, `SELECT count(*), coalesce(sum(coalesce(stripe_amount_total, order_total)), 0)
FROM customer_order WHERE order_date_time >= $1 AND order_date_time < $2`, day, day.AddDate(0, 0, 1)).Scan(&out.OrdersToday, &out.RevenueToday); err != nil {
			return err
		}
		rows, err := conn.Query(r.ctx, `SELECT s.id, coalesce(p.title, ''), coalesce(s.color, ''), coalesce(s.size, ''), i.title
FROM sku s JOIN sku_inventory i ON i.id = s.sku_inventory_id
LEFT JOIN product_sku ps ON ps.sku_id = s.id LEFT JOIN product p ON p.id = ps.product_id
WHERE i.identifier <> 'in-stock' ORDER BY s.id LIMIT 50`)
		if err != nil {
			return err
		}
		out.LowStock, err = pgx.CollectRows(rows, pgx.RowToStructByPos[lowStockJSON])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if out.LowStock == nil {
		out.LowStock = []lowStockJSON{}
	}
	return out, nil
}

func (a *App) apiDashboard(c *fiber.Ctx) error {
	out, err := a.figures(a.r(c))
	if err != nil {
		return err
	}
	return c.JSON(out)
}
