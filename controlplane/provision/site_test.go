package provision_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/sites"
)

func siteBundle(t *testing.T, index string) *sites.Bundle {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range map[string]string{"index.html": index, "app.js": strings.Repeat("var x = 1; ", 100)} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := sites.ReadBundle(&buf, sites.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A site deploy stopped at each of its points (Options.InStep, op
// OpSite) and run again completes, with one audit entry per version made
// current; rollback, mode and deletion map their refusals to the
// registry's kinds of error.
func TestSiteDeployCrashAndResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *provision.Options) { o.SiteRetain = 2 })
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "acme", Domains: []string{"www.acme.test"}}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeploySite(ctx, "acme", siteBundle(t, "<h1>v1</h1>"), "t"); err != nil {
		t.Fatal(err)
	}
	for i, point := range sites.DeployPoints() {
		var (
			once  sync.Once
			fired bool
		)
		crashing := e.with(func(o *provision.Options) {
			o.SiteRetain = 2
			o.InStep = func(_ context.Context, op, step, p string) error {
				var err error
				if op == provision.OpSite && step == provision.StepSiteDeploy && p == point {
					once.Do(func() { err, fired = errCrash, true })
				}
				return err
			}
		})
		b := siteBundle(t, "<h1>"+point+"</h1>")
		if _, err := crashing.DeploySite(ctx, "acme", b, "t"); !errors.Is(err, errCrash) || !fired {
			t.Fatalf("stop at %s: err = %v, fired %v", point, err, fired)
		}
		v, err := e.svc.DeploySite(ctx, "acme", b, "t")
		if err != nil {
			t.Fatalf("retry after a stop at %s: %v", point, err)
		}
		if v.Number != i+2 || !v.Current || !v.Ready {
			t.Errorf("retry after a stop at %s: version %+v, want number %d, current and ready", point, v, i+2)
		}
	}
	site, err := e.svc.Site(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	last := len(sites.DeployPoints()) + 1
	if len(site.Versions) != 2 || *site.CurrentVersion != last {
		t.Errorf("site %+v: want 2 versions kept, %d current", site, last)
	}
	if n := e.count(e.pool, `SELECT count(*) FROM audit_log WHERE action = 'site.deploy'`); n != last {
		t.Errorf("%d site.deploy audit entries, want %d: one per version served", n, last)
	}

	if _, err := e.svc.RollbackSite(ctx, "acme", 1, "t"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("rollback to a pruned version: %v, want ErrNotFound", err)
	}
	if _, err := e.svc.RollbackSite(ctx, "acme", last-1, "t"); err != nil {
		t.Errorf("rollback: %v", err)
	}
	if err := e.svc.DeleteSiteVersion(ctx, "acme", last-1, "t"); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("deleting the served version: %v, want ErrConflict", err)
	}
	var inv *registry.InvalidError
	if _, err := e.svc.SetSiteMode(ctx, "acme", sites.ModeDomain, "shop.nobody.test", "t"); !errors.As(err, &inv) || inv.Field != "domain" {
		t.Errorf("mode domain on a foreign host: %v, want invalid domain", err)
	}
	if _, err := e.svc.SetSiteMode(ctx, "acme", sites.ModeDomain, "WWW.acme.test", "t"); err != nil {
		t.Errorf("mode domain: %v", err)
	}
	if _, err := e.svc.DeploySite(ctx, "nobody", siteBundle(t, "x"), "t"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("deploy to an unknown tenant: %v, want ErrNotFound", err)
	}
}

// Deleting a tenant purges its site, versions and blobs, and nothing of
// another tenant's, even one whose site has the same files; a second
// delete changes nothing.
func TestDeletePurgesSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	ids := map[string]int64{}
	for _, slug := range []string{"gone", "stays"} {
		tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: slug, Domains: []string{"www." + slug + ".test"}}, "t")
		if err != nil {
			t.Fatal(err)
		}
		ids[slug] = tn.ID
		for _, v := range []string{"<h1>same</h1>", "<h1>v2</h1>"} {
			if _, err := e.svc.DeploySite(ctx, slug, siteBundle(t, v), "t"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.svc.SetSiteMode(ctx, "gone", sites.ModeDomain, "www.gone.test", "t"); err != nil {
		t.Fatal(err)
	}
	rows := func(slug string) map[string]int {
		out := map[string]int{}
		for _, table := range []string{"sites", "site_versions", "site_files", "site_blobs", "site_blob_data"} {
			out[table] = e.count(e.pool, `SELECT count(*) FROM `+table+` WHERE tenant_id = $1`, ids[slug])
		}
		return out
	}
	stays := rows("stays")
	if g := rows("gone"); g["site_versions"] != 2 || g["site_blob_data"] == 0 {
		t.Fatalf("before the delete: %v", g)
	}
	for range 2 {
		if _, err := e.svc.Delete(ctx, "gone", "t"); err != nil {
			t.Fatal(err)
		}
		for table, n := range rows("gone") {
			if n != 0 {
				t.Errorf("%d %s rows of the deleted tenant", n, table)
			}
		}
		if got := rows("stays"); fmt.Sprint(got) != fmt.Sprint(stays) {
			t.Errorf("the other tenant's site rows %v, were %v", got, stays)
		}
	}
	if site, err := e.svc.Site(ctx, "stays"); err != nil || site.CurrentVersion == nil || *site.CurrentVersion != 2 {
		t.Errorf("the other tenant's site: %+v, %v", site, err)
	}
}

// A domain's removal and a site mode naming it, started together, never
// both succeed: the site is never left served on a domain the tenant no
// longer has.
func TestRemoveDomainRacesSiteMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "acme"}, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		host := fmt.Sprintf("s%d.acme.test", i)
		if err := e.svc.AddDomain(ctx, "acme", host, "t"); err != nil {
			t.Fatal(err)
		}
		var (
			start              = make(chan struct{})
			wg                 sync.WaitGroup
			modeErr, removeErr error
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, modeErr = e.svc.SetSiteMode(ctx, "acme", sites.ModeDomain, host, "t")
		}()
		go func() {
			defer wg.Done()
			<-start
			removeErr = e.svc.RemoveDomain(ctx, "acme", host, "t")
		}()
		close(start)
		wg.Wait()
		if (modeErr == nil) == (removeErr == nil) {
			t.Fatalf("round %d: mode %v, removal %v: want exactly one to succeed", i, modeErr, removeErr)
		}
		if modeErr == nil && !errors.Is(removeErr, registry.ErrConflict) {
			t.Errorf("round %d: removal after the mode: %v, want ErrConflict", i, removeErr)
		}
		var inv *registry.InvalidError
		if removeErr == nil && !errors.As(modeErr, &inv) {
			t.Errorf("round %d: mode after the removal: %v, want invalid domain", i, modeErr)
		}
		if n := e.count(e.pool, `SELECT count(*) FROM sites s JOIN tenants t ON t.id = s.tenant_id
			WHERE t.slug = 'acme' AND s.mode = 'domain' AND NOT EXISTS (SELECT 1 FROM domains d WHERE d.hostname = s.domain)`); n != 0 {
			t.Fatalf("round %d: the site is served on a domain the tenant does not have", i)
		}
		if _, err := e.svc.SetSiteMode(ctx, "acme", sites.ModeReplace, "", "t"); err != nil {
			t.Fatal(err)
		}
	}
}
