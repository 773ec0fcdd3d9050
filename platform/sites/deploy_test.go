package sites_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/sites"
)

// count runs a count(*) query.
func count(t *testing.T, db *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// consistent checks the invariants a finished deploy leaves: no pending
// version, every blob row stored and named by a version, and exactly the
// blob rows' bytes in the database backend.
func consistent(t *testing.T, e *env, tenant int64) {
	t.Helper()
	if n := count(t, e.pool, `SELECT count(*) FROM site_versions WHERE tenant_id = $1 AND status <> 'ready'`, tenant); n != 0 {
		t.Errorf("%d versions left pending", n)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM site_blobs WHERE tenant_id = $1 AND NOT stored`, tenant); n != 0 {
		t.Errorf("%d blob rows not stored", n)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM site_blobs b WHERE tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM site_files f
		WHERE f.tenant_id = b.tenant_id AND b.sha256 IN (f.sha256, f.gzip_sha256, f.br_sha256))`, tenant); n != 0 {
		t.Errorf("%d blobs that no version names are kept", n)
	}
	rows := count(t, e.pool, `SELECT count(*) FROM site_blobs WHERE tenant_id = $1`, tenant)
	data := count(t, e.pool, `SELECT count(*) FROM site_blob_data d WHERE tenant_id = $1
		AND EXISTS (SELECT 1 FROM site_blobs b WHERE b.tenant_id = d.tenant_id AND b.sha256 = d.sha256)`, tenant)
	all := count(t, e.pool, `SELECT count(*) FROM site_blob_data WHERE tenant_id = $1`, tenant)
	if rows != data || data != all {
		t.Errorf("%d blob rows, %d of them with bytes, %d byte rows in all; want all equal", rows, data, all)
	}
}

// Versions are kept up to the retention, the served one always; rollback
// serves any kept version at once; blobs are stored once across versions
// and deleted once no version names them.
func TestRetentionRollbackDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{store: sites.Options{Retain: 3}})
	ctx := context.Background()
	shared := repeat("shared library ", 100)
	var vs []sites.Version
	for i := 1; i <= 5; i++ {
		vs = append(vs, e.deploy(t, e.acme, files(t, "index.html", page(fmt.Sprintf("v%d", i)), "lib.js", shared)))
	}
	site, err := e.store.Get(ctx, e.acme)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, v := range site.Versions {
		kept = append(kept, fmt.Sprint(v.Number))
	}
	if strings.Join(kept, ",") != "5,4,3" || site.CurrentVersion == nil || *site.CurrentVersion != 5 || !site.Versions[0].Current {
		t.Fatalf("versions %v, current %v; want 5,4,3 with 5 current", kept, site.CurrentVersion)
	}
	// lib.js (and its two encodings) once, index.html of three versions
	// with two encodings each.
	if n := count(t, e.pool, `SELECT count(*) FROM site_blobs WHERE tenant_id = $1`, e.acme); n != 3+3*3 {
		t.Errorf("%d blobs, want 12: the shared file stored once", n)
	}
	consistent(t, e, e.acme)

	site, err = e.store.Rollback(ctx, e.acme, 3, nil)
	if err != nil || *site.CurrentVersion != 3 {
		t.Fatalf("rollback: %+v, %v", site, err)
	}
	e.waitServed(t, e.acme, vs[2].ID)
	if r := e.mustGet(t, "www.acme.test", "/"); !strings.Contains(r.body, "v3") {
		t.Errorf("after rollback to 3: %.40q", r.body)
	}
	if _, err := e.store.Rollback(ctx, e.acme, 1, nil); !errors.Is(err, sites.ErrNotFound) {
		t.Errorf("rollback to pruned version 1: %v, want ErrNotFound", err)
	}
	if err := e.store.DeleteVersion(ctx, e.acme, 3, nil); !errors.Is(err, sites.ErrConflict) {
		t.Errorf("deleting the served version: %v, want ErrConflict", err)
	}
	if err := e.store.DeleteVersion(ctx, e.acme, 5, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteVersion(ctx, e.acme, 5, nil); !errors.Is(err, sites.ErrNotFound) {
		t.Errorf("deleting a deleted version: %v, want ErrNotFound", err)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM site_blobs WHERE tenant_id = $1`, e.acme); n != 3+2*3 {
		t.Errorf("after deleting version 5: %d blobs, want 9", n)
	}
	consistent(t, e, e.acme)

	// A new deploy after a rollback is numbered after every earlier one,
	// and the same bundle as the served one changes nothing.
	v6 := e.deploy(t, e.acme, files(t, "index.html", page("v6"), "lib.js", shared))
	again, err := e.store.Deploy(ctx, e.acme, files(t, "lib.js", shared, "index.html", page("v6")), "test", nil)
	if err != nil || v6.Number != 6 || again.Number != 6 {
		t.Errorf("deploys numbered %d then %d (%v), want 6 and 6", v6.Number, again.Number, err)
	}
}

// A deploy stopped at each of its points leaves the old version served
// whole (or, past the switch, the new one), and the same deploy run again
// completes: one new version, nothing pending, no blob lost or left over.
func TestDeployCrashResume(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		crash string // the point to stop at, once
	)
	hook := func(_ context.Context, point string) error {
		mu.Lock()
		defer mu.Unlock()
		if point == crash {
			crash = ""
			return errors.New("simulated crash at " + point)
		}
		return nil
	}
	e := newEnv(t, envConfig{store: sites.Options{Retain: 1, Hook: hook}})
	ctx := context.Background()
	v1 := e.deploy(t, e.acme, files(t, "index.html", page("v1"), "keep.css", repeat("kept ", 100)))
	for i, point := range sites.DeployPoints() {
		t.Run(point, func(t *testing.T) {
			prev := fmt.Sprintf("v%d", i+1)
			next := fmt.Sprintf("v%d", i+2)
			b := files(t, "index.html", page(next), "keep.css", repeat("kept ", 100), next+".js", repeat(next+"; ", 100))
			mu.Lock()
			crash = point
			mu.Unlock()
			_, err := e.store.Deploy(ctx, e.acme, b, "test", nil)
			if err == nil || !strings.Contains(err.Error(), "simulated crash") {
				t.Fatalf("deploy stopped at %s: err = %v", point, err)
			}
			mu.Lock()
			fired := crash == ""
			mu.Unlock()
			if !fired {
				t.Fatalf("the deploy never reached %s", point)
			}
			site, err := e.store.Get(ctx, e.acme)
			if err != nil {
				t.Fatal(err)
			}
			switched := point == sites.PointActivated || point == sites.PointPruned || point == sites.PointBlobDeleted
			want := prev
			if switched {
				want = next
			}
			cur := site.Versions[0]
			for _, v := range site.Versions {
				if v.Current {
					cur = v
				}
			}
			e.waitServed(t, e.acme, cur.ID)
			r := e.mustGet(t, "www.acme.test", "/")
			if !strings.Contains(r.body, want) {
				t.Errorf("after a stop at %s the site serves %.40q, want %s", point, r.body, want)
			}
			if r := e.mustGet(t, "www.acme.test", "/keep.css"); r.status != 200 {
				t.Errorf("after a stop at %s, keep.css answers %d", point, r.status)
			}

			v, err := e.store.Deploy(ctx, e.acme, b, "test", nil)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			e.waitServed(t, e.acme, v.ID)
			if r := e.mustGet(t, "www.acme.test", "/"+next+".js"); !strings.Contains(r.body, next+";") {
				t.Errorf("after the retry %s.js answers %d %.30q", next, r.status, r.body)
			}
			if v.Number != v1.Number+i+1 {
				t.Errorf("retried deploy is version %d, want %d: one version per deploy", v.Number, v1.Number+i+1)
			}
			if n := count(t, e.pool, `SELECT count(*) FROM site_versions WHERE tenant_id = $1`, e.acme); n != 1 {
				t.Errorf("%d versions kept, want 1 (Retain 1)", n)
			}
			consistent(t, e, e.acme)
		})
	}
}

// Another tenant's deploys never touch a tenant's blobs, even of equal
// content, and the garbage collector of one leaves the other's alone.
func TestTenantsShareNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{store: sites.Options{Retain: 1}})
	same := files(t, "index.html", page("same"))
	e.deploy(t, e.acme, same)
	e.deploy(t, e.other, same)
	e.deploy(t, e.other, files(t, "index.html", page("changed")))
	if r := e.mustGet(t, "www.acme.test", "/"); !strings.Contains(r.body, "same") {
		t.Errorf("acme's site after other's deploys: %.40q", r.body)
	}
	consistent(t, e, e.acme)
	consistent(t, e, e.other)
}

// Once a tenant is marked for deletion its site takes no change (a deploy
// that began before the mark and reaches the lock after it included), and
// Purge removes all of it, twice over without harm.
func TestDeletingTenantRefusesChangesAndPurges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{noServe: true})
	ctx := context.Background()
	for _, id := range []int64{e.acme, e.other} {
		if _, err := e.store.Deploy(ctx, id, files(t, "index.html", page("same"), "app.js", repeat("var a = 1; ", 200)), "t", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.pool.Exec(ctx, `UPDATE tenants SET status = 'deleting' WHERE id = $1`, e.acme); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Deploy(ctx, e.acme, files(t, "index.html", page("late")), "t", nil); !errors.Is(err, sites.ErrConflict) {
		t.Errorf("deploy to a deleting tenant: %v, want ErrConflict", err)
	}
	if _, err := e.store.Rollback(ctx, e.acme, 1, nil); !errors.Is(err, sites.ErrConflict) {
		t.Errorf("rollback on a deleting tenant: %v, want ErrConflict", err)
	}
	if _, err := e.store.SetMode(ctx, e.acme, sites.ModeReplace, "", nil); !errors.Is(err, sites.ErrConflict) {
		t.Errorf("mode on a deleting tenant: %v, want ErrConflict", err)
	}
	count := func(id int64) string {
		var out []string
		for _, table := range []string{"sites", "site_versions", "site_files", "site_blobs", "site_blob_data"} {
			var n int
			if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE tenant_id = $1`, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s=%d", table, n))
		}
		return strings.Join(out, " ")
	}
	other := count(e.other)
	for range 2 {
		if err := e.store.Purge(ctx, e.acme, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := count(e.acme), "sites=0 site_versions=0 site_files=0 site_blobs=0 site_blob_data=0"; got != want {
			t.Errorf("after purge: %s, want %s", got, want)
		}
		if got := count(e.other); got != other {
			t.Errorf("the other tenant's site: %s, was %s", got, other)
		}
	}
}
