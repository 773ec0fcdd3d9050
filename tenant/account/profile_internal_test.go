package account

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/tenant/orders"
)

// TestOrderHistoryJSON pins U5's orders_data byte for byte: keys "1", "2",
// … in history order (past "9" too), upstream's members in upstream's
// order, two-decimal amounts, the contract's timestamps; {} when empty.
func TestOrderHistoryJSON(t *testing.T) {
	t.Parallel()
	if raw, err := json.Marshal(orderHistory(nil)); err != nil || string(raw) != `{}` {
		t.Errorf("no orders: %s, %v", raw, err)
	}
	at := time.Date(2026, 2, 1, 0, 0, 0, 500_000_000, time.UTC)
	var h orderHistory
	var want []string
	for i := range 11 {
		h = append(h, orders.Summary{ID: int64(100 + i), Identifier: fmt.Sprintf("oRdEr%05d", i), OrderDateTime: at.Add(-time.Duration(i) * time.Hour),
			SalesTax: decimal.RequireFromString("1.5"), OrderTotal: decimal.NewFromInt(int64(7 + i))})
		when := "2026-02-01T00:00:00.500Z"
		if i > 0 {
			when = at.Add(-time.Duration(i) * time.Hour).Format("2006-01-02T15:04:05.000Z")
		}
		want = append(want, fmt.Sprintf(`"%d":{"order_id":%d,"identifier":"oRdEr%05d","order_date_time":"%s","sales_tax_amt":"1.50","order_total":"%d.00"}`,
			i+1, 100+i, i, when, 7+i))
	}
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if w := "{" + strings.Join(want, ",") + "}"; string(raw) != w {
		t.Errorf("orders_data\n got %s\nwant %s", raw, w)
	}
	// Whole seconds have no fraction.
	raw, _ = json.Marshal(orderHistory{{ID: 1, Identifier: "x", OrderDateTime: time.Date(2026, 1, 2, 8, 5, 0, 0, time.UTC)}})
	if w := `{"1":{"order_id":1,"identifier":"x","order_date_time":"2026-01-02T08:05:00Z","sales_tax_amt":"0.00","order_total":"0.00"}}`; string(raw) != w {
		t.Errorf("orders_data\n got %s\nwant %s", raw, w)
	}
}
