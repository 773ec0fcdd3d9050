package usage

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier reads the registry; a pool, a connection and a transaction are one.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Hour is one tenant's usage in one UTC hour.
type Hour struct {
	Hour         time.Time `json:"hour"`
	Requests     int64     `json:"requests"`
	Orders       int64     `json:"orders"`
	Revenue      []Revenue `json:"revenue"`
	ClientEvents int64     `json:"client_events"`
	EmailsSent   int64     `json:"emails_sent"`
	// DBBytes and SiteBytes are the hour's last samples; nil when none was
	// taken.
	DBBytes   *int64 `json:"db_bytes"`
	SiteBytes *int64 `json:"site_bytes"`
}

// Revenue is what orders in one currency ("" when they carry none) brought.
type Revenue struct {
	Currency string `json:"currency"`
	Orders   int64  `json:"orders"`
	Cents    int64  `json:"revenue_cents"`
}

// Totals sums a report's hours; the gauges are the latest samples.
type Totals struct {
	Requests     int64     `json:"requests"`
	Orders       int64     `json:"orders"`
	Revenue      []Revenue `json:"revenue"`
	ClientEvents int64     `json:"client_events"`
	EmailsSent   int64     `json:"emails_sent"`
	DBBytes      *int64    `json:"db_bytes"`
	SiteBytes    *int64    `json:"site_bytes"`
}

// Report is a tenant's usage over [From, To), hour by hour (hours with no
// row are left out), with totals.
type Report struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Hours  []Hour    `json:"hours"`
	Totals Totals    `json:"totals"`
}

// MaxSpan is the longest range Read reports.
const MaxSpan = 93 * 24 * time.Hour

const readHoursSQL = `
SELECT u.hour, u.requests, u.orders, u.client_events, u.emails_sent, u.db_bytes, u.site_bytes,
       coalesce((SELECT jsonb_agg(jsonb_build_object('currency', r.currency, 'orders', r.orders, 'revenue_cents', r.revenue_cents)
                                  ORDER BY r.currency)
                   FROM usage_revenue_hourly r WHERE r.tenant_id = u.tenant_id AND r.hour = u.hour), '[]'::jsonb)
  FROM usage_hourly u
 WHERE u.tenant_id = $1 AND u.hour >= $2 AND u.hour < $3
 ORDER BY u.hour`

// Read returns the tenant's usage over [from, to), both truncated to the
// hour; the caller bounds the range (MaxSpan).
func Read(ctx context.Context, db Querier, tenant int64, from, to time.Time) (Report, error) {
	from, to = from.UTC().Truncate(time.Hour), to.UTC().Truncate(time.Hour)
	rep := Report{From: from, To: to, Hours: []Hour{}, Totals: Totals{Revenue: []Revenue{}}}
	rows, err := db.Query(ctx, readHoursSQL, tenant, from, to)
	if err != nil {
		return rep, fmt.Errorf("usage: read: %w", err)
	}
	rep.Hours, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Hour, error) {
		var h Hour
		err := row.Scan(&h.Hour, &h.Requests, &h.Orders, &h.ClientEvents, &h.EmailsSent, &h.DBBytes, &h.SiteBytes, &h.Revenue)
		h.Hour = h.Hour.UTC()
		return h, err
	})
	if err != nil {
		return rep, fmt.Errorf("usage: read: %w", err)
	}
	if rep.Hours == nil {
		rep.Hours = []Hour{}
	}
	byCurrency := map[string]*Revenue{}
	for _, h := range rep.Hours {
		t := &rep.Totals
		t.Requests += h.Requests
		t.Orders += h.Orders
		t.ClientEvents += h.ClientEvents
		t.EmailsSent += h.EmailsSent
		if h.DBBytes != nil {
			t.DBBytes = h.DBBytes
		}
		if h.SiteBytes != nil {
			t.SiteBytes = h.SiteBytes
		}
		for _, r := range h.Revenue {
			sum := byCurrency[r.Currency]
			if sum == nil {
				sum = &Revenue{Currency: r.Currency}
				byCurrency[r.Currency] = sum
			}
			sum.Orders += r.Orders
			sum.Cents += r.Cents
		}
	}
	for _, r := range byCurrency {
		rep.Totals.Revenue = append(rep.Totals.Revenue, *r)
	}
	sort.Slice(rep.Totals.Revenue, func(i, j int) bool { return rep.Totals.Revenue[i].Currency < rep.Totals.Revenue[j].Currency })
	return rep, nil
}
