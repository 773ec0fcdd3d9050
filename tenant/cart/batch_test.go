package cart_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/cart"
)

// TestQueueReadMatchesLoad: a batch naming a cart by its owner reads what
// Find and Load read of it, for a member's cart (by member and by account)
// and an anonymous one, with and without the totals' parts; a name with no
// cart behind it reads as not found with the totals of nothing.
func TestQueueReadMatchesLoad(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Tenant)
	ctx := context.Background()
	memberID := newMember(t, db, "batchreader")
	var accountID int64
	if err := db.QueryRow(ctx, `SELECT account_id FROM member WHERE id = $1`, memberID).Scan(&accountID); err != nil {
		t.Fatal(err)
	}
	mc, _, err := cart.FindOrCreate(ctx, db, cart.Owner{MemberID: memberID})
	if err != nil {
		t.Fatal(err)
	}
	addLines(t, db, mc.ID, lineQty{1: 2, 4: 1, 5: 3})
	setShipping(t, db, mc.ID, 2)
	if err := cart.ApplyDiscount(ctx, db, mc.ID, "WELCOME10", time.Now()); err != nil {
		t.Fatal(err)
	}
	ac, _, err := cart.FindOrCreate(ctx, db, cart.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	addLines(t, db, ac.ID, lineQty{7: 1})

	read := func(of cart.Of, withTotals bool) cart.Read {
		t.Helper()
		var r cart.Read
		b := &pgx.Batch{}
		cart.QueueRead(b, of, withTotals, &r)
		if err := db.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		of   cart.Of
		c    cart.Cart
	}{
		{"member", cart.OfMember(memberID), mc},
		{"account", cart.OfAccount(accountID), mc},
		{"anonymous", cart.OfAnonymous(ac.AnonymousID), ac},
	} {
		want, err := cart.Load(ctx, db, tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := read(tc.of, true); !got.Found || !reflect.DeepEqual(got.Contents, want) {
			t.Errorf("%s: read %+v\nwant %+v", tc.name, got, want)
		}
		got := read(tc.of, false)
		if !got.Found || got.Contents.Cart != tc.c || !reflect.DeepEqual(got.Contents.Lines, want.Lines) || got.Contents.Discounts != nil {
			t.Errorf("%s without totals: read %+v", tc.name, got)
		}
	}
	none := cart.Contents{Totals: cart.ComputeTotals(nil, nil, nil)}
	for name, of := range map[string]cart.Of{"no such member": cart.OfMember(memberID + 100), "no such id": cart.OfAnonymous("nope")} {
		if got := read(of, true); got.Found || !reflect.DeepEqual(got.Contents, none) {
			t.Errorf("%s: read %+v", name, got)
		}
	}

	// The member of an active account with its password hash; an inactive
	// account has none.
	m, err := cart.MemberOf(ctx, db, accountID)
	if err != nil || m != (cart.Member{ID: memberID, PasswordHash: "x", Found: true}) {
		t.Errorf("member of account: %+v %v", m, err)
	}
	if _, err := db.Exec(ctx, `UPDATE account SET is_active = false WHERE id = $1`, accountID); err != nil {
		t.Fatal(err)
	}
	if m, err := cart.MemberOf(ctx, db, accountID); err != nil || m.Found {
		t.Errorf("member of inactive account: %+v %v", m, err)
	}
	if got := read(cart.OfAccount(accountID), false); got.Found {
		t.Errorf("cart of inactive account found: %+v", got)
	}
}
