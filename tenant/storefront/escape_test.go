package storefront_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestProductTitleEscaped: a product title holding markup, stored as given
// (as the back office stores it: the same product row), reads as text on
// the product list and the product page, never as markup.
func TestProductTitleEscaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const title = `Stapler <script>alert(1)</script>`
	_, err := e.dbA.Exec(context.Background(), `
WITH p AS (INSERT INTO product (title, title_url, identifier, headline) VALUES ($1, 'Stapler', 'StaplerX01', 'Staples') RETURNING id),
     s AS (INSERT INTO sku (sku_type_id, sku_inventory_id, color) VALUES (1, 1, 'Red') RETURNING id),
     l AS (INSERT INTO product_sku (product_id, sku_id) SELECT p.id, s.id FROM p, s)
INSERT INTO sku_price (sku_id, price) SELECT id, 12.50 FROM s`, title)
	if err != nil {
		t.Fatal(err)
	}
	a := e.client(t, hostA)
	for _, path := range []string{"/products", "/product?name=Stapler&id=StaplerX01"} {
		deadline := time.Now().Add(5 * time.Second) // the catalogue cache rechecks its version
		for {
			p := a.get(path)
			if strings.Contains(p.body, "<script>alert(1)</script>") {
				t.Fatalf("GET %s shows the title as markup", path)
			}
			if strings.Contains(p.body, "Stapler &lt;script&gt;alert(1)&lt;/script&gt;") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s = %d lacks the escaped title: %s", path, p.status, snippet(mainOf(p.body)))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
