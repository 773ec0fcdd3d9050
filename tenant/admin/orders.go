package admin

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	outbox "github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/tenant/orders"
)

// Orders: the list, the detail (read through tenant/orders), and status
// changes along a checked state machine, each a row of
// order_status_history, optionally mailed to the customer through the
// outbox in the same transaction.

// nextStatuses is the state machine: from each status, where staff may move
// an order. "refunded" is reached by refunding the whole charge, never set
// by hand; "delivered", "cancelled" and "refunded" end the line (a
// cancelled order can still be refunded).
var nextStatuses = map[string][]string{
	"accepted":      {"manufacturing", "packing", "shipped", "cancelled"},
	"manufacturing": {"packing", "shipped", "cancelled"},
	"packing":       {"shipped", "cancelled"},
	"shipped":       {"delivered"},
	"delivered":     {},
	"cancelled":     {},
	"refunded":      {},
}

var orderIdentRE = regexp.MustCompile(`^[A-Za-z0-9]{1,100}$`)

type orderSummaryJSON struct {
	ID           int64            `json:"id"`
	Identifier   string           `json:"identifier"`
	OrderedAt    time.Time        `json:"order_date_time"`
	Email        string           `json:"email"`
	Name         string           `json:"name"`
	Total        decimal.Decimal  `json:"order_total"`
	StripeAmount *decimal.Decimal `json:"stripe_amount_total"`
	Mismatch     bool             `json:"payment_amount_mismatch"`
	Status       string           `json:"status"`
	Refunded     decimal.Decimal  `json:"refunded"`
}

// orderListSQL: newest first, by id; $1 the cursor, $2 the limit, then the
// filters (empty: any).
const orderListSQL = `
SELECT o.id, o.identifier, o.order_date_time, coalesce(p.email, ''), coalesce(sa.name, ''), o.order_total, o.stripe_amount_total,
       o.payment_amount_mismatch, coalesce(cur.identifier, 'accepted'),
       (SELECT coalesce(sum(amount), 0) FROM refund WHERE order_id = o.id AND status = 'succeeded')
FROM customer_order o
LEFT JOIN order_payment p ON p.id = o.payment_id
LEFT JOIN order_shipping_address sa ON sa.id = o.shipping_address_id
LEFT JOIN LATERAL (
  SELECT st.identifier FROM order_status_history h JOIN order_status st ON st.id = h.order_status_id
  WHERE h.order_id = o.id ORDER BY h.created_date_time DESC, h.id DESC LIMIT 1
) cur ON true
WHERE ($1 = 0 OR o.id < $1)
  AND ($3 = '' OR coalesce(cur.identifier, 'accepted') = $3)
  AND ($4::timestamptz IS NULL OR o.order_date_time >= $4)
  AND ($5::timestamptz IS NULL OR o.order_date_time < $5)
  AND ($6 = '' OR lower(p.email) = lower($6))
  AND ($7 = '' OR o.identifier = $7)
  AND ($8 = '' OR o.identifier ILIKE $8 || '%' OR p.email ILIKE '%' || $8 || '%' OR sa.name ILIKE '%' || $8 || '%')
ORDER BY o.id DESC LIMIT $2`

// orderFilter is the list's query: status, from and to (dates or times;
// a date "to" takes in that whole day), email, identifier, q (search).
type orderFilter struct {
	Status, Email, Identifier, Q string
	From, To                     *time.Time
}

func filterOf(c *fiber.Ctx) (orderFilter, error) {
	f := orderFilter{Status: c.Query("status"), Email: strings.TrimSpace(c.Query("email")),
		Identifier: strings.TrimSpace(c.Query("identifier")), Q: strings.TrimSpace(c.Query("q"))}
	if _, ok := nextStatuses[f.Status]; f.Status != "" && !ok {
		return f, invalid("status", "status must be one of accepted, manufacturing, packing, shipped, delivered, cancelled, refunded")
	}
	if len(f.Q) > 200 || len(f.Email) > 254 || len(f.Identifier) > 100 {
		return f, invalid("q", "the search is too long")
	}
	// LIKE's own characters are searched for as themselves.
	f.Q = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Q)
	for _, x := range []struct {
		name string
		dst  **time.Time
		end  bool
	}{{"from", &f.From, false}, {"to", &f.To, true}} {
		s := c.Query(x.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			d, derr := time.Parse(time.DateOnly, s)
			if derr != nil {
				return f, invalid(x.name, x.name+" must be a date (2026-01-31) or an RFC 3339 time")
			}
			if x.end {
				d = d.AddDate(0, 0, 1)
			}
			t = d
		}
		*x.dst = &t
	}
	return f, nil
}

func (a *App) listOrders(r *req, p page, f orderFilter) ([]orderSummaryJSON, string, error) {
	var out []orderSummaryJSON
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(r.ctx, orderListSQL, p.after, p.limit+1, f.Status, f.From, f.To, f.Email, f.Identifier, f.Q)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[orderSummaryJSON])
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	return pageTail(out, p, func(x orderSummaryJSON) int64 { return x.ID })
}

func (a *App) apiOrderList(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	f, err := filterOf(c)
	if err != nil {
		return err
	}
	items, next, err := a.listOrders(a.r(c), p, f)
	if err != nil {
		return err
	}
	return c.JSON(listJSON(items, next))
}

type lineJSON struct {
	SKUID       int64           `json:"sku_id"`
	Product     string          `json:"product_title"`
	Description string          `json:"description"`
	Color       string          `json:"color"`
	Size        string          `json:"size"`
	Quantity    int             `json:"quantity"`
	PriceEach   decimal.Decimal `json:"price_each"`
}

type statusJSON struct {
	Identifier string    `json:"identifier"`
	Title      string    `json:"title"`
	At         time.Time `json:"created_date_time"`
}

type refundJSON struct {
	ID        int64           `json:"id"`
	Amount    decimal.Decimal `json:"amount"`
	Reason    string          `json:"reason"`
	Status    string          `json:"status"`
	StripeID  *string         `json:"stripe_refund_id"`
	CreatedBy string          `json:"created_by"`
	CreatedAt time.Time       `json:"created_date_time"`
}

type orderDetailJSON struct {
	ID               int64            `json:"id"`
	Identifier       string           `json:"identifier"`
	OrderedAt        time.Time        `json:"order_date_time"`
	MemberID         *int64           `json:"member_id"`
	Status           string           `json:"status"`
	NextStatuses     []string         `json:"next_statuses"`
	ItemSubtotal     decimal.Decimal  `json:"item_subtotal"`
	ItemDiscount     decimal.Decimal  `json:"item_discount"`
	Shipping         decimal.Decimal  `json:"shipping"`
	ShippingDiscount decimal.Decimal  `json:"shipping_discount"`
	SalesTax         decimal.Decimal  `json:"sales_tax"`
	Total            decimal.Decimal  `json:"order_total"`
	StripeAmount     *decimal.Decimal `json:"stripe_amount_total"`
	Mismatch         bool             `json:"payment_amount_mismatch"`
	Refunded         decimal.Decimal  `json:"refunded"`
	Refundable       decimal.Decimal  `json:"refundable"`
	Lines            []lineJSON       `json:"lines"`
	Payment          *paymentJSON     `json:"payment"`
	ShippingAddress  *addressJSON     `json:"shipping_address"`
	BillingAddress   *addressJSON     `json:"billing_address"`
	ShippingMethod   *string          `json:"shipping_method"`
	Carrier          *string          `json:"carrier"`
	TrackingNumber   *string          `json:"tracking_number"`
	TrackingURL      *string          `json:"tracking_url"`
	Statuses         []statusJSON     `json:"statuses"`
	Refunds          []refundJSON     `json:"refunds"`
}

type paymentJSON struct {
	Email         *string `json:"email"`
	Type          *string `json:"payment_type"`
	CardBrand     *string `json:"card_brand"`
	CardLast4     *string `json:"card_last4"`
	PaymentIntent *string `json:"stripe_payment_intent_id"`
}

func paymentOf(p *orders.Payment) *paymentJSON {
	if p == nil {
		return nil
	}
	return &paymentJSON{Email: p.Email, Type: p.PaymentType, CardBrand: p.CardBrand, CardLast4: p.CardLast4, PaymentIntent: p.StripePaymentIntent}
}

type addressJSON struct {
	Name        *string `json:"name"`
	Line1       *string `json:"address_line1"`
	City        *string `json:"city"`
	State       *string `json:"state"`
	Zip         *string `json:"zip"`
	Country     *string `json:"country"`
	CountryCode *string `json:"country_code"`
}

func addressOf(a *orders.Address) *addressJSON {
	if a == nil {
		return nil
	}
	return &addressJSON{Name: a.Name, Line1: a.AddressLine1, City: a.City, State: a.State, Zip: a.Zip, Country: a.Country, CountryCode: a.CountryCode}
}

// loadOrder reads an order for the back office; nil when none.
func loadOrder(r *req, q orders.DB, ident string) (*orderDetailJSON, error) {
	o, ok, err := orders.Find(r.ctx, q, ident)
	if err != nil || !ok {
		return nil, err
	}
	d, err := orders.Load(r.ctx, q, o)
	if err != nil {
		return nil, err
	}
	out := &orderDetailJSON{ID: o.ID, Identifier: o.Identifier, OrderedAt: o.OrderDateTime, MemberID: o.MemberID,
		ItemSubtotal: o.ItemSubtotal, ItemDiscount: o.ItemDiscount, Shipping: o.ShippingSubtotal,
		ShippingDiscount: o.ShippingDiscount, SalesTax: o.SalesTax, Total: o.OrderTotal, StripeAmount: o.StripeAmountTotal,
		Mismatch: o.AmountMismatch, Payment: paymentOf(o.Payment), ShippingAddress: addressOf(o.ShippingAddress),
		BillingAddress: addressOf(o.BillingAddress),
		Lines:          []lineJSON{}, Statuses: []statusJSON{}, Refunds: []refundJSON{}, Status: "accepted"}
	for _, l := range d.Lines {
		out.Lines = append(out.Lines, lineJSON{SKUID: l.SKUID, Product: l.ProductTitle, Description: deref(l.Description),
			Color: deref(l.Color), Size: deref(l.Size), Quantity: l.Quantity, PriceEach: l.Price})
	}
	for i, s := range d.Statuses {
		if i == 0 {
			out.Status = s.Identifier
		}
		out.Statuses = append(out.Statuses, statusJSON{Identifier: s.Identifier, Title: s.Title, At: s.CreatedDateTime})
	}
	out.NextStatuses = slices.Clone(nextStatuses[out.Status])
	if out.NextStatuses == nil {
		out.NextStatuses = []string{}
	}
	if d.Shipping != nil {
		out.ShippingMethod, out.Carrier = &d.Shipping.Identifier, &d.Shipping.Carrier
		if err := q.QueryRow(r.ctx, `SELECT tracking_number FROM order_shipping_method WHERE order_id = $1`, o.ID).Scan(&out.TrackingNumber); err != nil {
			return nil, err
		}
		if out.TrackingNumber != nil && *out.TrackingNumber != "" && d.Shipping.TrackingURL != "none" {
			u := d.Shipping.TrackingURL + *out.TrackingNumber
			out.TrackingURL = &u
		}
	}
	rows, err := q.Query(r.ctx, `SELECT id, amount, reason, status, stripe_refund_id, created_by, created_date_time FROM refund WHERE order_id = $1 ORDER BY id`, o.ID)
	if err != nil {
		return nil, err
	}
	if out.Refunds, err = pgx.CollectRows(rows, pgx.RowToStructByPos[refundJSON]); err != nil {
		return nil, err
	}
	committed := decimal.Zero
	for _, rf := range out.Refunds {
		if rf.Status == "succeeded" {
			out.Refunded = out.Refunded.Add(rf.Amount)
		}
		if rf.Status != "failed" {
			committed = committed.Add(rf.Amount)
		}
	}
	charged := o.OrderTotal
	if o.StripeAmountTotal != nil {
		charged = *o.StripeAmountTotal
	}
	out.Refundable = decimal.Max(decimal.Zero, charged.Sub(committed))
	if out.Refunds == nil {
		out.Refunds = []refundJSON{}
	}
	return out, nil
}

func orderIdent(c *fiber.Ctx) (string, error) {
	id := c.Params("identifier")
	if !orderIdentRE.MatchString(id) {
		return "", errNotFound
	}
	return id, nil
}

func (a *App) orderDetail(r *req, ident string) (*orderDetailJSON, error) {
	var out *orderDetailJSON
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		var err error
		out, err = loadOrder(r, conn, ident)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	if out == nil {
		return nil, errNotFound
	}
	return out, nil
}

func (a *App) apiOrderGet(c *fiber.Ctx) error {
	ident, err := orderIdent(c)
	if err != nil {
		return err
	}
	out, err := a.orderDetail(a.r(c), ident)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

type statusChange struct {
	Status         string `json:"status"`
	ShippingMethod string `json:"shipping_method"`
	TrackingNumber string `json:"tracking_number"`
	Notify         bool   `json:"notify"`
}

func (a *App) apiOrderStatus(c *fiber.Ctx) error {
	ident, err := orderIdent(c)
	if err != nil {
		return err
	}
	var in statusChange
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.changeStatus(a.r(c), ident, in)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

var errStatusMove = func(from, to string) *apiError {
	return &apiError{Status: fiber.StatusConflict, Code: "status-not-allowed", Field: "status",
		Detail: fmt.Sprintf("an order that is %s cannot become %s", from, to)}
}

// changeStatus moves an order along the state machine, under the order's
// row lock so two staff members cannot both move it from the same state.
// Shipping names the carrier (a shipping method) and a tracking number.
func (a *App) changeStatus(r *req, ident string, in statusChange) (*orderDetailJSON, error) {
	if in.Status == "" {
		return nil, required("status")
	}
	if _, ok := nextStatuses[in.Status]; !ok {
		return nil, invalid("status", "status must be one of manufacturing, packing, shipped, delivered, cancelled")
	}
	if in.Status == "refunded" {
		return nil, invalid("status", "an order becomes refunded by refunding it in full")
	}
	var err error
	if in.TrackingNumber, err = text("tracking_number", in.TrackingNumber, in.Status == "shipped", 100); err != nil {
		return nil, err
	}
	if in.Status == "shipped" && in.ShippingMethod == "" {
		return nil, required("shipping_method")
	}
	var out *orderDetailJSON
	err = a.tx(r, func(tx pgx.Tx) error {
		var orderID int64
		err := tx.QueryRow(r.ctx, `SELECT id FROM customer_order WHERE identifier = $1 FOR UPDATE`, ident).Scan(&orderID)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		before, err := loadOrder(r, tx, ident)
		if err != nil {
			return err
		}
		if !slices.Contains(nextStatuses[before.Status], in.Status) {
			return errStatusMove(before.Status, in.Status)
		}
		if in.Status == "shipped" {
			var methodID int64
			err := tx.QueryRow(r.ctx, `SELECT id FROM shipping_method WHERE identifier = $1`, in.ShippingMethod).Scan(&methodID)
			if errors.Is(err, pgx.ErrNoRows) {
				return invalid("shipping_method", "no shipping method has this identifier")
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(r.ctx, `INSERT INTO order_shipping_method (order_id, shipping_method_id, tracking_number) VALUES ($1, $2, $3)
ON CONFLICT (order_id) DO UPDATE SET shipping_method_id = EXCLUDED.shipping_method_id, tracking_number = EXCLUDED.tracking_number`,
				orderID, methodID, in.TrackingNumber); err != nil {
				return fmt.Errorf("order tracking: %w", err)
			}
		}
		if _, err := tx.Exec(r.ctx, `INSERT INTO order_status_history (order_id, order_status_id, created_date_time)
SELECT $1, id, greatest(clock_timestamp(), (SELECT max(created_date_time) FROM order_status_history WHERE order_id = $1))
FROM order_status WHERE identifier = $2`, orderID, in.Status); err != nil {
			return fmt.Errorf("order status: %w", err)
		}
		if out, err = loadOrder(r, tx, ident); err != nil {
			return err
		}
		if in.Notify {
			if err := a.queueStatusMail(r, tx, out); err != nil {
				return err
			}
		}
		return r.audit(tx, auditEntry{Action: "order.status_changed", TargetType: "order", TargetID: orderID,
			Before: map[string]any{"status": before.Status},
			After:  map[string]any{"status": out.Status, "shipping_method": out.ShippingMethod, "tracking_number": out.TrackingNumber, "notified": in.Notify}})
	})
	return out, err
}

var statusMailHTML = htmltemplate.Must(htmltemplate.New("s").Parse(`<p>Your order {{.Identifier}} at {{.Site}} is now <strong>{{.Status}}</strong>.</p>
{{if .Carrier}}<p>It travels with {{.Carrier}}, tracking number {{.Tracking}}{{if .TrackingURL}} (<a href="{{.TrackingURL}}">track it</a>){{end}}.</p>{{end}}`))

// queueStatusMail tells the customer (the order's payment address) the
// order's new status, through the outbox in the status change's
// transaction. Once per order and status.
func (a *App) queueStatusMail(r *req, tx pgx.Tx, o *orderDetailJSON) error {
	if o.Payment == nil || o.Payment.Email == nil || *o.Payment.Email == "" {
		return invalid("notify", "the order has no customer address to mail")
	}
	site := r.tenant.DisplayName
	if site == "" {
		site = r.tenant.Slug
	}
	title := o.Statuses[0].Title
	d := map[string]string{"Identifier": o.Identifier, "Site": site, "Status": strings.ToLower(title)}
	text := fmt.Sprintf("Your order %s at %s is now %s.\r\n", o.Identifier, site, strings.ToLower(title))
	if o.Status == "shipped" && o.Carrier != nil && o.TrackingNumber != nil {
		d["Carrier"], d["Tracking"] = *o.Carrier, *o.TrackingNumber
		text += fmt.Sprintf("\r\nIt travels with %s, tracking number %s.\r\n", *o.Carrier, *o.TrackingNumber)
		if o.TrackingURL != nil {
			d["TrackingURL"] = *o.TrackingURL
			text += "Track it: " + *o.TrackingURL + "\r\n"
		}
	}
	var html strings.Builder
	if err := statusMailHTML.Execute(&html, d); err != nil {
		return err
	}
	from := r.tenant.Settings.FromAddress
	if from == "" {
		from = a.from
	}
	return outbox.Enqueue(r.ctx, tx, outbox.Message{
		Kind: "order_status", From: from, To: []string{(&mail.Address{Address: *o.Payment.Email}).String()},
		Subject: fmt.Sprintf("Your %s order %s: %s", site, o.Identifier, title), Text: text, HTML: html.String(),
		DedupeKey: "order_status:" + strconv.FormatInt(o.ID, 10) + ":" + o.Status,
	})
}
