package signup

import (
	"context"
	"strings"
	"testing"
)

// TestPricingFromRegistry: the pricing page shows the listed plans of the
// registry in their order, with their limits (NULL: unlimited), and follows
// a change to a plan at once; an unlisted plan is not shown.
func TestPricingFromRegistry(t *testing.T) {
	h := newHarness(t, nil)
	code, page := h.get("/pricing")
	if code != 200 {
		t.Fatalf("pricing: %d\n%s", code, page)
	}
	free, pro, business := strings.Index(page, "<h2>Free</h2>"), strings.Index(page, "<h2>Pro</h2>"), strings.Index(page, "<h2>Business</h2>")
	if free < 0 || pro < free || business < pro {
		t.Fatalf("the plans are not Free, Pro, Business in order:\n%s", page)
	}
	for _, want := range []string{"$29 / month", "$99 / month", "10 products", "1 staff account", "Unlimited products", "100 MB of storage", "5 GB of storage", "Start free"} {
		if !strings.Contains(page, want) {
			t.Errorf("pricing lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "Standard") {
		t.Errorf("the unlisted plan is shown:\n%s", page)
	}

	_, err := h.env.Platform.Exec(context.Background(), `UPDATE plans SET display_name = 'Growth', monthly_price_cents = 4950,
products = NULL, staff_seats = 12, sort_order = 0 WHERE name = 'pro'`)
	if err != nil {
		t.Fatal(err)
	}
	_, page = h.get("/pricing")
	growth, free := strings.Index(page, "<h2>Growth</h2>"), strings.Index(page, "<h2>Free</h2>")
	if growth < 0 || free < growth || strings.Contains(page, "<h2>Pro</h2>") {
		t.Fatalf("the renamed plan is not first:\n%s", page)
	}
	card := page[growth:free]
	for _, want := range []string{"$49.50 / month", "Unlimited products", "12 staff accounts", "5,000 orders a month"} {
		if !strings.Contains(card, want) {
			t.Errorf("the changed plan lacks %q:\n%s", want, card)
		}
	}
}

func TestPlanText(t *testing.T) {
	for cents, want := range map[int64]string{0: "$0", 2900: "$29 / month", 950: "$9.50 / month", 123456700: "$1,234,567 / month"} {
		if got := price(cents); got != want {
			t.Errorf("price(%d) = %q, want %q", cents, got, want)
		}
	}
	for n, want := range map[int64]string{104857600: "100 MB", 5368709120: "5 GB", 1610612736: "1.5 GB", 512: "512 bytes"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", n, got, want)
		}
	}
}
