package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestOrdersListAndStatus: the list's filters, search and cursor; the
// state machine refuses what it does not allow; shipping records the
// carrier and tracking number, is in the history, and mails the customer
// through the outbox (seen in Mailpit).
func TestOrdersListAndStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	db := f.dbs[f.a.ID]
	buyer := strings.ToLower(f.owner[f.a.ID][:8]) + "-buyer@example.com"
	for i := range 5 {
		email := fmt.Sprintf("other%d@example.com", i)
		if i == 3 {
			email = buyer
		}
		seedOrder(t, db, fmt.Sprintf("List%d", i), email, "10.00")
	}
	if _, err := db.Exec(context.Background(), `UPDATE customer_order SET order_date_time = '2026-01-15T12:00:00Z' WHERE identifier = 'List0'`); err != nil {
		t.Fatal(err)
	}
	// Pages of 2, newest first, until the cursor runs out.
	var seen []string
	next := ""
	for range 5 {
		path := api + "/orders?limit=2"
		if next != "" {
			path += "&cursor=" + next
		}
		out := owner.must(200, "GET", path, nil)
		for _, it := range out["items"].([]any) {
			seen = append(seen, it.(map[string]any)["identifier"].(string))
		}
		if out["next_cursor"] == nil {
			break
		}
		next = out["next_cursor"].(string)
	}
	if strings.Join(seen, ",") != "List4,List3,List2,List1,List0" {
		t.Fatalf("pages = %v", seen)
	}
	count := func(q string) int {
		t.Helper()
		return len(owner.must(200, "GET", api+"/orders?"+q, nil)["items"].([]any))
	}
	for q, want := range map[string]int{"email=" + strings.ToUpper(buyer): 1, "identifier=List2": 1, "q=list": 5, "q=other1": 1,
		"q=%25": 0, "status=accepted": 5, "status=shipped": 0, "from=2026-01-15&to=2026-01-15": 1, "to=2026-01-14": 0} {
		if got := count(q); got != want {
			t.Errorf("?%s: %d orders, want %d", q, got, want)
		}
	}
	owner.refused(400, "invalid", "status", "GET", api+"/orders?status=lost", nil)
	owner.refused(400, "invalid", "from", "GET", api+"/orders?from=yesterday", nil)
	owner.refused(404, "not-found", "", "GET", api+"/orders/NoSuch", nil)

	path := api + "/orders/List3"
	d := owner.must(200, "GET", path, nil)
	if d["status"] != "accepted" || d["stripe_amount_total"] != "10" && d["stripe_amount_total"] != "10.00" || d["payment_amount_mismatch"] != false ||
		len(d["lines"].([]any)) != 1 || d["shipping_address"].(map[string]any)["name"] != "John Doe" {
		t.Fatalf("detail = %s", owner.raw)
	}
	owner.refused(409, "status-not-allowed", "status", "POST", path+"/status", map[string]any{"status": "delivered"})
	owner.refused(400, "invalid", "status", "POST", path+"/status", map[string]any{"status": "refunded"})
	owner.refused(400, "required", "tracking_number", "POST", path+"/status", map[string]any{"status": "shipped", "shipping_method": "UPSGround"})
	owner.refused(400, "invalid", "shipping_method", "POST", path+"/status", map[string]any{"status": "shipped", "shipping_method": "Teleport", "tracking_number": "1Z"})
	owner.must(200, "POST", path+"/status", map[string]any{"status": "packing"})
	d = owner.must(200, "POST", path+"/status", map[string]any{"status": "shipped", "shipping_method": "UPSGround", "tracking_number": "1Z999AA10123456784", "notify": true})
	if d["status"] != "shipped" || d["tracking_number"] != "1Z999AA10123456784" || d["carrier"] != "UPS Ground" || len(d["statuses"].([]any)) != 3 {
		t.Fatalf("shipped = %s", owner.raw)
	}
	owner.refused(409, "status-not-allowed", "status", "POST", path+"/status", map[string]any{"status": "packing"})
	owner.refused(409, "status-not-allowed", "status", "POST", path+"/status", map[string]any{"status": "cancelled"})
	msgs := f.deliver(buyer, 1)
	if !strings.Contains(msgs[0].Text, "1Z999AA10123456784") || !strings.Contains(msgs[0].Text, "UPS Ground") || !strings.Contains(msgs[0].Subject, "Shipped") {
		t.Fatalf("mail = %q / %q", msgs[0].Subject, msgs[0].Text)
	}
	owner.must(200, "POST", path+"/status", map[string]any{"status": "delivered"})
	if acts := strings.Join(f.auditActions(f.a), ","); strings.Count(acts, "order.status_changed") != 3 {
		t.Fatalf("audit = %s", acts)
	}
	// A cancelled order is where it ends.
	owner.must(200, "POST", api+"/orders/List1/status", map[string]any{"status": "cancelled"})
	owner.refused(409, "status-not-allowed", "status", "POST", api+"/orders/List1/status", map[string]any{"status": "shipped", "shipping_method": "UPSGround", "tracking_number": "x"})

	fig := owner.must(200, "GET", api+"/dashboard", nil)
	if fig["orders_today"] != float64(4) || fig["revenue_today"] != "40" || len(fig["recent_orders"].([]any)) != 5 || len(fig["low_stock"].([]any)) != 3 {
		t.Fatalf("dashboard = %s", owner.raw)
	}
	_, page := owner.get("/admin/")
	if !strings.Contains(page, `id="orders-today">4<`) || !strings.Contains(page, "$40.00") {
		t.Fatalf("dashboard page lacks the figures:\n%s", page)
	}
}
