package provision_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
)

var errCrash = errors.New("simulated crash")

// crashAfter returns an AfterStep hook that fails once, after op/step.
func crashAfter(op, step string) func(string, string) error {
	fired := false
	return func(o, s string) error {
		if o == op && s == step && !fired {
			fired = true
			return errCrash
		}
		return nil
	}
}

// TestCrashAndResume crashes a create after each step in turn and checks
// that Retry (or Ensure with the same request) converges on one active
// tenant: one database, one role, one secret version, one set of domains.
func TestCrashAndResume(t *testing.T) {
	t.Parallel()
	for _, fork := range []bool{false, true} {
		op := provision.OpCreate
		if fork {
			op = provision.OpFork
		}
		for i, step := range provision.CreateSteps(fork) {
			for _, how := range []string{"retry", "ensure"} {
				t.Run(fmt.Sprintf("%s/%s/%s", op, step, how), func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, nil)
					ctx := context.Background()
					if fork {
						if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "origin"}, "t"); err != nil {
							t.Fatal(err)
						}
					}
					crashing := e.with(func(o *provision.Options) { o.AfterStep = crashAfter(op, step) })
					req := provision.CreateRequest{Slug: fmt.Sprintf("crash-%d", i), Domains: []string{"shop.crash.test"},
						Origins: []string{"https://shop.crash.test"}, Secrets: provision.SecretsInput{StripeSecretKey: ptr("sk_test_crash")}}
					if fork {
						req.ForkOf = "origin"
					}
					_, err := crashing.Create(ctx, req, "t")
					if !errors.Is(err, errCrash) {
						t.Fatalf("create: %v, want the simulated crash", err)
					}
					tn, err := e.svc.Registry().Tenant(ctx, req.Slug)
					if err != nil {
						t.Fatal(err)
					}
					if want := registry.StatusProvisioning; step != provision.StepActivate && tn.Status != want {
						t.Errorf("after the crash: status %s, want %s", tn.Status, want)
					}
					if how == "retry" {
						tn, err = e.svc.Retry(ctx, req.Slug, "t")
						if step == provision.StepActivate {
							// Already active: nothing to retry.
							if !errors.Is(err, registry.ErrConflict) {
								t.Fatalf("retry of an active tenant: %v, want ErrConflict", err)
							}
							tn, err = e.svc.Registry().Tenant(ctx, req.Slug)
						}
					} else {
						tn, err = e.svc.Ensure(ctx, req, "t")
					}
					if err != nil {
						t.Fatal(err)
					}
					if tn.Status != registry.StatusActive {
						t.Fatalf("status %s, want active", tn.Status)
					}
					admin := e.adminConn("")
					if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE datname = $1`, tn.DBName); n != 1 {
						t.Errorf("%d databases", n)
					}
					if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE left(datname, length($1)) = $1`, e.prefix); n != 2+btoi(fork) {
						t.Errorf("%d databases with the prefix, want the tenants' and the template", n)
					}
					if n := e.count(admin, `SELECT count(*) FROM pg_roles WHERE left(rolname, length($1)) = $1`, e.prefix); n != 1+btoi(fork) {
						t.Errorf("%d roles with the prefix", n)
					}
					vs, err := e.store.Versions(ctx, secrets.TenantSecretName(req.Slug))
					if err != nil || len(vs) != 1 {
						t.Errorf("secret versions %v (%v), want one", vs, err)
					}
					b, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef)
					if err != nil {
						t.Fatal(err)
					}
					// Retry after a crash before the secrets step has no request to read.
					if wantStripe := how == "ensure" || step != provision.StepReserve; (b.StripeSecretKey == "sk_test_crash") != wantStripe {
						t.Errorf("stripe key set %v, want %v", b.StripeSecretKey != "", wantStripe)
					}
					want := []string{req.Slug + ".example.test", "shop.crash.test"}
					if !slices.Equal(tn.Domains, want) {
						t.Errorf("domains %v, want %v", tn.Domains, want)
					}
					conn := e.tenantConnOf(tn) // the stored password works
					if n := e.count(conn, `SELECT count(*) FROM product`); n == 0 {
						t.Errorf("no products")
					}
					steps, err := e.svc.Registry().Steps(ctx, tn.ID, op)
					if err != nil {
						t.Fatal(err)
					}
					if len(steps) != len(provision.CreateSteps(fork)) {
						t.Errorf("%d step records, want %d", len(steps), len(provision.CreateSteps(fork)))
					}
					for _, s := range steps {
						if s.Status != "done" {
							t.Errorf("step %s is %s", s.Step, s.Status)
						}
					}
				})
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
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
