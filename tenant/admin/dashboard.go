package admin

import (
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
}

func (a *App) figures(r *req) (*figuresJSON, error) {
	now := a.now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	out := &figuresJSON{Day: day.Format(time.DateOnly)}
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
