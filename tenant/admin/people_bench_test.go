package admin_test

import (
	"strings"
	"testing"
)

// BenchmarkOrdersExport times a 10,000-row orders export over HTTP, from
// the request to the last byte read (seeded with payments and statuses,
// so the export's joins and subqueries run for every row):
//
//	go test -run '^$' -bench BenchmarkOrdersExport -benchtime 5x ./tenant/admin/
func BenchmarkOrdersExport(b *testing.B) {
	f := newFixture(b, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	const rows = 10000
	f.exec(f.a, `WITH p AS (
  INSERT INTO order_payment (email) SELECT 'buyer' || g || '@example.com' FROM generate_series(1, $1) g RETURNING id
), o AS (
  INSERT INTO customer_order (identifier, payment_id, item_subtotal, shipping_amt, sales_tax_amt, order_total)
  SELECT 'ORD-' || id, id, 20.00, 5.00, 1.25, 26.25 FROM p RETURNING id
)
INSERT INTO order_status_history (order_id, order_status_id) SELECT o.id, (SELECT min(id) FROM order_status) FROM o`, rows)
	b.ReportAllocs()
	for b.Loop() {
		owner.do("GET", api+"/exports/orders", nil)
		if owner.last.StatusCode != 200 {
			b.Fatalf("export = %d", owner.last.StatusCode)
		}
		if n := strings.Count(owner.raw, "\n"); n != rows+1 {
			b.Fatalf("export has %d lines, want %d", n, rows+1)
		}
	}
	b.ReportMetric(float64(rows), "rows/op")
}
