package provision_test

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
)

func TestMigrateAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, slug := range []string{"m-a", "m-b", "m-c", "m-d"} {
		if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: slug}, "t"); err != nil {
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
	results, err := e.svc.MigrateAll(ctx, 3, func(r provision.MigrateResult) {
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
	bySlug := map[string]provision.MigrateResult{}
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
	if len(audit) == 0 || audit[0].Action != "tenant.migrate" || audit[0].Actor != provision.MigrateAllActor {
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
	e := newEnv(b, func(o *provision.Options) {
		o.AfterStep = func(_, step string) error {
			now := time.Now()
			perStep[step] += now.Sub(last)
			last = now
			return nil
		}
	})
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "warm"}, "bench"); err != nil {
		b.Fatal(err)
	}
	clear(perStep)
	b.ResetTimer()
	for i := range b.N {
		last = time.Now()
		if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: fmt.Sprintf("bench-%d", i)}, "bench"); err != nil {
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
	createMany(b, e, tenants)
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

// withExtra returns the embedded tenant migrations plus n more, each adding
// a column and an index to product, as a real new migration might.
func withExtra(t testing.TB, n int) (fs.FS, int64) {
	t.Helper()
	base, err := migrations.Tenant.FS()
	if err != nil {
		t.Fatal(err)
	}
	latest, err := migrations.Latest(migrations.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	err = fs.WalkDir(base, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(base, p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		v := latest + int64(i)
		out[fmt.Sprintf("%05d_extra_%d.sql", v, i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`-- +goose Up
ALTER TABLE product ADD COLUMN extra_%[1]d text NOT NULL DEFAULT '';
CREATE INDEX product_extra_%[1]d_idx ON product (extra_%[1]d);

-- +goose Down
DROP INDEX product_extra_%[1]d_idx;
ALTER TABLE product DROP COLUMN extra_%[1]d;
`, i))}
	}
	return out, latest + int64(n)
}

// TestMigrateOneBehind releases one new migration to tenants made before
// it: Migrate and MigrateAll apply it to each (active or suspended), as the
// tenant's own role, and record the new schema version; a tenant created
// afterwards starts at it.
func TestMigrateOneBehind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, slug := range []string{"ob-a", "ob-b", "ob-c"} {
		if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: slug}, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.Suspend(ctx, "ob-c", "t"); err != nil {
		t.Fatal(err)
	}
	before := e.svc.LatestMigration()
	extra, newest := withExtra(t, 1)
	next := e.with(func(o *provision.Options) { o.TenantMigrations = extra })
	if next.LatestMigration() != newest || newest != before+1 {
		t.Fatalf("latest %d, want %d", next.LatestMigration(), before+1)
	}

	r, err := next.Migrate(ctx, "ob-a", "ops")
	if err != nil {
		t.Fatal(err)
	}
	if r.From != before || r.To != newest || r.Applied != 1 {
		t.Errorf("migrate ob-a: %+v, want %d -> %d with one applied", r, before, newest)
	}
	results, err := next.MigrateAll(ctx, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"ob-a": 0, "ob-b": 1, "ob-c": 1}
	if len(results) != len(want) {
		t.Fatalf("results %+v", results)
	}
	for _, r := range results {
		if r.Error != "" || r.Applied != want[r.Slug] || r.To != newest {
			t.Errorf("%s: %+v, want %d applied, at %d", r.Slug, r, want[r.Slug], newest)
		}
	}
	for slug := range want {
		tn, err := e.svc.Registry().Tenant(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		if tn.SchemaVersion != newest || tn.LastMigrationStatus == nil || *tn.LastMigrationStatus != "ok" {
			t.Errorf("%s registry: version %d status %v, want %d ok", slug, tn.SchemaVersion, tn.LastMigrationStatus, newest)
		}
		conn := e.tenantConnOf(tn)
		if n := e.count(conn, `SELECT count(*) FROM pg_indexes WHERE tablename = 'product' AND indexname = 'product_extra_1_idx'`); n != 1 {
			t.Errorf("%s: the new index is missing", slug)
		}
		if n := e.count(conn, `SELECT max(version_id)::int FROM schema_migrations`); int64(n) != newest {
			t.Errorf("%s: ledger at %d, want %d", slug, n, newest)
		}
		if _, err := conn.Exec(ctx, `UPDATE product SET extra_1 = 'x'`); err != nil {
			t.Errorf("%s: the tenant role cannot use the new column: %v", slug, err)
		}
	}
	audit, _ := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: "ob-b"})
	if len(audit) == 0 || audit[0].Action != "tenant.migrate" || audit[0].Actor != provision.MigrateAllActor {
		t.Errorf("ob-b audit %+v", audit)
	}
	// A new tenant is cloned from a template at the new version.
	fresh, err := next.Create(ctx, provision.CreateRequest{Slug: "ob-new"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.SchemaVersion != newest || next.TemplateName() == e.svc.TemplateName() {
		t.Errorf("new tenant at %d (template %s), want %d from a new template", fresh.SchemaVersion, next.TemplateName(), newest)
	}
	if n := e.count(e.tenantConnOf(fresh), `SELECT count(*) FROM information_schema.columns WHERE table_name = 'product' AND column_name = 'extra_1'`); n != 1 {
		t.Error("the new tenant lacks the new column")
	}
}

// BenchmarkMigrateAllOneNew measures a MigrateAll over 200 tenants that are
// one migration behind (concurrency 8): each iteration releases one more
// migration (a column and an index on product) and applies it to every
// tenant; only MigrateAll is timed.
//
//	go test ./controlplane/provision -run '^$' -bench MigrateAllOneNew -benchtime 1x
func BenchmarkMigrateAllOneNew(b *testing.B) {
	e := newEnv(b, nil)
	ctx := context.Background()
	const tenants = 200
	createMany(b, e, tenants)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		extra, newest := withExtra(b, i+1)
		svc := e.with(func(o *provision.Options) { o.TenantMigrations = extra })
		b.StartTimer()
		res, err := svc.MigrateAll(ctx, 8, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if len(res) != tenants {
			b.Fatalf("%d results", len(res))
		}
		for _, r := range res {
			if r.Applied != 1 || r.To != newest {
				b.Fatalf("%s: %+v, want one migration applied, at %d", r.Slug, r, newest)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/tenants, "ms/tenant")
}

// createMany provisions n tenants, four at a time.
func createMany(b *testing.B, e *env, n int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: fmt.Sprintf("many-%03d", i)}, "bench"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
