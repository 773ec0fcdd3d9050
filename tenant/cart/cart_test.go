package cart_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/cart"
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

type lineQty map[int64]int

func addLines(t *testing.T, db *pgxpool.Pool, cartID int64, lines lineQty) {
	t.Helper()
	for sku, q := range lines {
		if _, err := db.Exec(context.Background(), `INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES ($1, $2, $3)`, cartID, sku, q); err != nil {
			t.Fatal(err)
		}
	}
}

func setShipping(t *testing.T, db *pgxpool.Pool, cartID, methodID int64) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `INSERT INTO cart_shipping_method (cart_id, shipping_method_id) VALUES ($1, $2)`, cartID, methodID); err != nil {
		t.Fatal(err)
	}
}

func linesOf(t *testing.T, db *pgxpool.Pool, cartID int64) lineQty {
	t.Helper()
	rows, _ := db.Query(context.Background(), `SELECT sku_id, quantity FROM cart_sku WHERE cart_id = $1`, cartID)
	out := lineQty{}
	var sku int64
	var q int
	_, err := pgx.ForEachRow(rows, []any{&sku, &q}, func() error { out[sku] = q; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func shippingOf(t *testing.T, db *pgxpool.Pool, cartID int64) int64 {
	t.Helper()
	var id int64
	err := db.QueryRow(context.Background(), `SELECT shipping_method_id FROM cart_shipping_method WHERE cart_id = $1`, cartID).Scan(&id)
	if err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return id
}

func inTx(t *testing.T, db *pgxpool.Pool, fn func(pgx.Tx) error) {
	t.Helper()
	if err := pgx.BeginFunc(context.Background(), db, fn); err != nil {
		t.Fatal(err)
	}
}

func TestMergeAnonymousIntoMember(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	tests := []struct {
		name         string
		memberLines  lineQty // nil: the member has no cart
		memberShip   int64
		anonLines    lineQty
		anonShip     int64
		wantLines    lineQty
		wantShip     int64
		sameCartAsAn bool // the anonymous cart itself becomes the member's
	}{
		{name: "member without cart takes the anonymous one", anonLines: lineQty{1: 2}, anonShip: 3,
			wantLines: lineQty{1: 2}, wantShip: 3, sameCartAsAn: true},
		{name: "lines for new SKUs copied, existing kept", memberLines: lineQty{1: 5}, anonLines: lineQty{1: 2, 6: 3},
			wantLines: lineQty{1: 5, 6: 3}},
		{name: "shipping copied when member has none", memberLines: lineQty{7: 1}, anonLines: lineQty{1: 1}, anonShip: 2,
			wantLines: lineQty{7: 1, 1: 1}, wantShip: 2},
		{name: "member shipping kept", memberLines: lineQty{7: 1}, memberShip: 4, anonLines: lineQty{}, anonShip: 2,
			wantLines: lineQty{7: 1}, wantShip: 4},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			member := newMember(t, db, fmt.Sprintf("merge%d", i))
			anon, _, err := cart.FindOrCreate(ctx, db, cart.Owner{})
			if err != nil {
				t.Fatal(err)
			}
			addLines(t, db, anon.ID, tc.anonLines)
			if tc.anonShip != 0 {
				setShipping(t, db, anon.ID, tc.anonShip)
			}
			if tc.memberLines != nil {
				mc, _, err := cart.FindOrCreate(ctx, db, cart.Owner{MemberID: member})
				if err != nil {
					t.Fatal(err)
				}
				addLines(t, db, mc.ID, tc.memberLines)
				if tc.memberShip != 0 {
					setShipping(t, db, mc.ID, tc.memberShip)
				}
			}
			inTx(t, db, func(tx pgx.Tx) error { return cart.MergeAnonymousIntoMember(ctx, tx, anon.AnonymousID, member) })

			got, ok, err := cart.Find(ctx, db, cart.Owner{MemberID: member})
			if err != nil || !ok {
				t.Fatalf("member cart: %v %v", ok, err)
			}
			if tc.sameCartAsAn != (got.ID == anon.ID) {
				t.Errorf("member cart id %d, anonymous cart id %d", got.ID, anon.ID)
			}
			if got.AnonymousID != "" {
				t.Errorf("member cart keeps anonymous id %q", got.AnonymousID)
			}
			if _, ok, _ := cart.Find(ctx, db, cart.Owner{AnonymousID: anon.AnonymousID}); ok {
				t.Error("anonymous cart still found by its id")
			}
			if l := linesOf(t, db, got.ID); fmt.Sprint(l) != fmt.Sprint(tc.wantLines) {
				t.Errorf("lines %v, want %v", l, tc.wantLines)
			}
			if s := shippingOf(t, db, got.ID); s != tc.wantShip {
				t.Errorf("shipping %d, want %d", s, tc.wantShip)
			}
			var carts int
			_ = db.QueryRow(ctx, `SELECT count(*) FROM cart WHERE member_id = $1 OR id = $2`, member, anon.ID).Scan(&carts)
			if carts != 1 {
				t.Errorf("%d carts left, want 1", carts)
			}
		})
	}

	t.Run("no anonymous cart is a no-op", func(t *testing.T) {
		member := newMember(t, db, "mergenone")
		inTx(t, db, func(tx pgx.Tx) error { return cart.MergeAnonymousIntoMember(ctx, tx, "doesnotexist00000000", member) })
		if _, ok, _ := cart.Find(ctx, db, cart.Owner{MemberID: member}); ok {
			t.Error("a cart appeared")
		}
	})
	t.Run("adopt on account creation", func(t *testing.T) {
		member := newMember(t, db, "adopter")
		anon, _, _ := cart.FindOrCreate(ctx, db, cart.Owner{})
		addLines(t, db, anon.ID, lineQty{6: 4})
		inTx(t, db, func(tx pgx.Tx) error { return cart.AdoptAnonymous(ctx, tx, anon.AnonymousID, member) })
		got, ok, _ := cart.Find(ctx, db, cart.Owner{MemberID: member})
		if !ok || got.ID != anon.ID {
			t.Fatalf("member cart %+v, want the anonymous cart %d", got, anon.ID)
		}
	})
}

// TestOneCartPerMember races first adds by one member: one cart results.
func TestOneCartPerMember(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	member := newMember(t, db, "racer1")
	var wg, ready sync.WaitGroup
	start := make(chan struct{})
	ids := make([]int64, 8)
	created := make([]bool, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start // every adder starts together
			c, made, err := cart.FindOrCreate(context.Background(), db, cart.Owner{MemberID: member})
			ids[i], created[i], errs[i] = c.ID, made, err
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	makers := 0
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] == 0 || ids[i] != ids[0] {
			t.Errorf("cart ids differ: %v", ids)
		}
		if created[i] {
			makers++
		}
	}
	if makers != 1 {
		t.Errorf("%d adders report creating the cart, want 1", makers)
	}
}

func TestLoadContents(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	c, _, err := cart.FindOrCreate(ctx, db, cart.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	addLines(t, db, c.ID, lineQty{7: 2, 1: 1})
	setShipping(t, db, c.ID, 2)
	got, err := cart.Load(ctx, db, c)
	if err != nil {
		t.Fatal(err)
	}
	// SKU 7's later price (14.99) is current and it falls back to its product's image.
	var sku7 cart.Line
	for _, l := range got.Lines {
		if l.SKUID == 7 {
			sku7 = l
		}
	}
	if sku7.Price.StringFixed(2) != "14.99" || sku7.ImageURL != "/img/product/rubber_bands_2.jpg" || sku7.ProductIdentifier != "v26ujdy3N1" {
		t.Errorf("sku 7 line %+v", sku7)
	}
	if s := got.Totals.CartTotal.Value.StringFixed(2); s != "43.04" {
		t.Errorf("cart total %s, want 43.04 (2×14.99 + 3.50 + 9.56)", s)
	}
}

func TestSubtract(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	tests := []struct {
		name      string
		cart      lineQty
		codes     bool // WELCOME10 on the cart
		paid      lineQty
		paidCodes []int64
		want      lineQty // nil: the cart is deleted
		wantCodes int
	}{
		{name: "exactly what was paid: cart deleted", cart: lineQty{1: 2}, codes: true, paid: lineQty{1: 2}, paidCodes: []int64{1}},
		{name: "a later SKU stays", cart: lineQty{1: 2, 6: 1}, codes: true, paid: lineQty{1: 2}, paidCodes: []int64{1}, want: lineQty{6: 1}},
		{name: "more of a SKU than paid: the rest stays", cart: lineQty{1: 5}, paid: lineQty{1: 2}, want: lineQty{1: 3}},
		{name: "fewer than paid: line removed", cart: lineQty{1: 1, 7: 1}, paid: lineQty{1: 3}, want: lineQty{7: 1}},
		{name: "a paid SKU removed since", cart: lineQty{6: 1}, paid: lineQty{1: 1}, want: lineQty{6: 1}},
		{name: "codes not in the checkout stay", cart: lineQty{1: 1, 6: 1}, codes: true, paid: lineQty{1: 1}, want: lineQty{6: 1}, wantCodes: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := cart.FindOrCreate(ctx, db, cart.Owner{})
			if err != nil {
				t.Fatal(err)
			}
			addLines(t, db, c.ID, tc.cart)
			setShipping(t, db, c.ID, 2)
			if tc.codes {
				if _, err := db.Exec(ctx, `INSERT INTO cart_discount (cart_id, discount_code_id) VALUES ($1, 1)`, c.ID); err != nil {
					t.Fatal(err)
				}
			}
			var paid []cart.Line
			for sku, q := range tc.paid {
				paid = append(paid, cart.Line{SKUID: sku, Quantity: q})
			}
			var deleted bool
			inTx(t, db, func(tx pgx.Tx) error {
				deleted, err = cart.Subtract(ctx, tx, c.ID, paid, tc.paidCodes)
				return err
			})
			if deleted != (tc.want == nil) {
				t.Errorf("deleted = %v, want %v", deleted, tc.want == nil)
			}
			var carts int
			_ = db.QueryRow(ctx, `SELECT count(*) FROM cart WHERE id = $1`, c.ID).Scan(&carts)
			if want := min(len(tc.want), 1); carts != want {
				t.Fatalf("%d carts, want %d", carts, want)
			}
			if tc.want == nil {
				return
			}
			if l := linesOf(t, db, c.ID); fmt.Sprint(l) != fmt.Sprint(tc.want) {
				t.Errorf("lines %v, want %v", l, tc.want)
			}
			if s := shippingOf(t, db, c.ID); s != 2 {
				t.Errorf("shipping method %d, want 2 (kept)", s)
			}
			var codes int
			_ = db.QueryRow(ctx, `SELECT count(*) FROM cart_discount WHERE cart_id = $1`, c.ID).Scan(&codes)
			if codes != tc.wantCodes {
				t.Errorf("%d discount codes, want %d", codes, tc.wantCodes)
			}
		})
	}
}

func TestPricedLines(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	in := []cart.Line{
		{SKUID: 7, Quantity: 2, Price: decimal.RequireFromString("10.99")},
		{SKUID: 1, Quantity: 1, Price: decimal.RequireFromString("3.50")},
	}
	got, err := cart.PricedLines(ctx, db, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].SKUID != 7 || got[1].SKUID != 1 {
		t.Fatalf("lines %+v, want SKUs 7 and 1 in that order", got)
	}
	// The given price, not SKU 7's current 14.99; the product's image.
	if got[0].Price.StringFixed(2) != "10.99" || got[0].Quantity != 2 || got[0].ImageURL != "/img/product/rubber_bands_2.jpg" ||
		got[0].ProductIdentifier != "v26ujdy3N1" || !got[0].IsProduct() || got[0].Subtotal().StringFixed(2) != "21.98" {
		t.Errorf("sku 7 line %+v", got[0])
	}
	if _, err := cart.PricedLines(ctx, db, []cart.Line{{SKUID: 999, Quantity: 1}}); err == nil {
		t.Error("a missing SKU gave no error")
	}
	if got, err := cart.PricedLines(ctx, db, nil); err != nil || len(got) != 0 {
		t.Errorf("no lines: %v %v", got, err)
	}
}

// TestEdits: the cart endpoints' changes, each whole or not at all.
func TestEdits(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	c, _, err := cart.FindOrCreate(ctx, db, cart.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := cart.Add(ctx, db, c.ID, 1, 2); err != nil || n != 1 {
		t.Fatalf("add: %d lines, %v", n, err)
	}
	if n, err := cart.Add(ctx, db, c.ID, 1, 1<<31-1); err != nil || n != 1 {
		t.Fatalf("add again: %d lines, %v", n, err)
	}
	if n, err := cart.Add(ctx, db, c.ID, 6, 1); err != nil || n != 2 {
		t.Fatalf("add another SKU: %d lines, %v", n, err)
	}
	if got := linesOf(t, db, c.ID); got[1] != 1<<31-1 || got[6] != 1 {
		t.Errorf("lines %v: a line is capped at the largest quantity", got)
	}
	line, ok, err := cart.LineOf(ctx, db, c.ID, 6)
	if err != nil || !ok {
		t.Fatalf("line of sku 6: %v %v", ok, err)
	}
	if _, ok, _ := cart.LineOf(ctx, db, c.ID, 7); ok {
		t.Error("a line of a SKU not in the cart")
	}
	if err := cart.SetQuantity(ctx, db, line, 0); err != nil || linesOf(t, db, c.ID)[6] != 0 {
		t.Errorf("set quantity 0: %v %v (the line stays)", err, linesOf(t, db, c.ID))
	}

	if ok, err := cart.SelectShipping(ctx, db, c.ID, "NoSuchMethod"); err != nil || ok || shippingOf(t, db, c.ID) != 0 {
		t.Errorf("unknown method: %v %v", ok, err)
	}
	if err := cart.SelectShippingIfNone(ctx, db, c.ID, "USPSPriorityMail2Day"); err != nil || shippingOf(t, db, c.ID) != 1 {
		t.Errorf("default with none chosen: %v, method %d want 1", err, shippingOf(t, db, c.ID))
	}
	if ok, err := cart.SelectShipping(ctx, db, c.ID, "USPSRetailGround"); err != nil || !ok || shippingOf(t, db, c.ID) != 2 {
		t.Errorf("select method: %v %v", ok, err)
	}
	ground := shippingOf(t, db, c.ID)
	if err := cart.SelectShippingIfNone(ctx, db, c.ID, "USPSPriorityMail2Day"); err != nil || shippingOf(t, db, c.ID) != ground {
		t.Errorf("default over a chosen method: %v, method %d want %d", err, shippingOf(t, db, c.ID), ground)
	}
	// Removing a SKU that is not in the cart changes nothing; removing one
	// that is also clears the shipping method.
	if ok, err := cart.RemoveSKU(ctx, db, c.ID, 7); err != nil || ok || shippingOf(t, db, c.ID) != ground {
		t.Errorf("remove a missing SKU: %v %v, method %d", ok, err, shippingOf(t, db, c.ID))
	}
	if ok, err := cart.RemoveSKU(ctx, db, c.ID, 6); err != nil || !ok || shippingOf(t, db, c.ID) != 0 || len(linesOf(t, db, c.ID)) != 1 {
		t.Errorf("remove: %v %v, method %d, lines %v", ok, err, shippingOf(t, db, c.ID), linesOf(t, db, c.ID))
	}

	// The seeded code is valid for a year from when the database was
	// migrated; a test database may be cloned from a template migrated long
	// before, so the window is set from now here.
	now := time.Now()
	if _, err := db.Exec(ctx, `UPDATE discount_code SET start_date_time = $1::timestamptz, end_date_time = $1::timestamptz + interval '365 days' WHERE code = 'WELCOME10'`, now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		code string
		at   time.Time
		want error
	}{
		{"unknown", "NOPE", now, cart.ErrCodeNotFound},
		{"not yet active", "WELCOME10", now.Add(-time.Hour), cart.ErrCodeNotActive},
		{"expired", "WELCOME10", now.Add(400 * 24 * time.Hour), cart.ErrCodeNotActive},
		{"applied", "WELCOME10", now, nil},
		{"again", "WELCOME10", now, cart.ErrCodeAlreadyApplied},
	} {
		if err := cart.ApplyDiscount(ctx, db, c.ID, tc.code, tc.at); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	ds, _ := cart.Discounts(ctx, db, c.ID)
	if len(ds) != 1 || ds[0].Code != "WELCOME10" {
		t.Fatalf("discounts %+v", ds)
	}
	if ok, err := cart.RemoveDiscount(ctx, db, c.ID, ds[0].CodeID); err != nil || !ok {
		t.Errorf("remove code: %v %v", ok, err)
	}
	if ok, err := cart.RemoveDiscount(ctx, db, c.ID, ds[0].CodeID); err != nil || ok {
		t.Errorf("remove code twice: %v %v", ok, err)
	}
	ms, err := cart.ActiveShippingMethods(ctx, db)
	if err != nil || len(ms) == 0 {
		t.Fatalf("active methods: %v %v", ms, err)
	}
	for i := 1; i < len(ms); i++ {
		if !ms[i].Active || ms[i].Cost.GreaterThan(ms[i-1].Cost) {
			t.Errorf("active methods not dearest first: %+v", ms)
		}
	}
}
