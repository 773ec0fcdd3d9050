package shop

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/directory"
)

// Registry is the data plane's connection to the platform registry. Its
// role may read the registry and call dataplane_flag_quota (platform
// migration 00012), the one write the shop makes there.
type Registry interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// An order is never refused for the plan's orders_per_month: its money is
// taken. After the order's transaction commits, the shop counts the month's
// orders and, past the limit, flags the tenant in the registry (idempotent:
// one row per tenant and month), where operators and the back office see
// it. A crash between the commit and the flag leaves the month unflagged
// until the tenant's next order.

const monthOrdersSQL = `SELECT count(*) FROM customer_order WHERE order_date_time >= $1`

// flagTimeout bounds the count and the registry call after an order.
const flagTimeout = 5 * time.Second

// flagged remembers the (tenant, month) pairs this replica has flagged, so
// later orders of the month make no registry call.
type flagged struct {
	mu   sync.Mutex
	seen map[flagKey]bool
}

type flagKey struct {
	tenant int64
	month  time.Time
}

// noteOrder flags t when the order just placed took it past its plan's
// orders_per_month. It runs after the order's transaction has committed;
// failures are logged, never returned: the order stands.
// conn is the connection the order was written on, its transaction done.
func (a *App) noteOrder(ctx context.Context, conn *pgxpool.Conn, t *directory.Tenant) {
	limit := t.Plan.OrdersPerMonth
	if limit == nil || a.registry == nil {
		return
	}
	now := time.Now().UTC()
	key := flagKey{t.ID, time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)}
	a.flags.mu.Lock()
	done := a.flags.seen[key]
	a.flags.mu.Unlock()
	if done {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flagTimeout)
	defer cancel()
	if err := a.flagIfOver(ctx, conn, t, key, *limit); err != nil {
		a.log.Warn("orders over the plan's quota not flagged", "tenant", t.Slug, "err", err)
	}
}

func (a *App) flagIfOver(ctx context.Context, conn *pgxpool.Conn, t *directory.Tenant, key flagKey, limit int64) error {
	var used int64
	if err := conn.QueryRow(ctx, monthOrdersSQL, key.month).Scan(&used); err != nil {
		return fmt.Errorf("count this month's orders: %w", err)
	}
	if directory.Allows(&limit, used-1) { // the order just placed is counted
		return nil
	}
	if _, err := a.registry.Exec(ctx, `SELECT dataplane_flag_quota($1, 'orders_per_month', $2::date)`, t.ID, key.month); err != nil {
		return fmt.Errorf("flag: %w", err)
	}
	a.flags.mu.Lock()
	if a.flags.seen == nil {
		a.flags.seen = map[flagKey]bool{}
	}
	a.flags.seen[key] = true
	a.flags.mu.Unlock()
	a.log.Info("orders over the plan's quota", "tenant", t.Slug, "plan", t.Plan.Name, "limit", limit, "orders", used)
	return nil
}
