package sites

import "testing"

// The file cache stays within its byte bound, dropping the least recently
// used first, and never keeps one value over an eighth of it.
func TestLRUBound(t *testing.T) {
	t.Parallel()
	c := newLRU[string, []byte](80)
	c.add("a", make([]byte, 10), 10)
	c.add("b", make([]byte, 10), 10)
	c.add("huge", make([]byte, 11), 11) // over 80/8
	if _, ok := c.get("huge"); ok {
		t.Error("a value over an eighth of the bound was kept")
	}
	if _, ok := c.get("a"); !ok { // a is now the most recent
		t.Fatal("a was dropped")
	}
	for _, k := range []string{"c", "d", "e", "f", "g", "h", "i"} {
		c.add(k, make([]byte, 10), 10)
	}
	if c.used > c.max {
		t.Errorf("%d bytes kept, bound %d", c.used, c.max)
	}
	if _, ok := c.get("b"); ok {
		t.Error("b, the least recently used, was kept")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a, used recently, was dropped")
	}
	if len(c.items) != 8 || c.order.Len() != 8 {
		t.Errorf("%d items (%d in order), want 8", len(c.items), c.order.Len())
	}
}

// Fingerprinted names get immutable caching; others do not.
func TestFingerprinted(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"assets/app.3f2a9c1e.js": true, "index-BQ3x8a1z.js": true, "main.abcdef0123456789.css": true,
		"chunk_9f8e7d6c.js": true, "jquery-3.7.1.min.js": false, "bootstrap.bundle.min.js": false,
		"logo2024final.png": false, "report-20240101.pdf": false, "deadbeef.js": false, "app.js": false,
	} {
		if got := fingerprinted(name); got != want {
			t.Errorf("fingerprinted(%q) = %v, want %v", name, got, want)
		}
	}
}
