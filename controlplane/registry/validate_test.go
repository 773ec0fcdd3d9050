package registry

import (
	"errors"
	"testing"

	"github.com/startupwebapp/platform/platform/tenancy"
)

func TestValidateSlug(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"ab": true, "acme": true, "acme-shop": true, "a1": true, "startupwebapp": true,
		"a": false, "Acme": false, "1abc": false, "ab-": false, "-ab": false, "a_b": false, "a.b": false, "": false,
		"a234567890123456789012345678901234567890": true, "a2345678901234567890123456789012345678901": false,
	}
	for slug, ok := range cases {
		t.Run(slug, func(t *testing.T) {
			err := ValidateSlug(slug)
			if ok != (err == nil) {
				t.Fatalf("ValidateSlug(%q) = %v, want ok=%v", slug, err, ok)
			}
			var inv *InvalidError
			if err != nil && (!errors.As(err, &inv) || inv.Field != "slug") {
				t.Errorf("error %v does not name the slug field", err)
			}
		})
	}
}

func TestNormalizeHostname(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"localhost", "localhost"},
		{"LocalHost", "localhost"},
		{"Shop.Example.COM", "shop.example.com"},
		{" shop.example.com ", "shop.example.com"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"a-b.c-d.test", "a-b.c-d.test"},
		{"shop.example.com:8080", ""},
		{"localhost:8080", ""},
		{"http://shop.example.com", ""},
		{"shop.example.com/", ""},
		{"intranet", ""},
		{"-shop.example.com", ""},
		{"shop-.example.com", ""},
		{"shop..example.com", ""},
		{"shop_1.example.com", ""},
		{"127.0.0.1", ""},
		{"", ""},
		{"*.example.com", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := NormalizeHostname(c.in)
			if c.want == "" {
				var inv *InvalidError
				if !errors.As(err, &inv) || inv.Field != "hostname" {
					t.Fatalf("NormalizeHostname(%q) = %q, %v; want InvalidError on hostname", c.in, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("NormalizeHostname(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}

func TestNormalizeOrigin(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"http://localhost:8080", "http://localhost:8080"},
		{"HTTPS://Shop.Example.com", "https://shop.example.com"},
		{"http://127.0.0.1:3000", "http://127.0.0.1:3000"},
		{"https://shop.example.com:443", "https://shop.example.com:443"},
		{"https://*.Example.com", "https://*.example.com"},
		{"http://*.localhost:8080", "http://*.localhost:8080"},
		{"https://*.shop", "https://*.shop"},
		{"https://*", ""},
		{"https://*.", ""},
		{"https://*.*.example.com", ""},
		{"https://a*.example.com", ""},
		{"https://shop.*.com", ""},
		{"https://*.127", ""},
		{"http://localhost:8080/", ""},
		{"http://localhost:8080/app", ""},
		{"http://localhost:8080?x=1", ""},
		{"http://localhost:8080#x", ""},
		{"http://user@localhost:8080", ""},
		{"localhost:8080", ""},
		{"ftp://shop.example.com", ""},
		{"http://localhost:0", ""},
		{"http://localhost:65536", ""},
		{"http://localhost:080", ""},
		{"http://localhost:", ""},
		{"http://[::1]:8080", ""},
		{"http://", ""},
		{"", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := NormalizeOrigin(c.in)
			if c.want == "" {
				var inv *InvalidError
				if !errors.As(err, &inv) || inv.Field != "origin" {
					t.Fatalf("NormalizeOrigin(%q) = %q, %v; want InvalidError on origin", c.in, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("NormalizeOrigin(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}

func TestValidateSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		s     tenancy.Settings
		field string // "" for valid
	}{
		{"empty", tenancy.Settings{}, ""},
		{"full", tenancy.Settings{FrontendOrigin: "http://localhost:8080", FromAddress: "a@b.test", CookieDomain: ".shop.test",
			RateLimits: map[string]string{"login": "10/m", "chat": "off", "notify_me": "100/d"}}, ""},
		{"origin", tenancy.Settings{FrontendOrigin: "localhost:8080"}, "settings.frontend_origin"},
		{"origin pattern", tenancy.Settings{FrontendOrigin: "https://*.shop.test"}, "settings.frontend_origin"},
		{"from", tenancy.Settings{FromAddress: "nobody"}, "settings.from_address"},
		{"from header injection", tenancy.Settings{FromAddress: "a@b.test\r\nBcc: x@y.test"}, "settings.from_address"},
		{"cookie domain", tenancy.Settings{CookieDomain: "shop.test:80"}, "settings.cookie_domain"},
		{"rate zero", tenancy.Settings{RateLimits: map[string]string{"login": "0/m"}}, "settings.rate_limits.login"},
		{"rate period", tenancy.Settings{RateLimits: map[string]string{"login": "10/w"}}, "settings.rate_limits.login"},
		{"rate word", tenancy.Settings{RateLimits: map[string]string{"chat": "many"}}, "settings.rate_limits.chat"},
		{"rate multi-unit period", tenancy.Settings{RateLimits: map[string]string{"login": "10/15m"}}, ""},
		{"rate bad period count", tenancy.Settings{RateLimits: map[string]string{"login": "10/0m"}}, "settings.rate_limits.login"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateSettings(c.s)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field != c.field {
				t.Fatalf("err %v, want InvalidError on %s", err, c.field)
			}
		})
	}
}
