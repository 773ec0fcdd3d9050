package directory_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// manyTenants loads a directory of n active tenants, each with one custom
// domain and one origin.
func manyTenants(b *testing.B, n int) *directory.Directory {
	b.Helper()
	db := pgtest.NewPool(b, migrations.Platform)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO tenants (slug, display_name, status, db_name, db_role, secrets_ref)
		 SELECT 't' || i, 'Tenant ' || i, 'active', 'db_' || i, 'role_' || i, 'swa/tenants/t' || i
		   FROM generate_series(1, $1) i`,
		`INSERT INTO domains (hostname, tenant_id, is_default) SELECT 'shop' || id || '.example.com', id, true FROM tenants WHERE $1 > 0`,
		`INSERT INTO tenant_origins (tenant_id, origin) SELECT id, 'https://shop' || id || '.example.com' FROM tenants WHERE $1 > 0`,
	} {
		if _, err := db.Exec(ctx, q, n); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	d := directory.New(directory.Options{DB: db, BaseDomain: "swa.example", Log: quietLog()})
	if err := d.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	if d.Len() != n {
		b.Fatalf("loaded %d tenants, want %d", d.Len(), n)
	}
	return d
}

// BenchmarkLookup resolves hosts among 10,000 tenants: custom domains,
// slug hosts with a port, and mixed-case hosts (the one case that allocates).
func BenchmarkLookup(b *testing.B) {
	const n = 10000
	d := manyTenants(b, n)
	all := d.All()
	kinds := map[string]func(*directory.Tenant) string{
		"domain":    func(t *directory.Tenant) string { return t.Hosts[0] },
		"slug_port": func(t *directory.Tenant) string { return t.Slug + ".swa.example:8000" },
		"uppercase": func(t *directory.Tenant) string { return "SHOP" + t.Hosts[0][4:] },
		"unknown":   func(t *directory.Tenant) string { return "x" + t.Slug + ".swa.example" },
	}
	for _, name := range []string{"domain", "slug_port", "uppercase", "unknown"} {
		hosts := make([]string, len(all))
		for i, t := range all {
			hosts[i] = kinds[name](t)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, r := d.Lookup(hosts[i%len(hosts)]); (r == directory.Found) == (name == "unknown") {
					b.Fatalf("Lookup(%s) = %v", hosts[i%len(hosts)], r)
				}
				i++
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				d.Lookup(all[i%len(all)].Hosts[0])
				i++
			}
		})
	})
}

// BenchmarkRefresh compares what a notification could cost: reloading the
// one changed tenant (and copying the snapshot) against reloading all.
func BenchmarkRefresh(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		d := manyTenants(b, n)
		id := d.All()[0].ID
		b.Run(fmt.Sprintf("one_of_%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := d.RefreshIDs(context.Background(), id); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("all_%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := d.Refresh(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
