package shop_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden answers under testdata/")

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("answers differ from %s\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestCartReadsOneRoundTrip reads the cart page's answers for a member's
// cart and an anonymous one (three SKUs, one priced anew after it was
// added, a discount code and a shipping method): each answer is the one
// recorded in testdata/cart-reads.golden, byte for byte (recorded before
// the reads were batched), and costs a warm connection one round trip to
// the tenant database.
func TestCartReadsOneRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if _, err := e.db.Exec(t.Context(), `UPDATE discount_code SET start_date_time = '2026-01-01', end_date_time = '2036-01-01'`); err != nil {
		t.Fatal(err)
	}
	member := e.browser(t, hostA)
	member.login(newMember(t, e.db, "hotpath", "hotpath@example.com"))
	anon := e.browser(t, hostA)
	for _, b := range []*browser{member, anon} {
		for _, l := range [][2]string{{"1", "2"}, {"4", "1"}, {"5", "3"}} {
			if a := b.post("/order/cart-add-product-sku", form("sku_id", l[0], "quantity", l[1])); !strings.Contains(a.raw, `"success"`) {
				t.Fatalf("add: %s", a.raw)
			}
		}
		b.post("/order/cart-apply-discount-code", form("discount_code_id", "WELCOME10"))
		b.post("/order/cart-update-shipping-method", form("shipping_method_identifier", "USPSRetailGround"))
	}
	// A price written after the adds: the answers must carry it.
	if _, err := e.db.Exec(t.Context(), `INSERT INTO sku_price (sku_id, price, created_date_time) VALUES (4, 6.49, now())`); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	for _, who := range []struct {
		name string
		b    *browser
	}{{"member", member}, {"anonymous", anon}} {
		for _, path := range []string{"/order/cart-items", "/order/cart-shipping-methods", "/order/cart-totals", "/order/cart-discount-codes"} {
			who.b.get(path) // prepares the statements on the connection
			e.trips.Reset()
			a := who.b.get(path)
			if n := e.trips.Count(); n != 1 {
				t.Errorf("%s GET %s: %d round trips, want 1", who.name, path, n)
			}
			out.WriteString(who.name + " GET " + path + "\n" + a.raw + "\n")
		}
	}
	golden(t, "cart-reads.golden", out.String())
}

// TestCartReadWhenTheClaimFails: a session whose claim does not hold (its
// check refuses the password hash, or the account was closed) reads the
// anonymous cart of the browser's an_ct cookie, as a visitor signed out,
// at the cost of a second round trip; a claim that holds reads the
// member's cart.
func TestCartReadWhenTheClaimFails(t *testing.T) {
	t.Parallel()
	var refuse atomic.Bool
	e := newEnv(t, envOptions{check: func(hash string) bool { return hash == "x" && !refuse.Load() }})
	b := e.browser(t, hostA)
	account := newMember(t, e.db, "claimed", "claimed@example.com")
	b.login(account)
	b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "2"))
	// An anonymous cart whose cookie the same browser holds.
	other := e.browser(t, hostA)
	other.post("/order/cart-add-product-sku", form("sku_id", "7", "quantity", "1"))
	b.mu.Lock()
	b.cookies["an_ct"] = other.cookie("an_ct")
	b.mu.Unlock()

	for _, step := range []struct {
		name  string
		setup func()
		sku   string
		trips int64
	}{
		{"claim holds", func() {}, `"sku_id":1,`, 1},
		{"password changed", func() { refuse.Store(true) }, `"sku_id":7,`, 2},
		{"account closed", func() {
			refuse.Store(false)
			if _, err := e.db.Exec(t.Context(), `UPDATE account SET is_active = false WHERE id = $1`, account); err != nil {
				t.Fatal(err)
			}
		}, `"sku_id":7,`, 2},
	} {
		step.setup()
		b.get("/order/cart-totals")
		e.trips.Reset()
		a := b.get("/order/cart-items")
		if !strings.Contains(a.raw, step.sku) || strings.Count(a.raw, `"sku_id"`) != 1 {
			t.Errorf("%s: cart-items %s, want the line with %s only", step.name, a.raw, step.sku)
		}
		if n := e.trips.Count(); n != step.trips {
			t.Errorf("%s: %d round trips, want %d", step.name, n, step.trips)
		}
	}
}
