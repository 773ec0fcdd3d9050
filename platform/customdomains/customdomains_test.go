package customdomains_test

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/customdomains"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// TestAllowCertificate: the decision reads a real directory loaded from a
// registry holding an active tenant with a verified and a pending custom
// domain, and a suspended and a deleted tenant with verified ones. Only
// the active tenant's verified custom domain gets a certificate.
func TestAllowCertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewPool(t, migrations.Platform)
	active := directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme",
		Domains: []string{"acme.shops.test", "www.acme.test", "legacy.shops.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "paused", Status: tenancy.Suspended,
		Domains: []string{"paused.shops.test", "www.paused.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "gone", Status: tenancy.Deleted,
		Domains: []string{"gone.shops.test", "www.gone.test"}})
	if _, err := db.Exec(ctx, `SELECT backoffice_add_domain($1, 'staff:1 o@acme.test', 'pending.acme.test', $2)`,
		active, customdomains.NewToken()); err != nil {
		t.Fatal(err)
	}
	dir := directory.New(directory.Options{DB: db, BaseDomain: "shops.test"})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	p := customdomains.Policy{Directory: dir, BaseDomain: "shops.test"}
	for _, tc := range []struct {
		host  string
		allow bool
	}{
		{"www.acme.test", true},
		{"www.acme.test.", true}, // fully qualified
		{"pending.acme.test", false},
		{"unknown.example.com", false},
		{"www.paused.test", false},
		{"www.gone.test", false},
		{"acme.shops.test", false},   // tenant subdomain: the wildcard certificate
		{"legacy.shops.test", false}, // an exact domain, but under the base domain
		{"shops.test", false},
		{"www.shops.test", false},
		{"WWW.ACME.TEST", false},
		{"", false},
		{"127.0.0.1", false},
		{"::1", false},
		{"*.acme.test", false},
		{"acme", false},
	} {
		err := p.AllowCertificate(ctx, tc.host)
		if (err == nil) != tc.allow {
			t.Errorf("AllowCertificate(%q) = %v, want allowed %v", tc.host, err, tc.allow)
		}
		if err != nil && !errors.Is(err, customdomains.ErrRefused) {
			t.Errorf("AllowCertificate(%q) = %v, not ErrRefused", tc.host, err)
		}
	}
}

func TestNewToken(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{20,100}$`) // the registry's CHECK
	seen := map[string]bool{}
	for range 100 {
		tok := customdomains.NewToken()
		if !valid.MatchString(tok) || seen[tok] {
			t.Fatalf("token %q: valid %v, repeated %v", tok, valid.MatchString(tok), seen[tok])
		}
		seen[tok] = true
	}
	if got := customdomains.RecordName("shop.example.com"); got != "_swa-challenge.shop.example.com" {
		t.Errorf("RecordName = %q", got)
	}
}
