package provision_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/sites/sitestest"
)

// siteRequests drives back-office site requests the way the data plane
// does: a row in the tenant's database, then the registry's queue function
// called as the data plane's role.
type siteRequests struct {
	e      *env
	tn     registry.Tenant
	tenant *pgx.Conn
	dp     *pgx.Conn
}

func (r siteRequests) queue(kind string, bundle []byte, version int) int64 {
	r.e.t.Helper()
	ctx := context.Background()
	var id int64
	var sum, b any
	var v any
	if kind == "deploy" {
		s := sha256.Sum256(bundle)
		sum, b = s[:], bundle
	} else {
		v = version
	}
	if err := r.tenant.QueryRow(ctx, `INSERT INTO site_deploy_request (kind, bundle, sha256, version) VALUES ($1, $2, $3, $4)
		RETURNING id`, kind, b, sum, v).Scan(&id); err != nil {
		r.e.t.Fatal(err)
	}
	if _, err := r.dp.Exec(ctx, `SELECT backoffice_queue_site_request($1, $2)`, r.tn.ID, id); err != nil {
		r.e.t.Fatalf("queue as the data plane: %v", err)
	}
	return id
}

func (r siteRequests) outcome(id int64) (status string, result *int, reason string, hasBundle bool) {
	r.e.t.Helper()
	if err := r.tenant.QueryRow(context.Background(), `SELECT status, result, error, bundle IS NOT NULL FROM site_deploy_request WHERE id = $1`, id).
		Scan(&status, &result, &reason, &hasBundle); err != nil {
		r.e.t.Fatal(err)
	}
	return
}

// Back-office site requests: a deploy is served and its outcome written
// to the tenant's row; a bundle with a path out of the site fails with the
// reason; a worker stopped after the deploy and before writing the
// outcome is resumed by the next one (once its lease is over) without a
// second version; a rollback serves a kept version; the data plane's role
// may queue but not write the queue or the sites tables.
func TestSiteRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "acme", Domains: []string{"www.acme.test"}}, "t")
	if err != nil {
		t.Fatal(err)
	}
	dp := e.adminConn("")
	dpRole := "swa_dataplane_site_test_" + e.prefix
	if _, err := dp.Exec(ctx, `CREATE ROLE `+ident(dpRole)+` LOGIN PASSWORD 'x' IN ROLE swa_dataplane`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Exec(context.Background(), `DROP ROLE IF EXISTS `+ident(dpRole)) })
	dpConn, err := e.tenantConn(e.pool.Config().ConnConfig.Database, dpRole, "x")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dpConn.Close(context.Background()) })
	r := siteRequests{e: e, tn: tn, tenant: e.tenantConnOf(tn), dp: dpConn}

	for _, q := range []string{`INSERT INTO site_deploy_queue (tenant_id, request_id) VALUES (1, 1)`,
		`UPDATE site_versions SET status = 'pending'`, `DELETE FROM sites`} {
		if _, err := dpConn.Exec(ctx, q); sqlstate(err) != "42501" {
			t.Errorf("data plane: %s: %v, want permission denied", q, err)
		}
	}

	for _, c := range []struct {
		tenant, request int64
		state           string
	}{{tn.ID, 0, "22023"}, {-1, 1, "P0002"}} {
		if _, err := dpConn.Exec(ctx, `SELECT backoffice_queue_site_request($1, $2)`, c.tenant, c.request); sqlstate(err) != c.state {
			t.Errorf("queue (%d, %d): %v, want SQLSTATE %s", c.tenant, c.request, err, c.state)
		}
	}

	first := r.queue("deploy", sitestest.TarGz(t, map[string]string{"index.html": "<h1>one</h1>"}), 0)
	if n, err := e.svc.RunSiteRequestsOnce(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("run: %d, %v; want 1 request done", n, err)
	}
	if st, res, reason, has := r.outcome(first); st != "done" || res == nil || *res != 1 || reason != "" || has {
		t.Fatalf("deploy: %s %v %q bundle kept %v; want done, version 1, bundle cleared", st, res, reason, has)
	}

	bad := r.queue("deploy", sitestest.TarGz(t, map[string]string{"../escape.html": "x"}), 0)
	if _, err := e.svc.RunSiteRequestsOnce(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if st, _, reason, _ := r.outcome(bad); st != "failed" || !strings.Contains(reason, "escape.html") {
		t.Errorf("path traversal: %s %q; want failed naming the entry", st, reason)
	}

	var once sync.Once
	crashing := e.with(func(o *provision.Options) {
		o.InStep = func(_ context.Context, op, step, p string) (err error) {
			if op == provision.OpSite && step == provision.StepSiteRequest && p == provision.PointSiteApplied {
				once.Do(func() { err = errCrash })
			}
			return err
		}
	})
	second := r.queue("deploy", sitestest.TarGz(t, map[string]string{"index.html": "<h1>two</h1>"}), 0)
	if _, err := crashing.RunSiteRequestsOnce(ctx, time.Minute); !errors.Is(err, errCrash) {
		t.Fatalf("stop after the deploy: %v", err)
	}
	if st, _, _, _ := r.outcome(second); st != "queued" {
		t.Fatalf("after the stop: %s, want queued", st)
	}
	if n, err := e.svc.RunSiteRequestsOnce(ctx, time.Minute); err != nil || n != 0 {
		t.Errorf("while the stopped worker's lease runs: %d, %v; want nothing taken", n, err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE site_deploy_queue SET claimed_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.RunSiteRequestsOnce(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("resume: %d, %v", n, err)
	}
	if st, res, _, _ := r.outcome(second); st != "done" || res == nil || *res != 2 {
		t.Errorf("resumed deploy: %s %v; want done, version 2", st, res)
	}
	if n := e.count(e.pool, `SELECT count(*) FROM site_versions WHERE tenant_id = $1`, tn.ID); n != 2 {
		t.Errorf("%d versions, want 2: the resumed deploy made none more", n)
	}

	back := r.queue("rollback", nil, 1)
	missing := r.queue("rollback", nil, 9)
	if n, err := e.svc.RunSiteRequestsOnce(ctx, time.Minute); err != nil || n != 2 {
		t.Fatalf("rollbacks: %d, %v", n, err)
	}
	if st, res, _, _ := r.outcome(back); st != "done" || res == nil || *res != 1 {
		t.Errorf("rollback: %s %v; want done, version 1", st, res)
	}
	if st, _, reason, _ := r.outcome(missing); st != "failed" || reason == "" {
		t.Errorf("rollback to a version not kept: %s %q; want failed with the reason", st, reason)
	}
	site, err := e.svc.Site(ctx, "acme")
	if err != nil || site.CurrentVersion == nil || *site.CurrentVersion != 1 {
		t.Errorf("site after rollback: %+v, %v; want version 1 served", site, err)
	}
	if n := e.count(e.pool, `SELECT count(*) FROM site_deploy_queue`); n != 0 {
		t.Errorf("%d queue rows left", n)
	}
}
