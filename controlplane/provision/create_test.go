package provision_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
)

func ptr[T any](v T) *T { return &v }

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	req := provision.CreateRequest{
		Slug: "acme-shop", DisplayName: "Acme Shop",
		Domains:  []string{"Shop.Acme.test", "localhost"},
		Origins:  []string{"http://localhost:8080"},
		Settings: directory.Settings{FrontendOrigin: "http://localhost:8080", FromAddress: "shop@acme.test"},
		Secrets:  provision.SecretsInput{StripeSecretKey: ptr("sk_test_acme"), SMTPPort: ptr(2525)},
	}
	tn, err := e.svc.Create(ctx, req, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if tn.Status != registry.StatusActive {
		t.Errorf("status %s, want active", tn.Status)
	}
	wantDomains := []string{"acme-shop.example.test", "localhost", "shop.acme.test"}
	if !slices.Equal(tn.Domains, wantDomains) {
		t.Errorf("domains %v, want %v", tn.Domains, wantDomains)
	}
	if !slices.Equal(tn.Origins, []string{"http://localhost:8080"}) {
		t.Errorf("origins %v", tn.Origins)
	}
	if want := e.prefix + "acme_shop"; tn.DBName != want || tn.DBRole != want {
		t.Errorf("db %s role %s, want %s", tn.DBName, tn.DBRole, want)
	}
	latest, _ := migrations.Latest(migrations.Tenant)
	if tn.SchemaVersion != latest || tn.LastMigrationStatus == nil || *tn.LastMigrationStatus != "ok" {
		t.Errorf("schema_version %d (status %v), want %d ok", tn.SchemaVersion, tn.LastMigrationStatus, latest)
	}
	if tn.DBServer == nil || *tn.DBServer != "default" {
		t.Errorf("db_server %v", tn.DBServer)
	}
	if tn.Settings.FromAddress != "shop@acme.test" {
		t.Errorf("settings %+v", tn.Settings)
	}

	// Secrets: generated password and key, the request's values, one version.
	b, err := secrets.LoadBundle(ctx, e.store, secrets.TenantSecretName("acme-shop"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.DBPassword) != 64 || len(b.SessionKey) != 44 || b.StripeSecretKey != "sk_test_acme" || b.SMTPPort != 2525 {
		t.Errorf("bundle: password %d chars, session key %d chars, stripe set %v, smtp port %d",
			len(b.DBPassword), len(b.SessionKey), b.StripeSecretKey != "", b.SMTPPort)
	}
	if vs, _ := e.store.Versions(ctx, tn.SecretsRef); len(vs) != 1 {
		t.Errorf("secret versions %v, want one", vs)
	}

	// The role: login, nothing more.
	admin := e.adminConn("")
	var super, createdb, createrole, login bool
	if err := admin.QueryRow(ctx, `SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1`, tn.DBRole).
		Scan(&super, &createdb, &createrole, &login); err != nil {
		t.Fatal(err)
	}
	if super || createdb || createrole || !login {
		t.Errorf("role: super %v createdb %v createrole %v login %v", super, createdb, createrole, login)
	}
	// Its password is stored as a SCRAM verifier with the provisioning's
	// iteration count (the login below proves it is the bundle's password).
	var verifier string
	if err := admin.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, tn.DBRole).Scan(&verifier); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("SCRAM-SHA-256$%d:", provision.SCRAMIterations); !strings.HasPrefix(verifier, want) {
		t.Errorf("verifier %.20q..., want it to start %q", verifier, want)
	}

	// The database: owned by the role, everything in it too, schema at the
	// newest version with reference data, readable with the role's password.
	conn := e.tenantConnOf(tn)
	if n := e.count(conn, `SELECT count(*) FROM pg_database WHERE datname = current_database() AND pg_get_userbyid(datdba) = current_user`); n != 1 {
		t.Errorf("database not owned by the tenant role")
	}
	if n := e.count(conn, `SELECT count(*) FROM pg_namespace WHERE nspname = 'public' AND pg_get_userbyid(nspowner) = current_user`); n != 1 {
		t.Errorf("schema public not owned by the tenant role")
	}
	if n := e.count(conn, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> current_user`); n != 0 {
		t.Errorf("%d relations in public not owned by the tenant role", n)
	}
	if n := e.count(conn, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r'`); n < 10 {
		t.Errorf("%d tables, want the tenant schema", n)
	}
	if n := e.count(conn, `SELECT max(version_id)::int FROM schema_migrations`); int64(n) != latest {
		t.Errorf("ledger at %d, want %d", n, latest)
	}
	if n := e.count(conn, `SELECT count(*) FROM product`); n == 0 {
		t.Errorf("no reference products")
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE scratch (id int)`); err != nil {
		t.Errorf("tenant role cannot create tables in its schema: %v", err)
	}
	if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE datname = $1 AND has_database_privilege('public', datname, 'CONNECT')`, tn.DBName); n != 0 {
		t.Errorf("PUBLIC may connect to the tenant database")
	}

	// Audit: the create and the activation, no secret value anywhere.
	rows, err := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: "acme-shop"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range rows {
		actions = append(actions, r.Action)
		if r.Actor != "alice" {
			t.Errorf("audit actor %q", r.Actor)
		}
	}
	if !slices.Contains(actions, "tenant.create") || !slices.Contains(actions, "tenant.activate") {
		t.Errorf("audit actions %v", actions)
	}
	assertNoSecretsInAudit(t, e, b)

	// Steps: all done.
	steps, err := e.svc.Registry().Steps(ctx, tn.ID, provision.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != len(provision.CreateSteps(false)) {
		t.Errorf("steps %+v", steps)
	}
	for _, s := range steps {
		if s.Status != "done" || s.Attempts != 1 {
			t.Errorf("step %s: %s after %d attempts", s.Step, s.Status, s.Attempts)
		}
	}
}

// assertNoSecretsInAudit fails if any secret value of b shows up in the audit log.
func assertNoSecretsInAudit(t *testing.T, e *env, b secrets.TenantBundle) {
	t.Helper()
	var dump string
	if err := e.pool.QueryRow(context.Background(), `SELECT COALESCE(string_agg(actor || action || COALESCE(before::text, '') || COALESCE(after::text, ''), '|'), '') FROM audit_log`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"db password": b.DBPassword, "session key": b.SessionKey,
		"stripe key": b.StripeSecretKey, "smtp password": b.SMTPPassword, "webhook secret": b.StripeWebhookSecret} {
		if v != "" && strings.Contains(dump, v) {
			t.Errorf("audit log holds the %s", name)
		}
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "taken", Domains: []string{"taken.test"}}, "t"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		req      provision.CreateRequest
		field    string // InvalidError field, or "" for ErrConflict
		conflict bool
	}{
		{"slug uppercase", provision.CreateRequest{Slug: "Acme"}, "slug", false},
		{"slug too short", provision.CreateRequest{Slug: "a"}, "slug", false},
		{"slug underscore", provision.CreateRequest{Slug: "a_b"}, "slug", false},
		{"slug trailing dash", provision.CreateRequest{Slug: "ab-"}, "slug", false},
		{"hostname with port", provision.CreateRequest{Slug: "h1", Domains: []string{"shop.test:8080"}}, "domains", false},
		{"hostname with scheme", provision.CreateRequest{Slug: "h2", Domains: []string{"http://shop.test"}}, "domains", false},
		{"hostname single label", provision.CreateRequest{Slug: "h3", Domains: []string{"intranet"}}, "domains", false},
		{"origin with path", provision.CreateRequest{Slug: "o1", Origins: []string{"http://localhost:8080/"}}, "origins", false},
		{"origin ftp", provision.CreateRequest{Slug: "o2", Origins: []string{"ftp://shop.test"}}, "origins", false},
		{"settings origin", provision.CreateRequest{Slug: "s1", Settings: directory.Settings{FrontendOrigin: "localhost"}}, "settings.frontend_origin", false},
		{"rate limit", provision.CreateRequest{Slug: "s2", Settings: directory.Settings{RateLimits: map[string]string{"login": "ten"}}}, "settings.rate_limits.login", false},
		{"stripe key", provision.CreateRequest{Slug: "s3", Secrets: provision.SecretsInput{StripeSecretKey: ptr("pk_wrong")}}, "secrets.stripe_secret_key", false},
		{"fork of missing", provision.CreateRequest{Slug: "f1", ForkOf: "nobody"}, "fork_of", false},
		{"duplicate slug", provision.CreateRequest{Slug: "taken"}, "", true},
		{"duplicate domain", provision.CreateRequest{Slug: "other", Domains: []string{"TAKEN.test"}}, "", true},
		{"duplicate default domain", provision.CreateRequest{Slug: "other2", Domains: []string{"taken.example.test"}}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Create(ctx, c.req, "t")
			if c.conflict {
				if !errors.Is(err, registry.ErrConflict) {
					t.Fatalf("err %v, want ErrConflict", err)
				}
			} else {
				var inv *registry.InvalidError
				if !errors.As(err, &inv) || inv.Field != c.field {
					t.Fatalf("err %v, want InvalidError on %s", err, c.field)
				}
			}
			if c.req.Slug != "taken" {
				if _, err := e.svc.Registry().Tenant(ctx, c.req.Slug); !errors.Is(err, registry.ErrNotFound) {
					t.Errorf("a rejected request left tenant %s behind (%v)", c.req.Slug, err)
				}
			}
		})
	}
}

// TestReserve reserves a tenant (row, domains, secrets from the request)
// without creating its database, refuses bad input and taken names before
// writing anything, and lets Retry finish the create.
func TestReserve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	tn, err := e.svc.Reserve(ctx, provision.CreateRequest{Slug: "held", Domains: []string{"held.test"},
		Secrets: provision.SecretsInput{StripeSecretKey: ptr("sk_test_held")}}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if tn.Status != registry.StatusProvisioning || !slices.Equal(tn.Domains, []string{"held.example.test", "held.test"}) {
		t.Fatalf("reserved %+v", tn)
	}
	steps, err := e.svc.Registry().Steps(ctx, tn.ID, provision.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	var done []string
	for _, s := range steps {
		if s.Status == "done" {
			done = append(done, s.Step)
		}
	}
	if !slices.Equal(done, []string{provision.StepReserve, provision.StepSecrets}) || len(steps) != 2 {
		t.Errorf("steps %+v, want reserve and secrets done", steps)
	}
	if b, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef); err != nil || b.StripeSecretKey != "sk_test_held" || b.DBPassword == "" {
		t.Errorf("bundle after reserve: stripe set %v, password set %v (%v)", b.StripeSecretKey != "", b.DBPassword != "", err)
	}
	if n := e.count(e.adminConn(""), `SELECT count(*) FROM pg_database WHERE datname = $1`, tn.DBName); n != 0 {
		t.Errorf("reserve created the database")
	}

	cases := []struct {
		name  string
		req   provision.CreateRequest
		check func(error) bool
	}{
		{"taken slug", provision.CreateRequest{Slug: "held"}, func(err error) bool { return errors.Is(err, registry.ErrConflict) }},
		{"taken domain", provision.CreateRequest{Slug: "other", Domains: []string{"held.test"}}, func(err error) bool { return errors.Is(err, registry.ErrConflict) }},
		{"bad slug", provision.CreateRequest{Slug: "Bad"}, func(err error) bool {
			var inv *registry.InvalidError
			return errors.As(err, &inv) && inv.Field == "slug"
		}},
		{"fork of nothing", provision.CreateRequest{Slug: "other2", ForkOf: "nobody"}, func(err error) bool {
			var inv *registry.InvalidError
			return errors.As(err, &inv) && inv.Field == "fork_of"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.svc.Reserve(ctx, c.req, "ops")
			if !c.check(err) || got.ID != 0 {
				t.Fatalf("reserve: %+v, %v", got, err)
			}
		})
	}
	if _, err := e.svc.Registry().Tenant(ctx, "other"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("a refused reserve left a tenant (%v)", err)
	}

	tn, err = e.svc.Retry(ctx, "held", "ops")
	if err != nil {
		t.Fatal(err)
	}
	if tn.Status != registry.StatusActive {
		t.Fatalf("after retry: %s", tn.Status)
	}
	if n := e.count(e.tenantConnOf(tn), `SELECT count(*) FROM product`); n == 0 {
		t.Error("no products after the retry")
	}
	if vs, _ := e.store.Versions(ctx, tn.SecretsRef); len(vs) != 1 {
		t.Errorf("secret versions %v, want one", vs)
	}
}
