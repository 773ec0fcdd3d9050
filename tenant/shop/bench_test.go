package shop_test

import (
	"net/http"
	"testing"
)

func benchGet(b *testing.B, path string, withCart bool) {
	e := newEnv(b, envOptions{})
	br := e.browser(b, hostA)
	if withCart {
		br.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "2"))
		br.post("/order/cart-update-shipping-method", form("shipping_method_identifier", "USPSRetailGround"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if a := br.do(http.MethodGet, path, nil, nil); a.status != 200 {
				b.Errorf("status %d", a.status)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkProducts measures GET /order/products over HTTP (the catalogue
// and the load-balancer health check).
func BenchmarkProducts(b *testing.B) { benchGet(b, "/order/products", false) }

// BenchmarkCartTotals measures GET /order/cart-totals for an anonymous cart
// with a line and a shipping method.
func BenchmarkCartTotals(b *testing.B) { benchGet(b, "/order/cart-totals", true) }
