package signup

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Plan is one line of the pricing page, from the registry's plans table.
type Plan struct {
	Name, Price string
	Features    []string
	SignUp      bool // what a sign-up gets
}

// planRow is a listed plan as stored; a nil limit is unlimited.
type planRow struct {
	Name, DisplayName                    string
	MonthlyPriceCents                    int64
	Products, StaffSeats, OrdersPerMonth *int64
	EventsPerMonth, EmailsPerMonth       *int64
	CustomDomains, StorageBytes          *int64
}

// listedPlans reads the plans shown on the pricing page, in their order.
func listedPlans(ctx context.Context, db *pgxpool.Pool) ([]Plan, error) {
	rows, err := db.Query(ctx, `SELECT name, display_name, monthly_price_cents, products, staff_seats, orders_per_month,
       events_per_month, emails_per_month, custom_domains, storage_bytes
FROM plans WHERE listed ORDER BY sort_order, name`)
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Plan, error) {
		var p planRow
		err := row.Scan(&p.Name, &p.DisplayName, &p.MonthlyPriceCents, &p.Products, &p.StaffSeats, &p.OrdersPerMonth,
			&p.EventsPerMonth, &p.EmailsPerMonth, &p.CustomDomains, &p.StorageBytes)
		return p.line(), err
	})
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	return ps, nil
}

func (p planRow) line() Plan {
	l := Plan{Name: p.DisplayName, Price: price(p.MonthlyPriceCents), SignUp: p.Name == planForSignUps}
	for _, f := range []struct {
		n          *int64
		one, other string
	}{
		{p.Products, "product", "products"},
		{p.StaffSeats, "staff account", "staff accounts"},
		{p.OrdersPerMonth, "order a month", "orders a month"},
		{p.EventsPerMonth, "analytics event a month", "analytics events a month"},
		{p.EmailsPerMonth, "email a month", "emails a month"},
		{p.CustomDomains, "custom domain", "custom domains"},
	} {
		l.Features = append(l.Features, limit(f.n, f.one, f.other))
	}
	if p.StorageBytes == nil {
		l.Features = append(l.Features, "Unlimited storage")
	} else {
		l.Features = append(l.Features, bytesText(*p.StorageBytes)+" of storage")
	}
	return l
}

// price is a monthly price in dollars: "$0", "$29 / month", "$9.50 / month".
func price(cents int64) string {
	if cents == 0 {
		return "$0"
	}
	s := "$" + grouped(cents/100)
	if c := cents % 100; c != 0 {
		s += fmt.Sprintf(".%02d", c)
	}
	return s + " / month"
}

func limit(n *int64, one, other string) string {
	switch {
	case n == nil:
		return "Unlimited " + other
	case *n == 0:
		return "No " + other
	case *n == 1:
		return "1 " + one
	}
	return grouped(*n) + " " + other
}

// grouped writes n with thousands separators.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// bytesText is a size in the largest binary unit it reaches: "100 MB",
// "5 GB", "1.5 GB".
func bytesText(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 40, "TB"}, {1 << 30, "GB"}, {1 << 20, "MB"}, {1 << 10, "KB"}} {
		if n >= u.size {
			v := strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64)
			return strings.TrimSuffix(v, ".0") + " " + u.name
		}
	}
	return grouped(n) + " bytes"
}

func (s *Site) getPricing(c *fiber.Ctx) error {
	ps, err := listedPlans(c.UserContext(), s.db)
	if err != nil {
		return err
	}
	return s.render(c, 200, "pricing", ps)
}
