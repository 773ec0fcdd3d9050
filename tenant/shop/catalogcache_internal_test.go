package shop

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/directory"
)

// TestCatalogCacheRules checks the cache's bookkeeping without a database:
// the fresh window, versions moving on (and a stale read not moving them
// back), tenants and generations kept apart, and the byte bound with
// least-recently-used eviction.
func TestCatalogCacheRules(t *testing.T) {
	const fresh = time.Second
	cc := newCatalogCache(1000, fresh, nil, slog.New(slog.DiscardHandler))
	t0 := time.Unix(1_000_000, 0)
	a := &directory.Tenant{ID: 1, Generation: 7}
	b := &directory.Tenant{ID: 2, Generation: 7}
	body := func(s string) []byte { return bytes.Repeat([]byte(s), 100) }

	if _, ok := cc.get(a, "products", t0); ok {
		t.Fatal("an empty cache answered")
	}
	if _, ok := cc.confirm(a, "products", 5, t0); ok {
		t.Fatal("confirm of an unknown answer returned one")
	}
	cc.put(a, "products", 5, body("a"))
	if got, ok := cc.get(a, "products", t0.Add(fresh)); !ok || !bytes.Equal(got, body("a")) {
		t.Fatalf("within the fresh window: %q %v", got, ok)
	}
	if _, ok := cc.get(a, "products", t0.Add(fresh+time.Millisecond)); ok {
		t.Fatal("served past the fresh window without a version check")
	}
	if _, ok := cc.get(b, "products", t0); ok {
		t.Fatal("another tenant got tenant a's answer")
	}
	if _, ok := cc.get(&directory.Tenant{ID: 1, Generation: 8}, "products", t0); ok {
		t.Fatal("a new generation of the tenant got the old one's answer")
	}

	// The same version read later confirms the answer for another window.
	t1 := t0.Add(5 * time.Second)
	if got, ok := cc.confirm(a, "products", 5, t1); !ok || !bytes.Equal(got, body("a")) {
		t.Fatalf("confirm at the same version: %q %v", got, ok)
	}
	if _, ok := cc.get(a, "products", t1.Add(fresh/2)); !ok {
		t.Fatal("not served after its version was confirmed")
	}
	// A newer version drops every answer of the tenant; building at an
	// older one (a read that raced) stores nothing.
	cc.put(a, "product/x", 5, body("x"))
	if _, ok := cc.confirm(a, "products", 6, t1); ok {
		t.Fatal("an answer survived a newer catalogue version")
	}
	if _, ok := cc.get(a, "product/x", t1); ok {
		t.Fatal("another answer of the tenant survived a newer catalogue version")
	}
	cc.put(a, "products", 5, body("o"))
	if _, ok := cc.confirm(a, "products", 5, t1); ok {
		t.Fatal("an answer built at an older version was stored")
	}
	if cc.size != 0 {
		t.Fatalf("size %d after every answer was dropped, want 0", cc.size)
	}

	// 1000 bytes hold ten 100-byte answers; the least recently used goes.
	// (An answer over a quarter of the bound is never stored.)
	cc.put(a, "big", 6, bytes.Repeat([]byte("b"), 251))
	if _, ok := cc.get(a, "big", t1); ok {
		t.Fatal("an answer over a quarter of the bound was stored")
	}
	cc.confirm(b, "k0", 1, t1)
	for i := range 10 {
		cc.put(b, "k"+string(rune('0'+i)), 1, body("b"))
	}
	cc.get(b, "k0", t1) // k0 is now the most recent; k1 the least
	cc.put(a, "products", 6, body("a"))
	if cc.size != 1000 || cc.lru.Len() != 10 {
		t.Fatalf("size %d with %d answers, want 1000 with 10", cc.size, cc.lru.Len())
	}
	if _, ok := cc.get(b, "k1", t1); ok {
		t.Error("the least recently used answer was kept")
	}
	for _, k := range []string{"k0", "k2", "k9"} {
		if _, ok := cc.get(b, k, t1); !ok {
			t.Errorf("%s was evicted, want only k1", k)
		}
	}
	if _, ok := cc.get(a, "products", t1); !ok {
		t.Error("the newest answer was evicted")
	}
}
