package provision_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
)

// TestTemplate checks that a half-built template (a crash mid-build) is
// rebuilt, templates of older migrations are dropped, and the template
// admits no connections.
func TestTemplate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	admin := e.adminConn("")
	old := e.prefix + "_template_0_0000000000"
	for _, stmt := range []string{
		"CREATE DATABASE " + ident(e.svc.TemplateName()), // half built: not a template, no schema
		"CREATE DATABASE " + ident(old) + " WITH IS_TEMPLATE true",
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "fresh"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if n := e.count(e.tenantConnOf(tn), `SELECT count(*) FROM product`); n == 0 {
		t.Error("clone of a rebuilt template has no reference data")
	}
	var isTemplate, allowConn bool
	if err := admin.QueryRow(ctx, `SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1`, e.svc.TemplateName()).
		Scan(&isTemplate, &allowConn); err != nil {
		t.Fatal(err)
	}
	if !isTemplate || allowConn {
		t.Errorf("template: is_template %v allow_connections %v", isTemplate, allowConn)
	}
	if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE datname = $1`, old); n != 0 {
		t.Error("the older template was not dropped")
	}
}

// TestConcurrentEnsure runs Ensure for one slug from several goroutines (as
// several control-plane replicas would): one tenant, one database, one
// secret version.
func TestConcurrentEnsure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.svc.Ensure(ctx, provision.CreateRequest{Slug: "racy", Domains: []string{"racy.test"}}, fmt.Sprint("replica-", i))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("ensure %d: %v", i, err)
		}
	}
	tn, err := e.svc.Registry().Tenant(ctx, "racy")
	if err != nil {
		t.Fatal(err)
	}
	if tn.Status != registry.StatusActive {
		t.Errorf("status %s", tn.Status)
	}
	if vs, _ := e.store.Versions(ctx, secrets.TenantSecretName("racy")); len(vs) != 1 {
		t.Errorf("secret versions %v", vs)
	}
	admin := e.adminConn("")
	if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE datname = $1`, tn.DBName); n != 1 {
		t.Errorf("%d databases", n)
	}
	steps, _ := e.svc.Registry().Steps(ctx, tn.ID, provision.OpCreate)
	for _, s := range steps {
		if s.Attempts != 1 {
			t.Errorf("step %s ran %d times", s.Step, s.Attempts)
		}
	}
}
