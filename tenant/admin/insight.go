package admin

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// The insight dashboard: what a tenant's visitors do, from the daily
// rollups the analytics batch writer keeps (tenant migration 00009), and
// its orders. Every figure is for UTC days in an inclusive range; all of
// them are read in one round trip.

// MaxInsightDays is the longest range the dashboard answers.
const MaxInsightDays = 366

type insightDay struct {
	Day       string          `json:"day"`
	Pageviews int64           `json:"pageviews"`
	Visitors  int64           `json:"visitors"`
	Orders    int64           `json:"orders"`
	Revenue   decimal.Decimal `json:"revenue"`
}

type insightCount struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

type insightLink struct {
	// Code is "email:<em_cd>" (a campaign), "ad:<ad_cd>" or "" (neither).
	Code string `json:"code"`
	// Audience is member, prospect or other: who followed the link.
	Audience string `json:"audience"`
	Count    int64  `json:"count"`
}

type insightAjax struct {
	Page  string `json:"page"`
	Error string `json:"error"`
	Count int64  `json:"count"`
}

type insightFunnel struct {
	ProductViews  int64 `json:"product_views"`
	CartViews     int64 `json:"cart_views"`
	CheckoutViews int64 `json:"checkout_views"`
	PaidOrders    int64 `json:"paid_orders"`
}

type insightJSON struct {
	From       string         `json:"from"`
	To         string         `json:"to"`
	Days       []insightDay   `json:"days"`
	TopPages   []insightCount `json:"top_pages"`
	Buttons    []insightCount `json:"button_clicks"`
	Links      []insightLink  `json:"link_events"`
	AjaxErrors []insightAjax  `json:"ajax_errors"`
	Funnel     insightFunnel  `json:"funnel"`
}

// insightRange reads ?from= and ?to= (YYYY-MM-DD, inclusive); the default
// is the last 30 days up to today (UTC).
func (a *App) insightRange(c *fiber.Ctx) (from, to time.Time, err error) {
	today := a.now().UTC().Truncate(24 * time.Hour)
	to, from = today, today.AddDate(0, 0, -29)
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := c.Query(f.name); v != "" {
			d, perr := time.Parse(time.DateOnly, v)
			if perr != nil {
				return from, to, invalid(f.name, f.name+" is a date such as 2026-01-31")
			}
			*f.dst = d
		}
	}
	switch {
	case to.Before(from):
		return from, to, invalid("to", "to must not be before from")
	case to.Sub(from) >= MaxInsightDays*24*time.Hour:
		return from, to, invalid("from", fmt.Sprintf("the range is at most %d days", MaxInsightDays))
	}
	return from, to, nil
}

// The dashboard's queries, $1 and $2 the first and last day.
const (
	insightDaysSQL = `SELECT d::date::text, coalesce(r.views, 0)::bigint, coalesce(r.visitors, 0)::bigint, coalesce(o.n, 0)::bigint, coalesce(o.revenue, 0)
FROM generate_series($1::date, $2::date, interval '1 day') d
LEFT JOIN (SELECT day, sum(count) FILTER (WHERE metric = 'pageview') AS views, sum(count) FILTER (WHERE metric = 'visitor') AS visitors
           FROM insight_daily WHERE metric IN ('pageview', 'visitor') AND day BETWEEN $1 AND $2 GROUP BY day) r ON r.day = d::date
LEFT JOIN (SELECT (order_date_time AT TIME ZONE 'UTC')::date AS day, count(*) AS n, sum(order_total) AS revenue
           FROM customer_order WHERE order_date_time >= $1::date AT TIME ZONE 'UTC' AND order_date_time < ($2::date + 1) AT TIME ZONE 'UTC'
           GROUP BY 1) o ON o.day = d::date
ORDER BY d`
	insightTopSQL = `SELECT key, sum(count)::bigint FROM insight_daily WHERE metric = $3 AND day BETWEEN $1 AND $2
GROUP BY key ORDER BY 2 DESC, key LIMIT 20`
	insightLinksSQL = `SELECT key, substr(metric, 6), sum(count)::bigint FROM insight_daily
WHERE metric IN ('link_member', 'link_prospect', 'link_other') AND day BETWEEN $1 AND $2
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50`
	insightFunnelSQL = `SELECT
  coalesce(sum(count) FILTER (WHERE key = '/product' OR key LIKE '/product/%'), 0)::bigint,
  coalesce(sum(count) FILTER (WHERE key = '/cart'), 0)::bigint,
  coalesce(sum(count) FILTER (WHERE key LIKE '/checkout/confirm%'), 0)::bigint,
  (SELECT count(*) FROM customer_order WHERE order_date_time >= $1::date AT TIME ZONE 'UTC' AND order_date_time < ($2::date + 1) AT TIME ZONE 'UTC')
FROM insight_daily WHERE metric = 'pageview' AND day BETWEEN $1 AND $2`
)

func (a *App) insight(r *req, from, to time.Time) (*insightJSON, error) {
	out := &insightJSON{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly),
		TopPages: []insightCount{}, Buttons: []insightCount{}, Links: []insightLink{}, AjaxErrors: []insightAjax{}}
	counts := func(dst *[]insightCount) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			var err error
			*dst, err = pgx.CollectRows(rows, pgx.RowToStructByPos[insightCount])
			return err
		}
	}
	var ajax []insightCount
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		b := &pgx.Batch{}
		b.Queue(insightDaysSQL, from, to).Query(func(rows pgx.Rows) error {
			var err error
			out.Days, err = pgx.CollectRows(rows, pgx.RowToStructByPos[insightDay])
			return err
		})
		b.Queue(insightTopSQL, from, to, "pageview").Query(counts(&out.TopPages))
		b.Queue(insightTopSQL, from, to, "button_click").Query(counts(&out.Buttons))
		b.Queue(insightTopSQL, from, to, "ajax_error").Query(counts(&ajax))
		b.Queue(insightLinksSQL, from, to).Query(func(rows pgx.Rows) error {
			var err error
			out.Links, err = pgx.CollectRows(rows, pgx.RowToStructByPos[insightLink])
			return err
		})
		b.Queue(insightFunnelSQL, from, to).QueryRow(func(row pgx.Row) error {
			f := &out.Funnel
			return row.Scan(&f.ProductViews, &f.CartViews, &f.CheckoutViews, &f.PaidOrders)
		})
		return conn.SendBatch(r.ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("insight: %w", err)
	}
	for _, e := range ajax {
		page, id, _ := strings.Cut(e.Key, " ")
		out.AjaxErrors = append(out.AjaxErrors, insightAjax{Page: page, Error: id, Count: e.Count})
	}
	return out, nil
}

func (a *App) apiInsight(c *fiber.Ctx) error {
	from, to, err := a.insightRange(c)
	if err != nil {
		return err
	}
	out, err := a.insight(a.r(c), from, to)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// insightReports are the dashboard's tables as CSV: header and rows.
var insightReports = map[string]func(*insightJSON) [][]string{
	"days": func(d *insightJSON) [][]string {
		out := [][]string{{"day", "pageviews", "visitors", "orders", "revenue"}}
		for _, x := range d.Days {
			out = append(out, []string{x.Day, itoa(x.Pageviews), itoa(x.Visitors), itoa(x.Orders), x.Revenue.StringFixed(2)})
		}
		return out
	},
	"pages":   func(d *insightJSON) [][]string { return countRows("page", d.TopPages) },
	"buttons": func(d *insightJSON) [][]string { return countRows("button", d.Buttons) },
	"links": func(d *insightJSON) [][]string {
		out := [][]string{{"code", "audience", "count"}}
		for _, x := range d.Links {
			out = append(out, []string{x.Code, x.Audience, itoa(x.Count)})
		}
		return out
	},
	"ajax-errors": func(d *insightJSON) [][]string {
		out := [][]string{{"page", "error", "count"}}
		for _, x := range d.AjaxErrors {
			out = append(out, []string{x.Page, x.Error, itoa(x.Count)})
		}
		return out
	},
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func countRows(name string, xs []insightCount) [][]string {
	out := [][]string{{name, "count"}}
	for _, x := range xs {
		out = append(out, []string{x.Key, itoa(x.Count)})
	}
	return out
}

// apiInsightReport answers one of the dashboard's tables as CSV, cells a
// spreadsheet would run as formulas escaped (a page path is visitor input).
func (a *App) apiInsightReport(c *fiber.Ctx) error {
	report, ok := insightReports[c.Params("report")]
	if !ok {
		return &apiError{Status: fiber.StatusNotFound, Code: "not-found", Detail: "no report of that name (days, pages, buttons, links, ajax-errors)", Field: "report"}
	}
	from, to, err := a.insightRange(c)
	if err != nil {
		return err
	}
	r := a.r(c)
	d, err := a.insight(r, from, to)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, rec := range report(d) {
		for i := range rec {
			rec[i] = SafeCell(rec[i])
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	w.Flush()
	name := fmt.Sprintf("%s-insight-%s-%s-%s.csv", r.tenant.Slug, c.Params("report"), d.From, d.To)
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	return c.Send(buf.Bytes())
}

// insightChart is the daily page views and visitors drawn as an SVG line
// chart, laid out here so the template only places it.
type insightChart struct {
	Width, Height      int
	Views, Visitors    string // polyline points
	Max                int64
	Ticks              []chartTick // y axis
	Labels             []chartTick // x axis: a few days
	ViewsDots, VisDots []chartDot
}

type chartTick struct {
	X, Y  float64
	Label string
}

type chartDot struct {
	X, Y  float64
	Title string
}

func newInsightChart(days []insightDay) insightChart {
	const w, h, left, bottom, top = 720, 220, 48, 28, 12
	c := insightChart{Width: w, Height: h}
	for _, d := range days {
		c.Max = max(c.Max, d.Pageviews, d.Visitors)
	}
	scale := max(c.Max, 1)
	plotW, plotH := float64(w-left-28), float64(h-bottom-top)
	x := func(i int) float64 {
		if len(days) == 1 {
			return left + plotW/2
		}
		return left + plotW*float64(i)/float64(len(days)-1)
	}
	y := func(n int64) float64 { return top + plotH - plotH*float64(n)/float64(scale) }
	var views, vis strings.Builder
	for i, d := range days {
		fmt.Fprintf(&views, "%.1f,%.1f ", x(i), y(d.Pageviews))
		fmt.Fprintf(&vis, "%.1f,%.1f ", x(i), y(d.Visitors))
		c.ViewsDots = append(c.ViewsDots, chartDot{x(i), y(d.Pageviews), fmt.Sprintf("%s: %d page views", d.Day, d.Pageviews)})
		c.VisDots = append(c.VisDots, chartDot{x(i), y(d.Visitors), fmt.Sprintf("%s: %d visitors", d.Day, d.Visitors)})
	}
	c.Views, c.Visitors = strings.TrimSpace(views.String()), strings.TrimSpace(vis.String())
	for _, f := range []int64{0, 2, 4} {
		n := scale * f / 4
		c.Ticks = append(c.Ticks, chartTick{left - 6, y(n), itoa(n)})
	}
	step := max(1, len(days)/6)
	for i := 0; i < len(days); i += step {
		c.Labels = append(c.Labels, chartTick{x(i), h - 8, days[i].Day[5:]})
	}
	return c
}

type insightPage struct {
	*insightJSON
	Chart insightChart
}

func (a *App) pageInsight(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Insight", "insight")
	from, to, err := a.insightRange(c)
	v.Form["from"], v.Form["to"] = from.Format(time.DateOnly), to.Format(time.DateOnly)
	if err != nil {
		v.Form["from"], v.Form["to"] = c.Query("from"), c.Query("to")
		v.Data = &insightPage{insightJSON: &insightJSON{}}
		return a.render(c, "insight", v, err)
	}
	d, err := a.insight(r, from, to)
	if err != nil {
		return err
	}
	v.Data = &insightPage{insightJSON: d, Chart: newInsightChart(d.Days)}
	return a.render(c, "insight", v, nil)
}
