package provision

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
)

func TestMigrateAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, slug := range []string{"m-a", "m-b", "m-c", "m-d"} {
		if _, err := e.svc.Create(ctx, CreateRequest{Slug: slug}, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.Suspend(ctx, "m-d", "t"); err != nil {
		t.Fatal(err)
	}
	latest, _ := migrations.Latest(migrations.Tenant)
	// m-b's database is gone: its migration fails, the others go on.
	b, _ := e.svc.Registry().Tenant(ctx, "m-b")
	admin := e.adminConn("")
	if _, err := admin.Exec(ctx, "DROP DATABASE "+ident(b.DBName)+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	results, err := e.svc.MigrateAll(ctx, 3, func(r MigrateResult) {
		mu.Lock()
		seen = append(seen, r.Slug)
		mu.Unlock()
	})
	if err == nil {
		t.Error("MigrateAll reported no failure")
	}
	if len(results) != 4 || len(seen) != 4 {
		t.Fatalf("%d results, %d progress calls, want 4 each: %+v", len(results), len(seen), results)
	}
	bySlug := map[string]MigrateResult{}
	for _, r := range results {
		bySlug[r.Slug] = r
	}
	if r := bySlug["m-b"]; r.Error == "" {
		t.Errorf("m-b: %+v, want an error", r)
	}
	for _, slug := range []string{"m-a", "m-c", "m-d"} {
		if r := bySlug[slug]; r.Error != "" || r.Applied != 0 || r.To != latest {
			t.Errorf("%s: %+v, want nothing applied at %d", slug, r, latest)
		}
	}
	tb, _ := e.svc.Registry().Tenant(ctx, "m-b")
	if tb.LastMigrationStatus == nil || *tb.LastMigrationStatus != "failed" || tb.LastMigrationError == nil {
		t.Errorf("m-b registry: status %v error %v", tb.LastMigrationStatus, tb.LastMigrationError)
	}
	tc, _ := e.svc.Registry().Tenant(ctx, "m-c")
	if tc.LastMigrationStatus == nil || *tc.LastMigrationStatus != "ok" || tc.SchemaVersion != latest {
		t.Errorf("m-c registry: status %v version %d", tc.LastMigrationStatus, tc.SchemaVersion)
	}
	// One migrate of a single tenant, and of a tenant that cannot be migrated.
	if r, err := e.svc.Migrate(ctx, "m-c", "ops"); err != nil || r.To != latest {
		t.Errorf("migrate m-c: %+v %v", r, err)
	}
	if _, err := e.svc.Migrate(ctx, "nobody", "ops"); err == nil {
		t.Error("migrate of an unknown tenant succeeded")
	}
	// The failure is audited, with no secret in it.
	audit, _ := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: "m-b"})
	if len(audit) == 0 || audit[0].Action != "tenant.migrate" || audit[0].Actor != MigrateAllActor {
		t.Errorf("m-b audit %+v", audit)
	}
}

// BenchmarkCreate measures one tenant creation on the template fast path
// (the template is built before the timer starts), and reports the mean
// time of each step.
func BenchmarkCreate(b *testing.B) {
	var (
		last    time.Time
		perStep = map[string]time.Duration{}
	)
	e := newEnv(b, func(o *Options) {
		o.AfterStep = func(_, step string) error {
			now := time.Now()
			perStep[step] += now.Sub(last)
			last = now
			return nil
		}
	})
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, CreateRequest{Slug: "warm"}, "bench"); err != nil {
		b.Fatal(err)
	}
	clear(perStep)
	b.ResetTimer()
	for i := range b.N {
		last = time.Now()
		if _, err := e.svc.Create(ctx, CreateRequest{Slug: fmt.Sprintf("bench-%d", i)}, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for step, d := range perStep {
		b.ReportMetric(float64(d.Milliseconds())/float64(b.N), step+"-ms/op")
	}
}

// BenchmarkMigrateAll measures a MigrateAll over 200 up-to-date tenants
// (concurrency 8); only MigrateAll is in the loop.
func BenchmarkMigrateAll(b *testing.B) {
	e := newEnv(b, nil)
	ctx := context.Background()
	const tenants = 200
	var wg sync.WaitGroup
	errs := make(chan error, tenants)
	sem := make(chan struct{}, 4)
	for i := range tenants {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := e.svc.Create(ctx, CreateRequest{Slug: fmt.Sprintf("many-%03d", i)}, "bench"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		res, err := e.svc.MigrateAll(ctx, 8, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(res) != tenants {
			b.Fatalf("%d results", len(res))
		}
	}
}
