package admin

import (
	"bufio"
	"context"
	"database/sql/driver"
	"encoding/csv"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/directory"
)

// CSV exports are streamed: rows are read in batches of exportBatch by id
// (keyset), each batch on a connection that is released before the batch
// is written to the client, so neither the file nor a slow reader holds
// memory or a tenant connection. A cell a spreadsheet would run as a
// formula is prefixed with a single quote.

const exportBatch = 500

// ExportTimeout bounds a whole export.
const ExportTimeout = 5 * time.Minute

// export is one exportable table: its header and a query taking the last
// id written ($1) and the batch size ($2), whose first column is the id.
type export struct {
	header []string
	query  string
}

var exports = map[string]export{
	"products": {[]string{"id", "identifier", "title", "title_url", "headline"},
		`SELECT id, identifier, title, title_url, headline FROM product WHERE id > $1 ORDER BY id LIMIT $2`},
	"skus": {[]string{"id", "product_identifier", "color", "size", "description", "sku_type", "inventory", "price"},
		`SELECT s.id, p.identifier, s.color, s.size, s.description, t.title, i.identifier,
 (SELECT sp.price FROM sku_price sp WHERE sp.sku_id = s.id ORDER BY sp.created_date_time DESC, sp.id DESC LIMIT 1)
FROM sku s JOIN sku_type t ON t.id = s.sku_type_id JOIN sku_inventory i ON i.id = s.sku_inventory_id
LEFT JOIN product_sku ps ON ps.sku_id = s.id LEFT JOIN product p ON p.id = ps.product_id
WHERE s.id > $1 ORDER BY s.id LIMIT $2`},
	"prices": {[]string{"id", "sku_id", "price", "created_date_time"},
		`SELECT id, sku_id, price, created_date_time FROM sku_price WHERE id > $1 ORDER BY id LIMIT $2`},
	"orders": {[]string{"id", "identifier", "order_date_time", "member_id", "prospect_id", "email", "item_subtotal",
		"item_discount", "shipping", "shipping_discount", "sales_tax", "order_total", "status"},
		`SELECT o.id, o.identifier, o.order_date_time, o.member_id, o.prospect_id, p.email, o.item_subtotal,
 o.item_discount_amt, o.shipping_amt, o.shipping_discount_amt, o.sales_tax_amt, o.order_total,
 (SELECT s.identifier FROM order_status_history h JOIN order_status s ON s.id = h.order_status_id
  WHERE h.order_id = o.id ORDER BY h.created_date_time DESC, h.id DESC LIMIT 1)
FROM customer_order o LEFT JOIN order_payment p ON p.id = o.payment_id WHERE o.id > $1 ORDER BY o.id LIMIT $2`},
	"members": {[]string{"id", "username", "first_name", "last_name", "email", "active", "email_verified",
		"newsletter_subscriber", "email_unsubscribed", "date_joined", "last_login"},
		`SELECT m.id, a.username, a.first_name, a.last_name, a.email, a.is_active, m.email_verified, m.newsletter_subscriber,
 m.email_unsubscribed, a.date_joined, a.last_login FROM member m JOIN account a ON a.id = m.account_id
WHERE m.id > $1 ORDER BY m.id LIMIT $2`},
	"prospects": {[]string{"id", "email", "first_name", "last_name", "phone", "email_unsubscribed", "pr_cd",
		"prospect_comment", "swa_comment", "created_date_time", "converted_date_time"},
		`SELECT id, email, first_name, last_name, phone, email_unsubscribed, pr_cd, prospect_comment, swa_comment,
 created_date_time, converted_date_time FROM prospect WHERE id > $1 ORDER BY id LIMIT $2`},
	"chat-messages": {[]string{"id", "member_id", "prospect_id", "name", "email_address", "message", "created_date_time"},
		`SELECT id, member_id, prospect_id, name, email_address, message, created_date_time
FROM chat_message WHERE id > $1 ORDER BY id LIMIT $2`},
}

// ExportKinds are the names GET /exports/{kind} takes.
var ExportKinds = []string{"products", "skus", "prices", "orders", "members", "prospects", "chat-messages"}

// SafeCell escapes a cell a spreadsheet would run as a formula: one
// starting with =, +, -, @, a tab or a carriage return gets a leading
// single quote.
func SafeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// cell formats a value read from the database.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil || dv == nil {
			return ""
		}
		return cell(dv)
	}
	return fmt.Sprint(v)
}

// writeExport writes the whole of kind as CSV to w, batch by batch.
func (a *App) writeExport(ctx context.Context, t *directory.Tenant, kind string, w *bufio.Writer) error {
	ex := exports[kind]
	cw := csv.NewWriter(w)
	if err := cw.Write(ex.header); err != nil {
		return err
	}
	var after int64
	for {
		var batch [][]string
		err := a.db.Do(ctx, t, func(c *pgxpool.Conn) error {
			rows, err := c.Query(ctx, ex.query, after, exportBatch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					return err
				}
				rec := make([]string, len(vals))
				for i, v := range vals {
					rec[i] = SafeCell(cell(v))
				}
				after = vals[0].(int64)
				batch = append(batch, rec)
			}
			return rows.Err()
		})
		if err != nil {
			return fmt.Errorf("export %s: %w", kind, err)
		}
		if err := cw.WriteAll(batch); err != nil { // WriteAll flushes
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if len(batch) < exportBatch {
			return nil
		}
	}
}

// apiExport streams one table as CSV. The body is written after the
// handler returns, so it runs under its own deadline (ExportTimeout); a
// failure mid-way can only cut the file short, and is logged.
func (a *App) apiExport(c *fiber.Ctx) error {
	r := a.r(c)
	kind := c.Params("kind")
	if _, ok := exports[kind]; !ok {
		return &apiError{Status: fiber.StatusNotFound, Code: "not-found", Detail: "no export of that name", Field: "kind"}
	}
	// Exports carry personal data: who took which is on the audit log.
	if err := a.tx(r, func(tx pgx.Tx) error {
		return r.audit(tx, auditEntry{Action: "export.downloaded", TargetType: "export", After: map[string]string{"kind": kind}})
	}); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	t, log, reqID := r.tenant, a.log, r.requestID
	name := fmt.Sprintf("%s-%s-%s.csv", t.Slug, kind, a.now().UTC().Format("2006-01-02"))
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		ctx, cancel := context.WithTimeout(context.Background(), ExportTimeout)
		defer cancel()
		if err := a.writeExport(ctx, t, kind, w); err != nil {
			log.Error("export cut short", "tenant", t.Slug, "kind", kind, "request_id", reqID, "err", err)
		}
	})
	return nil
}
