package directory_test

import (
	"testing"

	"github.com/startupwebapp/platform/platform/directory"
)

func TestOriginMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, origin string
		want                  bool
	}{
		{"exact", "https://www.acme.test", "https://www.acme.test", true},
		{"exact with port", "http://localhost:8080", "http://localhost:8080", true},
		{"exact ignores ASCII case", "https://www.acme.test", "HTTPS://WWW.Acme.Test", true},
		{"explicit default https port", "https://www.acme.test:443", "https://www.acme.test", true},
		{"explicit default http port", "http://www.acme.test", "http://www.acme.test:80", true},
		{"other port", "http://localhost:8080", "http://localhost:8081", false},
		{"missing port", "http://localhost:8080", "http://localhost", false},
		{"other scheme", "https://www.acme.test", "http://www.acme.test", false},
		{"other host", "https://www.acme.test", "https://acme.test", false},
		{"trailing slash", "https://www.acme.test", "https://www.acme.test/", false},
		{"null origin", "https://www.acme.test", "null", false},
		{"empty origin", "https://www.acme.test", "", false},
		{"Unicode folding is not ASCII case", "https://k.acme.test", "https://\u212a.acme.test", false},
		{"IPv6 exact", "http://[::1]:8080", "http://[::1]:8080", true},

		{"wildcard subdomain", "https://*.example.com", "https://shop.example.com", true},
		{"wildcard deeper subdomain", "https://*.example.com", "https://a.b.example.com", true},
		{"wildcard ignores case", "https://*.Example.COM", "https://Shop.example.com", true},
		{"wildcard never the bare domain", "https://*.example.com", "https://example.com", false},
		{"wildcard suffix trick", "https://*.example.com", "https://evilexample.com", false},
		{"wildcard suffix trick with dot", "https://*.example.com", "https://shop.evilexample.com", false},
		{"wildcard other domain ending in it", "https://*.example.com", "https://example.com.evil.test", false},
		{"wildcard empty label", "https://*.example.com", "https://.example.com", false},
		{"wildcard double dot", "https://*.example.com", "https://a..example.com", false},
		{"wildcard user info", "https://*.example.com", "https://evil.test@a.example.com", false},
		{"wildcard path", "https://*.example.com", "https://a.example.com/x", false},
		{"wildcard odd character", "https://*.example.com", "https://a_b.example.com", false},
		{"wildcard other scheme", "https://*.example.com", "http://shop.example.com", false},
		{"wildcard port not in pattern", "https://*.example.com", "https://shop.example.com:8443", false},
		{"wildcard default port", "https://*.example.com", "https://shop.example.com:443", true},
		{"wildcard with port", "http://*.example.com:8080", "http://shop.example.com:8080", true},
		{"wildcard with port, other port", "http://*.example.com:8080", "http://shop.example.com:8081", false},
		{"wildcard with port, none sent", "http://*.example.com:8080", "http://shop.example.com", false},
		{"wildcard literal origin", "https://*.example.com", "https://*.example.com", false},
		{"wildcard as a label", "https://*.example.com", "https://*.shop.example.com", false},
		{"wildcard null", "https://*.example.com", "null", false},
		{"wildcard localhost", "http://*.localhost:8080", "http://shop.localhost:8080", true},
		{"star not a whole label", "https://*example.com", "https://evilexample.com", false},
		{"star inside", "https://shop.*.example.com", "https://shop.a.example.com", false},
		{"star alone", "https://*", "https://example.com", false},
		{"double wildcard", "https://*.*.example.com", "https://a.b.example.com", false},
		{"bad port in origin", "http://*.example.com:8080", "http://a.example.com:08080", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := directory.OriginMatches(tc.pattern, tc.origin); got != tc.want {
				t.Errorf("OriginMatches(%q, %q) = %v, want %v", tc.pattern, tc.origin, got, tc.want)
			}
		})
	}
}

func TestTenantAllowsOrigin(t *testing.T) {
	t.Parallel()
	tn := &directory.Tenant{Origins: []string{"http://localhost:8080", "https://*.acme.test"}}
	tests := []struct {
		origin string
		want   bool
	}{
		{"http://localhost:8080", true},
		{"https://www.acme.test", true},
		{"https://acme.test", false},
		{"https://evilacme.test", false},
		{"http://localhost:3000", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.origin, func(t *testing.T) {
			t.Parallel()
			if got := tn.AllowsOrigin(tc.origin); got != tc.want {
				t.Errorf("AllowsOrigin(%q) = %v, want %v", tc.origin, got, tc.want)
			}
		})
	}
	if (&directory.Tenant{}).AllowsOrigin("http://localhost:8080") {
		t.Error("a tenant without origins allows one")
	}
}
