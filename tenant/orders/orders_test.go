package orders_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/orders"
)

func newMember(t *testing.T, db *pgxpool.Pool, username string) int64 {
	t.Helper()
	var id int64
	err := db.QueryRow(context.Background(), `
WITH a AS (INSERT INTO account (username, password_hash, email) VALUES ($1::text, 'x', $1::text || '@example.com') RETURNING id)
INSERT INTO member (account_id) SELECT id FROM a RETURNING id`, username).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func exec(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// bareOrder inserts an order with only its own row (no payment, no
// addresses, no lines).
func bareOrder(t *testing.T, db *pgxpool.Pool, ident string, member *int64, when string, tax, total string) int64 {
	t.Helper()
	var id int64
	err := db.QueryRow(context.Background(), `INSERT INTO customer_order (identifier, member_id, sales_tax_amt, order_total, order_date_time)
VALUES ($1, $2, $3::numeric, $4::numeric, $5::timestamptz) RETURNING id`, ident, member, tax, total, when).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestForMember(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	m, other := newMember(t, db, "historian"), newMember(t, db, "other")
	first := bareOrder(t, db, "fIrSt00001", &m, "2026-01-02T08:05:00.001Z", "0", "23.06")
	second := bareOrder(t, db, "sEcOnD0002", &m, "2026-02-01T00:00:00Z", "1.5", "7")
	bareOrder(t, db, "oThEr00003", &other, "2026-03-01T00:00:00Z", "0", "1")
	bareOrder(t, db, "gUeSt00004", nil, "2026-03-01T00:00:00Z", "0", "1")

	got, err := orders.ForMember(ctx, db, m)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	for _, o := range got {
		s += fmt.Sprintf("%d %s %s %s %s|", o.ID, o.Identifier, o.OrderDateTime.UTC().Format(time.RFC3339Nano), o.SalesTax.StringFixed(2), o.OrderTotal.StringFixed(2))
	}
	want := fmt.Sprintf("%d sEcOnD0002 2026-02-01T00:00:00Z 1.50 7.00|%d fIrSt00001 2026-01-02T08:05:00.001Z 0.00 23.06|", second, first)
	if s != want {
		t.Errorf("history\n got %s\nwant %s", s, want)
	}
	if got, err := orders.ForMember(ctx, db, 0); err != nil || len(got) != 0 {
		t.Errorf("no member: %v, %v", got, err)
	}
}

func TestAccessFor(t *testing.T) {
	t.Parallel()
	owner := int64(7)
	member := orders.Order{MemberID: &owner}
	guest := orders.Order{}
	tests := []struct {
		name    string
		o       orders.Order
		visitor int64
		want    orders.Access
	}{
		{"owner, own order", member, 7, orders.Visible},
		{"anonymous, member order", member, 0, orders.LogInRequired},
		{"another member, member order", member, 8, orders.NotInAccount},
		{"anonymous, guest order", guest, 0, orders.Visible},
		{"member, guest order", guest, 7, orders.NotInAccount},
	}
	for _, tc := range tests {
		if got := tc.o.AccessFor(tc.visitor); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFindAndLoad(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	m := newMember(t, db, "buyer")
	var id int64
	err := db.QueryRow(ctx, `
WITH p AS (INSERT INTO order_payment (email, payment_type, card_name) VALUES ('john@example.com', 'card', 'John Doe') RETURNING id),
     s AS (INSERT INTO order_shipping_address (name, address_line1, city, state, zip, country, country_code)
           VALUES ('John Doe', '1 Main St', 'Springfield', 'IL', '62701', 'US', 'US') RETURNING id)
INSERT INTO customer_order (identifier, member_id, payment_id, shipping_address_id, item_subtotal, item_discount_amt,
  shipping_amt, shipping_discount_amt, order_total, agreed_with_terms_of_sale, order_date_time)
SELECT 'fUlL000001', $1, p.id, s.id, 10.99, 1.10, 9.56, 0, 19.45, true, '2026-01-02T08:05:00Z' FROM p, s
RETURNING id`, m).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO sku_price (sku_id, price, created_date_time) VALUES (1, 9.99, now())`) // a later price: the order keeps 3.50
	exec(t, db, `INSERT INTO order_sku (order_id, sku_id, quantity, price_each) VALUES ($1, 6, 1, 3.99), ($1, 1, 2, 3.50)`, id)
	exec(t, db, `INSERT INTO order_status_history (order_id, order_status_id, created_date_time) VALUES
($1, 1, '2026-01-02T08:05:00Z'), ($1, 4, '2026-01-03T08:05:00Z')`, id)
	exec(t, db, `INSERT INTO order_shipping_method (order_id, shipping_method_id) SELECT $1, id FROM shipping_method WHERE identifier = 'USPSRetailGround'`, id)
	exec(t, db, `INSERT INTO order_discount (order_id, discount_code_id, applied) VALUES ($1, 1, true)`, id)

	if _, found, err := orders.Find(ctx, db, "FULL000001"); err != nil || found {
		t.Errorf("identifier in another case: found %v, %v", found, err)
	}
	o, found, err := orders.Find(ctx, db, "fUlL000001")
	if err != nil || !found {
		t.Fatalf("find: %v %v", found, err)
	}
	if o.ID != id || o.MemberID == nil || *o.MemberID != m || o.OrderTotal.StringFixed(2) != "19.45" || o.ItemDiscount.StringFixed(2) != "1.10" ||
		o.ShippingSubtotal.StringFixed(2) != "9.56" || o.SalesTax.StringFixed(2) != "0.00" {
		t.Errorf("order %+v", o)
	}
	if o.Payment == nil || *o.Payment.Email != "john@example.com" || *o.Payment.CardName != "John Doe" || o.Payment.CardBrand != nil {
		t.Errorf("payment %+v", o.Payment)
	}
	if o.ShippingAddress == nil || *o.ShippingAddress.City != "Springfield" || *o.ShippingAddress.CountryCode != "US" {
		t.Errorf("shipping address %+v", o.ShippingAddress)
	}
	if o.BillingAddress != nil {
		t.Errorf("billing address %+v, want none", o.BillingAddress)
	}

	d, err := orders.Load(ctx, db, o)
	if err != nil {
		t.Fatal(err)
	}
	var lines string
	for _, l := range d.Lines {
		lines += fmt.Sprintf("%dx%d@%s %s %s|", l.SKUID, l.Quantity, l.Price.StringFixed(2), l.ProductIdentifier, l.ImageURL)
	}
	if want := "6x1@3.99 "; len(d.Lines) != 2 || lines[:len(want)] != want || d.Lines[1].SKUID != 1 || d.Lines[1].Price.StringFixed(2) != "3.50" ||
		d.Lines[1].ProductTitle != "Paper Clips" {
		t.Errorf("lines %s", lines)
	}
	if len(d.Statuses) != 2 || d.Statuses[0].Identifier != "shipped" || d.Statuses[1].Identifier != "accepted" {
		t.Errorf("statuses %+v, want newest first", d.Statuses)
	}
	if d.Shipping == nil || d.Shipping.Identifier != "USPSRetailGround" || d.Shipping.Cost.StringFixed(2) != "9.56" || d.Shipping.TrackingURL == "" {
		t.Errorf("shipping method %+v", d.Shipping)
	}
	if len(d.Discounts) != 1 || d.Discounts[0].Code != "WELCOME10" || !d.Discounts[0].Applied || d.Discounts[0].Action == "" {
		t.Errorf("discounts %+v", d.Discounts)
	}

	bare := bareOrder(t, db, "bArE000002", nil, "2026-01-02T08:05:00Z", "0", "0")
	o, _, err = orders.Find(ctx, db, "bArE000002")
	if err != nil || o.ID != bare || o.Payment != nil || o.ShippingAddress != nil || o.MemberID != nil {
		t.Fatalf("bare order %+v, %v", o, err)
	}
	if d, err = orders.Load(ctx, db, o); err != nil || len(d.Lines)+len(d.Statuses)+len(d.Discounts) != 0 || d.Shipping != nil {
		t.Errorf("bare order detail %+v, %v", d, err)
	}
}
