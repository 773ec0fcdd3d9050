package admin_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/startupwebapp/platform/platform/sites/sitestest"
)

// upload posts a bundle as the body of POST /site/deploys.
func (c *client) upload(b []byte) (int, map[string]any) {
	c.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://"+c.host+api+"/site/deploys", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/gzip")
	c.prepare(req, http.MethodPost)
	return c.send(req)
}

// TestSiteRequestsAPI: an owner's deploy and rollback are kept in the
// tenant's database, audited there, and queued in the registry through
// the data plane's role; the site answer lists the versions and requests;
// staff are refused, as are a body that is no .tar.gz and a bad version.
func TestSiteRequestsAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	staff := f.signIn(hostA, f.addStaff(owner, "staff"), staffPassword)
	bundle := sitestest.TarGz(t, map[string]string{"index.html": "<h1>hello</h1>"})
	staff.refused(403, "forbidden", "", "GET", api+"/site", nil)
	if st, out := staff.upload(bundle); st != 403 || out["error"] != "forbidden" {
		t.Fatalf("staff upload = %d %s, want 403", st, staff.raw)
	}
	staff.refused(403, "forbidden", "", "POST", api+"/site/rollbacks", map[string]int{"version": 1})
	if st, out := owner.upload([]byte("not a tarball")); st != 400 || out["field"] != "bundle" {
		t.Fatalf("upload of text = %d %s, want 400 on bundle", st, owner.raw)
	}
	owner.refused(400, "invalid", "version", "POST", api+"/site/rollbacks", map[string]int{"version": 0})

	st, q := owner.upload(bundle)
	if st != 202 || q["status"] != "queued" || q["kind"] != "deploy" {
		t.Fatalf("upload = %d %s, want 202 queued", st, owner.raw)
	}
	id := int64(q["id"].(float64))
	var queued int
	if err := f.reg.QueryRow(ctx, `SELECT count(*) FROM site_deploy_queue WHERE tenant_id = $1 AND request_id = $2`, f.a.ID, id).Scan(&queued); err != nil || queued != 1 {
		t.Fatalf("registry queue rows for the request: %d, %v; want 1", queued, err)
	}
	var stored []byte
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT bundle FROM site_deploy_request WHERE id = $1`, id).Scan(&stored); err != nil || !bytes.Equal(stored, bundle) {
		t.Fatalf("stored bundle: %d bytes, %v; want the upload", len(stored), err)
	}
	if st, _ := owner.do("POST", api+"/site/rollbacks", map[string]int{"version": 1}); st != 202 {
		t.Fatalf("rollback = %d %s", st, owner.raw)
	}
	// The control plane's worker answered the deploy (version 1 served).
	if _, err := f.reg.Exec(ctx, `INSERT INTO sites (tenant_id) VALUES ($1)`, f.a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Exec(ctx, `WITH v AS (INSERT INTO site_versions (tenant_id, number, status, digest, files, bytes, actor)
		VALUES ($1, 1, 'ready', '\x00', 1, 14, 'owner') RETURNING id) UPDATE sites SET current_version = (SELECT id FROM v) WHERE tenant_id = $1`, f.a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dbs[f.a.ID].Exec(ctx, `UPDATE site_deploy_request SET status = 'failed', error = 'bundle: ../x: leaves the site' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	got := owner.must(200, "GET", api+"/site", nil)
	if got["current_version"] != 1.0 {
		t.Errorf("current_version = %v, want 1: %s", got["current_version"], owner.raw)
	}
	reqs, _ := got["requests"].([]any)
	if len(reqs) != 2 || reqs[0].(map[string]any)["kind"] != "rollback" || reqs[1].(map[string]any)["error"] != "bundle: ../x: leaves the site" {
		t.Errorf("requests = %v, want the rollback then the failed deploy with its reason", reqs)
	}
	if acts := f.auditActions(f.a); !slices.Contains(acts, "site.deploy_requested") || !slices.Contains(acts, "site.rollback_requested") {
		t.Errorf("audit = %v, want both requests", acts)
	}
	var other int
	if err := f.reg.QueryRow(ctx, `SELECT count(*) FROM site_deploy_queue WHERE tenant_id <> $1`, f.a.ID).Scan(&other); err != nil || other != 0 {
		t.Errorf("queue rows of another tenant: %d, %v", other, err)
	}
}
