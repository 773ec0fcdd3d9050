package cart

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Line is one cart line with what the API shows of its SKU (§5.1 "Cart line
// object").
type Line struct {
	ID                  int64
	SKUID               int64
	Quantity            int
	Price               decimal.Decimal // the SKU's current price
	SKUType             string
	InventoryTitle      string
	InventoryIdentifier string
	Color               *string
	Size                *string
	Description         *string
	ProductTitle        string
	ProductTitleURL     string
	ProductIdentifier   string
	// ImageURL is the SKU's main image, else the product's main image.
	ImageURL string
}

// IsProduct reports whether the line is shown as a product line.
func (l Line) IsProduct() bool { return l.SKUType == "product" }

// Subtotal is price × quantity.
func (l Line) Subtotal() decimal.Decimal { return l.Price.Mul(decimal.NewFromInt(int64(l.Quantity))) }

// skuColumns and skuJoins read what the API shows of a SKU (alias s): its
// type, inventory, colour, size, description, product and main image (the
// SKU's, else the product's).
const skuColumns = `st.title, si.title, si.identifier, s.color, s.size, s.description,
       coalesce(p.title, ''), coalesce(p.title_url, ''), coalesce(p.identifier, ''),
       coalesce(
         (SELECT image_url FROM sku_image WHERE sku_id = s.id AND main_image ORDER BY id LIMIT 1),
         (SELECT image_url FROM product_image WHERE product_id = p.id AND main_image ORDER BY id LIMIT 1),
         '')`

const skuJoins = `
JOIN sku_type st ON st.id = s.sku_type_id
JOIN sku_inventory si ON si.id = s.sku_inventory_id
LEFT JOIN product_sku ps ON ps.sku_id = s.id
LEFT JOIN product p ON p.id = ps.product_id`

// linesSQL reads the lines of the cart of (see Of) in insertion order with
// each SKU's current price (latest created_date_time, then latest id) and
// main image.
func linesSQL(of string) string {
	return `
SELECT cs.id, cs.sku_id, cs.quantity, pr.price, ` + skuColumns + `
FROM cart_sku cs
JOIN sku s ON s.id = cs.sku_id` + skuJoins + `
LEFT JOIN LATERAL (
  SELECT price FROM sku_price WHERE sku_id = s.id ORDER BY created_date_time DESC, id DESC LIMIT 1
) pr ON true
WHERE cs.cart_id = ` + of + `
ORDER BY cs.id`
}

// ErrNoPrice is returned for a cart line whose SKU has no price row.
var ErrNoPrice = errors.New("sku has no price")

// Lines returns the cart's lines, oldest first.
func Lines(ctx context.Context, db DB, cartID int64) ([]Line, error) {
	rows, err := db.Query(ctx, linesSQL(ofID), cartID)
	if err != nil {
		return nil, fmt.Errorf("cart lines: %w", err)
	}
	return scanLines(rows)
}

func scanLines(rows pgx.Rows) ([]Line, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Line, error) {
		var l Line
		var price decimal.NullDecimal
		if err := row.Scan(&l.ID, &l.SKUID, &l.Quantity, &price, &l.SKUType, &l.InventoryTitle, &l.InventoryIdentifier,
			&l.Color, &l.Size, &l.Description, &l.ProductTitle, &l.ProductTitleURL, &l.ProductIdentifier, &l.ImageURL); err != nil {
			return l, err
		}
		if !price.Valid {
			return l, fmt.Errorf("sku %d: %w", l.SKUID, ErrNoPrice)
		}
		l.Price = price.Decimal
		return l, nil
	})
	if err != nil {
		return nil, fmt.Errorf("cart lines: %w", err)
	}
	if len(out) == 0 {
		return nil, nil // as before: no lines is a nil slice
	}
	return out, nil
}

// pricedLinesSQL reads what the API shows of the given SKUs, by position.
const pricedLinesSQL = `
SELECT x.ord, ` + skuColumns + `
FROM unnest($1::bigint[]) WITH ORDINALITY AS x(sku_id, ord)
JOIN sku s ON s.id = x.sku_id` + skuJoins + `
ORDER BY x.ord`

// PricedLines completes lines that carry only a SKU, a quantity and a price
// (a checkout's record of what it charged) with what the API shows of each
// SKU now, keeping the given quantities, prices and order. ID is left 0.
func PricedLines(ctx context.Context, db DB, lines []Line) ([]Line, error) {
	out := make([]Line, len(lines))
	copy(out, lines)
	if len(lines) == 0 {
		return out, nil
	}
	ids := make([]int64, len(lines))
	for i, l := range lines {
		ids[i] = l.SKUID
	}
	rows, err := db.Query(ctx, pricedLinesSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("priced lines: %w", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var ord int64
		var l Line
		if err := rows.Scan(&ord, &l.SKUType, &l.InventoryTitle, &l.InventoryIdentifier,
			&l.Color, &l.Size, &l.Description, &l.ProductTitle, &l.ProductTitleURL, &l.ProductIdentifier, &l.ImageURL); err != nil {
			return nil, fmt.Errorf("priced lines: %w", err)
		}
		if ord < 1 || ord > int64(len(out)) {
			return nil, fmt.Errorf("priced lines: position %d out of range", ord)
		}
		l.SKUID, l.Quantity, l.Price = out[ord-1].SKUID, out[ord-1].Quantity, out[ord-1].Price
		out[ord-1] = l
		found++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("priced lines: %w", err)
	}
	if found != len(lines) {
		return nil, fmt.Errorf("priced lines: %d of %d SKUs exist", found, len(lines))
	}
	return out, nil
}

// ShippingMethod is a shipping_method row.
type ShippingMethod struct {
	ID          int64
	Identifier  string
	Carrier     string
	Cost        decimal.Decimal
	TrackingURL string
	Active      bool
}

// FreeShippingMethod is the only method a shipping discount code makes free
// (seed-era rule, §11).
const FreeShippingMethod = "USPSRetailGround"

// selectedShippingSQL reads the selected method of the cart of (see Of).
func selectedShippingSQL(of string) string {
	return `
SELECT m.id, m.identifier, m.carrier, m.shipping_cost, m.tracking_code_base_url, m.active
FROM cart_shipping_method csm JOIN shipping_method m ON m.id = csm.shipping_method_id
WHERE csm.cart_id = ` + of
}

// SelectedShipping returns the cart's selected method, nil when none.
func SelectedShipping(ctx context.Context, db DB, cartID int64) (*ShippingMethod, error) {
	return scanShipping(db.QueryRow(ctx, selectedShippingSQL(ofID), cartID))
}

func scanShipping(row pgx.Row) (*ShippingMethod, error) {
	var m ShippingMethod
	err := row.Scan(&m.ID, &m.Identifier, &m.Carrier, &m.Cost, &m.TrackingURL, &m.Active)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cart shipping method: %w", err)
	}
	return &m, nil
}

// Discount is a discount code applied to a cart (seed era, §11).
type Discount struct {
	CartDiscountID int64
	CodeID         int64
	Code           string
	Description    string
	Start, End     time.Time
	Combinable     bool
	Amount         decimal.Decimal
	OrderMinimum   decimal.Decimal
	TypeTitle      string
	TypeDesc       string
	AppliesTo      string // item_total | shipping | subscription
	Action         string // percent-off | dollar-amt-off | free-usps-ground-shipping | free-digital-months
	// Applied is set by ComputeTotals: whether the code counts (§11).
	Applied bool
}

// discountsSQL reads the discount codes of the cart of (see Of) in the
// order they were applied.
func discountsSQL(of string) string {
	return `
SELECT cd.id, dc.id, dc.code, dc.description, dc.start_date_time, dc.end_date_time, dc.combinable,
       dc.discount_amount, dc.order_minimum, dt.title, dt.description, dt.applies_to, dt.action
FROM cart_discount cd
JOIN discount_code dc ON dc.id = cd.discount_code_id
JOIN discount_type dt ON dt.id = dc.discount_type_id
WHERE cd.cart_id = ` + of + `
ORDER BY cd.id`
}

// Discounts returns the cart's discount codes in the order they were applied.
func Discounts(ctx context.Context, db DB, cartID int64) ([]Discount, error) {
	rows, err := db.Query(ctx, discountsSQL(ofID), cartID)
	if err != nil {
		return nil, fmt.Errorf("cart discounts: %w", err)
	}
	return scanDiscounts(rows)
}

func scanDiscounts(rows pgx.Rows) ([]Discount, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Discount, error) {
		var d Discount
		err := row.Scan(&d.CartDiscountID, &d.CodeID, &d.Code, &d.Description, &d.Start, &d.End, &d.Combinable,
			&d.Amount, &d.OrderMinimum, &d.TypeTitle, &d.TypeDesc, &d.AppliesTo, &d.Action)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("cart discounts: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Contents is everything a cart's totals depend on.
type Contents struct {
	Cart      Cart
	Lines     []Line
	Shipping  *ShippingMethod
	Discounts []Discount
	Totals    Totals
}

// ProductLines returns the lines shown as products.
func (c Contents) ProductLines() []Line {
	var out []Line
	for _, l := range c.Lines {
		if l.IsProduct() {
			out = append(out, l)
		}
	}
	return out
}

// Load reads a cart's lines, shipping method and discounts and computes its
// totals. Run it in a transaction when the result must be consistent.
func Load(ctx context.Context, db DB, c Cart) (Contents, error) {
	out := Contents{Cart: c}
	var err error
	if out.Lines, err = Lines(ctx, db, c.ID); err != nil {
		return out, err
	}
	if out.Shipping, err = SelectedShipping(ctx, db, c.ID); err != nil {
		return out, err
	}
	if out.Discounts, err = Discounts(ctx, db, c.ID); err != nil {
		return out, err
	}
	out.Totals = ComputeTotals(out.Lines, out.Shipping, out.Discounts)
	return out, nil
}
