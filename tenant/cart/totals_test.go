package cart

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func line(price string, qty int) Line {
	return Line{Price: d(price), Quantity: qty, SKUType: "product"}
}

func TestComputeTotals(t *testing.T) {
	t.Parallel()
	ground := &ShippingMethod{Identifier: "USPSRetailGround", Cost: d("9.56")}
	priority := &ShippingMethod{Identifier: "USPSPriorityMail2Day", Cost: d("13.65")}
	pct := func(amount, min string, comb bool) Discount {
		return Discount{Amount: d(amount), OrderMinimum: d(min), Combinable: comb, AppliesTo: "item_total", Action: "percent-off"}
	}
	dollar := func(amount, min string) Discount {
		return Discount{Amount: d(amount), OrderMinimum: d(min), AppliesTo: "item_total", Action: "dollar-amt-off"}
	}
	freeShip := func(min string, comb bool) Discount {
		return Discount{OrderMinimum: d(min), Combinable: comb, AppliesTo: "shipping", Action: "free-usps-ground-shipping"}
	}
	tests := []struct {
		name      string
		lines     []Line
		ship      *ShippingMethod
		discounts []Discount
		want      string
		applied   []bool
	}{
		{"no cart lines", nil, nil, nil, `{"item_subtotal":0,"shipping_subtotal":0,"cart_total":0}`, nil},
		{"lines, no method", []Line{line("3.50", 2)}, nil, nil, `{"item_subtotal":"7.00","shipping_subtotal":0,"cart_total":"7.00"}`, nil},
		{"lines and method", []Line{line("3.50", 2)}, ground, nil, `{"item_subtotal":"7.00","shipping_subtotal":"9.56","cart_total":"16.56"}`, nil},
		{"all quantities zero", []Line{line("3.50", 0)}, nil, nil, `{"item_subtotal":"0.00","shipping_subtotal":0,"cart_total":"0.00"}`, nil},
		{"method only", nil, ground, nil, `{"item_subtotal":0,"shipping_subtotal":"9.56","cart_total":"9.56"}`, nil},
		{"several lines", []Line{line("3.50", 1), line("14.99", 3), line("3.99", 2)}, priority, nil,
			`{"item_subtotal":"56.45","shipping_subtotal":"13.65","cart_total":"70.10"}`, nil},
		{"exact decimals (float would drift)", []Line{line("0.10", 3), line("0.20", 1)}, nil, nil,
			`{"item_subtotal":"0.50","shipping_subtotal":0,"cart_total":"0.50"}`, nil},
		{"ten percent", []Line{line("3.50", 2)}, ground, []Discount{pct("10", "0", false)},
			`{"item_subtotal":"7.00","item_discount":"0.70","shipping_subtotal":"9.56","shipping_discount":0,"cart_total":"15.86"}`, []bool{true}},
		{"percent rounds half up", []Line{line("3.99", 1)}, nil, []Discount{pct("10", "0", false)},
			`{"item_subtotal":"3.99","item_discount":"0.40","shipping_subtotal":0,"shipping_discount":0,"cart_total":"3.59"}`, []bool{true}},
		{"minimum not met", []Line{line("3.50", 2)}, ground, []Discount{pct("10", "50", false)},
			`{"item_subtotal":"7.00","item_discount":0,"shipping_subtotal":"9.56","shipping_discount":0,"cart_total":"16.56"}`, []bool{false}},
		{"only first non-combinable counts", []Line{line("10.00", 1)}, nil, []Discount{dollar("2", "0"), pct("50", "0", false)},
			`{"item_subtotal":"10.00","item_discount":"2.00","shipping_subtotal":0,"shipping_discount":0,"cart_total":"8.00"}`, []bool{true, false}},
		{"dollar off capped at subtotal", []Line{line("1.00", 1)}, ground, []Discount{dollar("5", "0")},
			`{"item_subtotal":"1.00","item_discount":"1.00","shipping_subtotal":"9.56","shipping_discount":0,"cart_total":"9.56"}`, []bool{true}},
		{"free ground shipping", []Line{line("3.50", 2)}, ground, []Discount{freeShip("0", true)},
			`{"item_subtotal":"7.00","item_discount":0,"shipping_subtotal":"9.56","shipping_discount":"9.56","cart_total":"7.00"}`, []bool{true}},
		{"free shipping only for ground", []Line{line("3.50", 2)}, priority, []Discount{freeShip("0", true)},
			`{"item_subtotal":"7.00","item_discount":0,"shipping_subtotal":"13.65","shipping_discount":0,"cart_total":"20.65"}`, []bool{true}},
		{"combinable with non-combinable", []Line{line("20.00", 1)}, ground, []Discount{freeShip("10", true), pct("10", "0", false)},
			`{"item_subtotal":"20.00","item_discount":"2.00","shipping_subtotal":"9.56","shipping_discount":"9.56","cart_total":"18.00"}`, []bool{true, true}},
		{"codes on an empty cart", nil, nil, []Discount{pct("10", "0", false)},
			`{"item_subtotal":0,"item_discount":"0.00","shipping_subtotal":0,"shipping_discount":0,"cart_total":0}`, []bool{true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ComputeTotals(tc.lines, tc.ship, tc.discounts)
			raw, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != tc.want {
				t.Errorf("totals\n got %s\nwant %s", raw, tc.want)
			}
			for i, want := range tc.applied {
				if tc.discounts[i].Applied != want {
					t.Errorf("discount %d applied = %v, want %v", i, tc.discounts[i].Applied, want)
				}
			}
		})
	}
}

func TestAnonymousCookie(t *testing.T) {
	t.Parallel()
	key := []byte("tenant-a-session-key")
	other := []byte("tenant-b-session-key")
	id, err := NewAnonymousID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 20 {
		t.Fatalf("id %q: want 20 chars", id)
	}
	signed := SignAnonymousID(key, id, time.Unix(1700000000, 0))
	// A different first character, whatever the random id starts with.
	tampered := "X" + signed[1:]
	if signed[0] == 'X' {
		tampered = "Y" + signed[1:]
	}
	tests := []struct {
		name  string
		key   []byte
		value string
		want  string
		ok    bool
	}{
		{"own signature", key, signed, id, true},
		{"another tenant's key", other, signed, "", false},
		{"tampered id", key, tampered, "", false},
		{"no signature", key, id, "", false},
		{"empty", key, "", "", false},
		{"only colons", key, "::", "", false},
		{"empty key", nil, signed, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := VerifyAnonymousID(tc.key, tc.value)
			if got != tc.want || ok != tc.ok {
				t.Errorf("VerifyAnonymousID(%q) = %q, %v; want %q, %v", tc.value, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestDjangoSignedCookie pins the format to a value computed independently
// with Django's algorithm (salted_hmac over "an_ctanonymouscartcookieisthis"
// + "signer", secret "django.http.cookies" + SECRET_KEY, base62 time).
func TestDjangoSignedCookie(t *testing.T) {
	t.Parallel()
	const want = "abcdefghijABCDEFGHIJ:1r31eq:0v1hAgFQlihSpZeyt_6h-Ryb5w50eQa3xqjZ9CNcUqo"
	if got := SignAnonymousID([]byte("secret"), "abcdefghijABCDEFGHIJ", time.Unix(1700000000, 0)); got != want {
		t.Errorf("signed value\n got %s\nwant %s", got, want)
	}
}
