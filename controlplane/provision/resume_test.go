package provision_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/sites"
)

var errCrash = errors.New("simulated crash")

// crash is where a workflow stops as if the process died: after a step is
// recorded done (point ""), or at one of the points inside a step where its
// side effect is made and its record not yet written (Options.InStep).
type crash struct{ op, step, point string }

func (c crash) String() string {
	if c.point == "" {
		return c.op + "/" + c.step + "/after"
	}
	return c.op + "/" + c.step + "/" + c.point
}

// hook sets the option that stops the workflow once at c.
func (c crash) hook(o *provision.Options) {
	var once sync.Once
	fire := func(op, step, point string) error {
		err := error(nil)
		if op == c.op && step == c.step && point == c.point {
			once.Do(func() { err = errCrash })
		}
		return err
	}
	if c.point == "" {
		o.AfterStep = func(op, step string) error { return fire(op, step, "") }
	} else {
		o.InStep = func(_ context.Context, op, step, point string) error { return fire(op, step, point) }
	}
}

// crashPoints lists every point of each workflow where a crash is tested:
// after each of its steps, and inside each step where it has a side effect
// that its record does not yet show. TestCrashPointsAreAllTested keeps it in
// step with the points the workflows have.
var crashPoints = map[string][]crash{
	provision.OpCreate: createCrashes(provision.OpCreate),
	provision.OpFork:   createCrashes(provision.OpFork),
	provision.OpDelete: withAfterSteps(provision.OpDelete, provision.DeleteSteps(), []crash{
		{provision.OpDelete, provision.StepMark, provision.PointMarked},
		{provision.OpDelete, provision.StepDrop, provision.PointSessionsEnded},
		{provision.OpDelete, provision.StepDrop, provision.PointDatabaseDropped},
		{provision.OpDelete, provision.StepDrop, provision.PointRoleDropped},
		{provision.OpDelete, provision.StepForget, provision.PointForgotten},
		{provision.OpDelete, provision.StepSite, sites.PointPurged},
		{provision.OpDelete, provision.StepSite, sites.PointBlobDeleted},
		{provision.OpDelete, provision.StepRelease, provision.PointInTx},
	}),
	provision.OpRotate: withAfterSteps(provision.OpRotate, []string{provision.StepStore, provision.StepApply, provision.StepAnnounce}, []crash{
		{provision.OpRotate, provision.StepStore, provision.PointStored},
		{provision.OpRotate, provision.StepApply, provision.PointApplied},
		{provision.OpRotate, provision.StepAnnounce, provision.PointInTx},
	}),
	provision.OpSecrets: withAfterSteps(provision.OpSecrets, []string{provision.StepStore, provision.StepAnnounce}, []crash{
		{provision.OpSecrets, provision.StepStore, provision.PointStored},
		{provision.OpSecrets, provision.StepAnnounce, provision.PointInTx},
	}),
	provision.OpUpdate: {{provision.OpUpdate, provision.StepUpdate, provision.PointInTx}},
}

func createCrashes(op string) []crash {
	in := []crash{
		{op, provision.StepReserve, provision.PointInTx},
		{op, provision.StepSecrets, provision.PointStored},
		{op, provision.StepDatabase, provision.PointRole},
		{op, provision.StepDatabase, provision.PointTemplate},
		{op, provision.StepDatabase, provision.PointCreated},
		{op, provision.StepDatabase, provision.PointOwned},
		{op, provision.StepMigrate, provision.PointMigrated},
		{op, provision.StepMigrate, provision.PointRecorded},
		{op, provision.StepActivate, provision.PointInTx},
	}
	if op == provision.OpFork {
		in = append(in, crash{op, provision.StepCopy, provision.PointCopied})
	}
	return withAfterSteps(op, provision.CreateSteps(op == provision.OpFork), in)
}

func withAfterSteps(op string, steps []string, in []crash) []crash {
	var out []crash
	for _, s := range steps {
		out = append(out, crash{op, s, ""})
	}
	return append(out, in...)
}

// TestCrashAndResume stops every workflow at each of its crash points in
// turn, resumes it as an operator would (Retry, or the same call again), and
// checks that it converges: the registry and Postgres agree (status, every
// step done, one database owned by the role, the role logging in with the
// stored password), with one current secret version and one audit entry per
// change. The cases of a workflow share one platform (and template); once
// they are all done, no database or role is left that no tenant owns.
func TestCrashAndResume(t *testing.T) {
	t.Parallel()
	for _, op := range []string{provision.OpCreate, provision.OpFork, provision.OpDelete,
		provision.OpRotate, provision.OpSecrets, provision.OpUpdate} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, provisiontest.Config{MaxConns: 8})
			ctx := context.Background()
			if op == provision.OpFork {
				if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "origin"}, "t"); err != nil {
					t.Fatal(err)
				}
			}
			t.Run("cases", func(t *testing.T) {
				n := 0
				for _, c := range crashPoints[op] {
					hows := []string{"rerun"}
					if op == provision.OpCreate || op == provision.OpFork {
						hows = []string{"retry", "ensure"}
						if c.step == provision.StepReserve && c.point != "" {
							hows = []string{"ensure"} // nothing was reserved: Retry has no tenant
						}
					}
					for _, how := range hows {
						n++
						slug := fmt.Sprintf("crash-%d", n)
						t.Run(c.String()+"/"+how, func(t *testing.T) {
							t.Parallel()
							crashAndResume(t, e, c, how, slug)
						})
					}
				}
			})
			// Nothing left over: one database per live tenant and the
			// template, one role per live tenant.
			live := e.count(e.pool, `SELECT count(*) FROM tenants WHERE status <> 'deleted'`)
			admin := e.adminConn("")
			if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE left(datname, length($1)) = $1`, e.prefix); n != live+1 {
				t.Errorf("%d databases with the prefix, want %d tenants' and the template", n, live)
			}
			if n := e.count(admin, `SELECT count(*) FROM pg_roles WHERE left(rolname, length($1)) = $1`, e.prefix); n != live {
				t.Errorf("%d roles with the prefix, want %d", n, live)
			}
		})
	}
}

// crashAndResume runs the workflow of c on a new tenant slug, stopping at
// c, resumes it by how, and checks the end state.
func crashAndResume(t *testing.T, e *env, c crash, how, slug string) {
	ctx := context.Background()
	crashing := e.with(c.hook)
	req := provision.CreateRequest{Slug: slug, Domains: []string{"shop." + slug + ".test"},
		Origins: []string{"https://shop." + slug + ".test"}, Secrets: provision.SecretsInput{StripeSecretKey: ptr("sk_test_crash")}}
	if c.op == provision.OpFork {
		req.ForkOf = "origin"
	}
	setIn := provision.SecretsInput{SMTPHost: ptr("smtp." + slug + ".test"), SMTPPassword: ptr("smtp-pw-" + slug)}
	patch := provision.TenantPatch{DisplayName: ptr("Renamed " + slug), Settings: &provision.SettingsPatch{FromAddress: ptr("shop@" + slug + ".test")}}
	var before secrets.TenantBundle
	if c.op != provision.OpCreate && c.op != provision.OpFork {
		tn, err := e.svc.Create(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if before, err = secrets.LoadBundle(ctx, e.store, tn.SecretsRef); err != nil {
			t.Fatal(err)
		}
		e.tenantConnOf(tn)              // a live session that a delete must end
		if c.op == provision.OpDelete { // a site for the delete to purge
			if _, err := e.svc.DeploySite(ctx, slug, siteBundle(t, "<h1>"+slug+"</h1>"), "t"); err != nil {
				t.Fatal(err)
			}
		}
	}
	call := func(svc *provision.Service) error {
		var err error
		switch c.op {
		case provision.OpCreate, provision.OpFork:
			if how == "retry" && svc != crashing {
				_, err = svc.Retry(ctx, slug, "t")
			} else if svc == crashing {
				_, err = svc.Create(ctx, req, "t")
			} else {
				_, err = svc.Ensure(ctx, req, "t")
			}
		case provision.OpDelete:
			_, err = svc.Delete(ctx, slug, "t")
		case provision.OpRotate:
			err = svc.RotateSecrets(ctx, slug, "t")
		case provision.OpSecrets:
			_, err = svc.SetSecrets(ctx, slug, setIn, "t")
		case provision.OpUpdate:
			_, err = svc.Update(ctx, slug, patch, "t")
		}
		return err
	}
	if err := call(crashing); !errors.Is(err, errCrash) {
		t.Fatalf("%s: %v, want the simulated crash", c.op, err)
	}
	if tn, err := e.svc.Registry().Tenant(ctx, slug); err == nil && c.op == provision.OpCreate &&
		c.step != provision.StepActivate && tn.Status != registry.StatusProvisioning {
		t.Errorf("after the crash: status %s, want provisioning", tn.Status)
	}
	err := call(e.svc)
	// A create that crashed after its last step is done: nothing to retry.
	if finished := c.step == provision.StepActivate && c.point == ""; finished && how == "retry" {
		if !errors.Is(err, registry.ErrConflict) {
			t.Fatalf("retry of an active tenant: %v, want ErrConflict", err)
		}
		err = nil
	}
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	tn, err := e.svc.Registry().Tenant(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	audits := map[string]int{}
	entries, err := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: slug, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range entries {
		audits[a.Action]++
	}
	wantAudit := func(action string, n int) {
		t.Helper()
		if audits[action] != n {
			t.Errorf("%d %s audit entries, want %d (all: %v)", audits[action], action, n, audits)
		}
	}
	wantSteps := func(op string, n int) {
		t.Helper()
		steps, err := e.svc.Registry().Steps(ctx, tn.ID, op)
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) != n {
			t.Errorf("%d %s step records, want %d", len(steps), op, n)
		}
		for _, s := range steps {
			if s.Status != "done" {
				t.Errorf("step %s/%s is %s", op, s.Step, s.Status)
			}
		}
	}
	versions, err := e.store.Versions(ctx, tn.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}

	if c.op == provision.OpDelete {
		if tn.Status != registry.StatusDeleted || len(tn.Domains) != 0 {
			t.Errorf("status %s domains %v, want deleted without domains", tn.Status, tn.Domains)
		}
		admin := e.adminConn("")
		if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE datname = $1`, tn.DBName); n != 0 {
			t.Error("database still there")
		}
		if n := e.count(admin, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, tn.DBRole); n != 0 {
			t.Error("role still there")
		}
		if len(versions) != 0 {
			t.Errorf("secret versions %v after delete", versions)
		}
		for _, table := range []string{"sites", "site_versions", "site_files", "site_blobs", "site_blob_data"} {
			if n := e.count(e.pool, `SELECT count(*) FROM `+table+` WHERE tenant_id = $1`, tn.ID); n != 0 {
				t.Errorf("%d %s rows after delete", n, table)
			}
		}
		wantSteps(provision.OpDelete, len(provision.DeleteSteps()))
		wantAudit("tenant.delete", 1)
		wantAudit("tenant.deleted", 1)
		return
	}

	// A live tenant: active, its database and role agree with the registry.
	if tn.Status != registry.StatusActive {
		t.Fatalf("status %s, want active", tn.Status)
	}
	if want := []string{slug + ".example.test", "shop." + slug + ".test"}; !slices.Equal(tn.Domains, want) {
		t.Errorf("domains %v, want %v", tn.Domains, want)
	}
	admin := e.adminConn("")
	if n := e.count(admin, `SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
		WHERE d.datname = $1 AND r.rolname = $2`, tn.DBName, tn.DBRole); n != 1 {
		t.Errorf("database %s owned by %s: %d, want 1", tn.DBName, tn.DBRole, n)
	}
	b, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}
	conn := e.tenantConnOf(tn) // the role logs in with the stored (newest) password
	if n := e.count(conn, `SELECT count(*) FROM product`); n == 0 {
		t.Errorf("no products")
	}
	if n := e.count(conn, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> current_user`); n != 0 {
		t.Errorf("%d relations not owned by the tenant role", n)
	}
	wantSteps(map[bool]string{true: provision.OpFork, false: provision.OpCreate}[tn.ForkOf != nil],
		len(provision.CreateSteps(tn.ForkOf != nil)))
	wantAudit("tenant.activate", 1)

	switch c.op {
	case provision.OpCreate, provision.OpFork:
		if len(versions) != 1 {
			t.Errorf("secret versions %v, want one", versions)
		}
		// Retry after a crash before the secrets step has no request to read.
		if wantStripe := how == "ensure" || c.step != provision.StepReserve; (b.StripeSecretKey == "sk_test_crash") != wantStripe {
			t.Errorf("stripe key set %v, want %v", b.StripeSecretKey != "", wantStripe)
		}
		wantAudit("tenant."+c.op, 1)
	case provision.OpRotate:
		if b.DBPassword == before.DBPassword || b.SessionKey == before.SessionKey || b.StripeSecretKey != "sk_test_crash" {
			t.Error("rotation did not replace password and session key, or lost other values")
		}
		if old, err := e.tenantConn(tn.DBName, tn.DBRole, before.DBPassword); err == nil {
			old.Close(ctx)
			t.Error("the password before the rotation still works")
		}
		// A version stored by a rotation that stopped before applying it
		// may stay behind the current one; it was never the role's.
		if len(versions) < 2 || len(versions) > 3 {
			t.Errorf("secret versions %v, want the created one and one or two of the rotation", versions)
		}
		// Stopped after its last step, the rotation was complete: running
		// it again rotates again.
		rotations := 1
		if c.step == provision.StepAnnounce && c.point == "" {
			rotations = 2
		}
		wantAudit("secrets.rotate", rotations)
		wantSteps(provision.OpRotate, 3)
	case provision.OpSecrets:
		if b.SMTPHost != *setIn.SMTPHost || b.SMTPPassword != *setIn.SMTPPassword || b.DBPassword != before.DBPassword {
			t.Error("bundle does not hold the set values, or lost the password")
		}
		if len(versions) != 2 {
			t.Errorf("secret versions %v, want the created one and the set one", versions)
		}
		wantAudit("secrets.set", 1)
		wantSteps(provision.OpSecrets, 2)
		for _, a := range entries {
			if a.Action == "secrets.set" && (!strings.Contains(string(a.After), `"smtp_host"`) || !strings.Contains(string(a.After), `"version": 2`)) {
				t.Errorf("secrets.set audit %s, want the changed fields and version 2", a.After)
			}
		}
	case provision.OpUpdate:
		if tn.DisplayName != *patch.DisplayName || tn.Settings.FromAddress != *patch.Settings.FromAddress {
			t.Errorf("name %q from %q after the update", tn.DisplayName, tn.Settings.FromAddress)
		}
		wantAudit("tenant.update", 1)
	}
	assertNoSecretsInAudit(t, e, b)
}

// TestCrashPointsAreAllTested runs every workflow once, recording where its
// hooks fire, and checks that crashPoints lists exactly those points.
func TestCrashPointsAreAllTested(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen = map[crash]bool{}
	)
	note := func(c crash) {
		mu.Lock()
		seen[c] = true
		mu.Unlock()
	}
	e := newEnv(t, func(o *provision.Options) {
		o.AfterStep = func(op, step string) error { note(crash{op, step, ""}); return nil }
		// A site deploy's own points have their test (TestSiteDeployCrashAndResume).
		o.InStep = func(_ context.Context, op, step, point string) error {
			if op != provision.OpSite {
				note(crash{op, step, point})
			}
			return nil
		}
	})
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "src"}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "copy", ForkOf: "src"}, "t"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RotateSecrets(ctx, "src", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetSecrets(ctx, "src", provision.SecretsInput{SMTPHost: ptr("smtp.src.test")}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Update(ctx, "src", provision.TenantPatch{Plan: ptr("pro")}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdateSettings(ctx, "src", provision.SettingsPatch{FromAddress: ptr("a@src.test")}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeploySite(ctx, "copy", siteBundle(t, "<h1>copy</h1>"), "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Delete(ctx, "copy", "t"); err != nil {
		t.Fatal(err)
	}
	listed := map[crash]bool{}
	for _, cs := range crashPoints {
		for _, c := range cs {
			listed[c] = true
		}
	}
	for c := range seen {
		if !listed[c] {
			t.Errorf("workflows stop at %s, which crashPoints does not test", c)
		}
	}
	for c := range listed {
		if !seen[c] {
			t.Errorf("crashPoints tests %s, where no workflow stops", c)
		}
	}
}

// TestFailedStepRetry makes a step fail for real (the database server's
// admin secret is missing) and checks the tenant is failed, not routed, and
// that Retry completes it once the cause is fixed.
func TestFailedStepRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	dsn, err := e.store.Get(ctx, registry.DBServerSecretName("default"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Delete(ctx, registry.DBServerSecretName("default")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "flaky"}, "t"); err == nil {
		t.Fatal("create without the server's admin secret succeeded")
	}
	tn, err := e.svc.Registry().Tenant(ctx, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	if tn.Status != registry.StatusFailed {
		t.Errorf("status %s, want failed", tn.Status)
	}
	steps, _ := e.svc.Registry().Steps(ctx, tn.ID, provision.OpCreate)
	var failed []string
	for _, s := range steps {
		if s.Status == "failed" {
			failed = append(failed, s.Step)
		}
	}
	if !slices.Equal(failed, []string{provision.StepDatabase}) {
		t.Errorf("failed steps %v, want [database]", failed)
	}
	if _, err := e.store.Put(ctx, registry.DBServerSecretName("default"), dsn); err != nil {
		t.Fatal(err)
	}
	tn, err = e.svc.Retry(ctx, "flaky", "t")
	if err != nil {
		t.Fatal(err)
	}
	if tn.Status != registry.StatusActive {
		t.Errorf("status %s, want active", tn.Status)
	}
}
