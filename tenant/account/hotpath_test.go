package account_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/tenant/cart"
)

var update = flag.Bool("update", false, "rewrite the golden answers under testdata/")

// TestLoggedInOneRoundTrip reads GET /user/logged-in for a signed-in member
// with a cart of three lines, an anonymous visitor with a cart of two and
// one without a cart: each answer is the one recorded in
// testdata/logged-in.golden, byte for byte, and costs a warm connection one
// round trip to the tenant database.
func TestLoggedInOneRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	db := f.dbs[f.a.ID]
	member := f.signUpAs(t, hostA, "Hot", "Path", "hot_path", "hot_path@example.com")
	if _, err := db.Exec(t.Context(), `
WITH c AS (INSERT INTO cart (member_id) SELECT m.id FROM member m JOIN account a ON a.id = m.account_id
           WHERE a.username = 'hot_path' RETURNING id)
INSERT INTO cart_sku (cart_id, sku_id, quantity) SELECT c.id, s, 1 FROM c, unnest(ARRAY[1, 4, 5]) s`); err != nil {
		t.Fatal(err)
	}
	anon := f.browser(t, hostA)
	if _, err := db.Exec(t.Context(), `
WITH c AS (INSERT INTO cart (anonymous_cart_id) VALUES ('hotPathAnonymousCart') RETURNING id)
INSERT INTO cart_sku (cart_id, sku_id, quantity) SELECT c.id, s, 2 FROM c, unnest(ARRAY[2, 7]) s`); err != nil {
		t.Fatal(err)
	}
	anon.cookies[cart.CookieName] = cart.SignAnonymousID([]byte(keyA), "hotPathAnonymousCart", time.Now())
	nobody := f.browser(t, hostA)

	var out strings.Builder
	for _, who := range []struct {
		name string
		b    *browser
	}{{"member", member}, {"anonymous with a cart", anon}, {"anonymous", nobody}} {
		who.b.call("GET", "/user/logged-in", nil) // prepares the statements on the connection
		f.trips.Reset()
		who.b.call("GET", "/user/logged-in", nil)
		if n := f.trips.Count(); n != 1 {
			t.Errorf("%s: %d round trips, want 1", who.name, n)
		}
		out.WriteString(who.name + "\n" + who.b.body + "\n")
	}
	path := filepath.Join("testdata", "logged-in.golden")
	if *update {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("answers differ from %s\n got:\n%s\nwant:\n%s", path, out.String(), want)
	}
}
