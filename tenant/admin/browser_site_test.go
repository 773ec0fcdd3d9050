package admin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
	"github.com/startupwebapp/platform/platform/sites/sitestest"
)

// TestBrowserSitePage: the owner's site page in headless Chromium shows
// the version served, the versions with a rollback each (its confirmation
// box first) and the requests with their outcome; a bundle uploaded with
// its box ticked is queued. Screenshot of the page.
func TestBrowserSitePage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	base := f.listen(t)
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	// Two versions served before, the second current; an earlier request failed.
	if _, err := f.reg.Exec(ctx, `INSERT INTO sites (tenant_id) VALUES ($1)`, f.a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Exec(ctx, `WITH v AS (INSERT INTO site_versions (tenant_id, number, status, digest, files, bytes, actor, ready_at)
		VALUES ($1, 1, 'ready', '\x01', 3, 5120, 'staff:1 owner', now()), ($1, 2, 'ready', '\x02', 4, 6144, 'staff:1 owner', now()) RETURNING id, number)
		UPDATE sites SET current_version = (SELECT id FROM v WHERE number = 2) WHERE tenant_id = $1`, f.a.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := owner.upload(sitestest.TarGz(t, map[string]string{"../escape.html": "x"})); st != 202 {
		t.Fatalf("upload = %d %s", st, owner.raw)
	}
	if _, err := f.dbs[f.a.ID].Exec(ctx, `UPDATE site_deploy_request SET status = 'failed', finished_at = now(),
		error = 'bundle: entry "../escape.html": the path leaves the site'`); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "site.tar.gz")
	if err := os.WriteFile(bundle, sitestest.TarGz(t, map[string]string{"index.html": "<h1>new</h1>"}), 0o644); err != nil {
		t.Fatal(err)
	}

	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 120*time.Second, "admin")
	b.Run("sign in", signInActions(base, f.owner[f.a.ID])...)
	b.Run("upload, confirmed",
		chromedp.Navigate(base+"/admin/site"),
		chromedp.WaitVisible(chromedp.CSS(`#bundle`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#bundle`), []string{bundle}),
		chromedp.Click(chromedp.CSS(`#confirm-deploy`)),
		chromedp.Click(chromedp.CSS(`form[action="/admin/site/deploys"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-deploys`)),
	)
	if n := b.Text(`.notice`); !strings.Contains(n, "queued") {
		t.Fatalf("after the upload: %q", n)
	}
	b.Run("the page", chromedp.Navigate(base+"/admin/site"), chromedp.WaitVisible(chromedp.CSS(`#confirm-rollback-1`)), b.Shot("60-site"))
	page := b.Text(`main`)
	for _, want := range []string{"Version 2 is served", "Failed: bundle: entry \"../escape.html\"", "Queued", "not yet"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	b.Run("roll back, confirmed",
		chromedp.Click(chromedp.CSS(`#confirm-rollback-1`)),
		chromedp.Click(chromedp.CSS(`form[action="/admin/site/rollbacks"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-rollbacks`)),
	)
	b.Run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/site"),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-rollback-1`)),
		b.Shot("61-site-phone"),
	)
	var n int
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT count(*) FROM site_deploy_request WHERE kind = 'rollback' AND version = 1 AND status = 'queued'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rollback requests queued: %d, %v; want 1", n, err)
	}
	var queued int
	if err := f.reg.QueryRow(ctx, `SELECT count(*) FROM site_deploy_queue WHERE tenant_id = $1`, f.a.ID).Scan(&queued); err != nil || queued != 3 {
		t.Errorf("registry queue rows: %d, %v; want 3 (the failed one's too, until a worker removes it)", queued, err)
	}
}
