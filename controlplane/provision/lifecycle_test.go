package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

func TestIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	a, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "tenant-a"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "tenant-b"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	e.tenantConnOf(a) // its own database opens
	bundleA, err := secrets.LoadBundle(ctx, e.store, a.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.tenantConn(b.DBName, a.DBRole, bundleA.DBPassword)
	if err == nil {
		conn.Close(ctx)
		t.Fatal("tenant a's role connected to tenant b's database")
	}
	if sqlstate(err) != "42501" {
		t.Fatalf("connect to b as a: %v, want SQLSTATE 42501", err)
	}
	// Nor to the template, nor with a wrong password to its own.
	if _, err := e.tenantConn(e.svc.TemplateName(), a.DBRole, bundleA.DBPassword); err == nil {
		t.Error("tenant role connected to the template")
	}
	if _, err := e.tenantConn(a.DBName, a.DBRole, "wrong"); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestFork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	src, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "source", Domains: []string{"source.test"},
		Origins:  []string{"http://localhost:8080"},
		Settings: directory.Settings{FrontendOrigin: "http://localhost:8080", FromAddress: "hi@source.test", RateLimits: map[string]string{"login": "5/m"}}}, "t")
	if err != nil {
		t.Fatal(err)
	}
	sc := e.tenantConnOf(src)
	// The source's own catalog changes, and rows that must never travel.
	for _, q := range []string{
		`INSERT INTO product (id, title, title_url, identifier, headline) VALUES (500, 'Forked Thing', 'ForkedThing', 'forked-thing', 'x')`,
		`INSERT INTO sku (id, sku_type_id, sku_inventory_id, color, size, description) VALUES (500, (SELECT min(id) FROM sku_type), (SELECT min(id) FROM sku_inventory), 'red', 'L', 'forked sku')`,
		`INSERT INTO sku_price (sku_id, price) VALUES (500, 12.34)`,
		`INSERT INTO product_sku (product_id, sku_id) VALUES (500, 500)`,
		`UPDATE shipping_method SET shipping_cost = 9.99`,
		`INSERT INTO order_configuration (key, string_value) VALUES ('fork_marker', 'yes')`,
		`INSERT INTO account (id, username, password_hash, email) VALUES (1, 'member1', 'x', 'm@source.test')`,
		`INSERT INTO member (account_id) VALUES (1)`,
		`INSERT INTO prospect (email) VALUES ('p@source.test')`,
		`INSERT INTO customer_order (identifier, member_id) VALUES ('ORDER1', (SELECT id FROM member))`,
		`INSERT INTO pageview (url) VALUES ('/')`,
	} {
		if _, err := sc.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	fork, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "forked", ForkOf: "source", Origins: []string{"https://forked.test"}}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if fork.ForkOf == nil || *fork.ForkOf != "source" {
		t.Errorf("fork_of %v", fork.ForkOf)
	}
	if !slices.Equal(fork.Domains, []string{"forked.example.test"}) {
		t.Errorf("domains %v: a fork takes no domain of its source", fork.Domains)
	}
	// The source's origins belong to its frontend: the fork trusts only its own.
	if !slices.Equal(fork.Origins, []string{"https://forked.test"}) {
		t.Errorf("origins %v, want only the request's", fork.Origins)
	}
	if fork.Settings.FromAddress != "hi@source.test" || fork.Settings.RateLimits["login"] != "5/m" ||
		fork.Settings.FrontendOrigin != "http://localhost:8080" {
		t.Errorf("settings %+v, want the source's", fork.Settings)
	}
	// A frontend_origin in the request wins over the source's; no origins
	// in the request means none at all.
	own, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "forked-own", ForkOf: "source",
		Settings: directory.Settings{FrontendOrigin: "https://own.test"}}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Origins) != 0 || own.Settings.FrontendOrigin != "https://own.test" || own.Settings.FromAddress != "hi@source.test" {
		t.Errorf("fork with its own frontend: origins %v settings %+v", own.Origins, own.Settings)
	}
	fc := e.tenantConnOf(fork)
	for _, table := range provision.ForkTables {
		q := "SELECT count(*) FROM " + ident(table)
		if s, f := e.count(sc, q), e.count(fc, q); s != f {
			t.Errorf("%s: %d rows in the source, %d in the fork", table, s, f)
		}
	}
	if n := e.count(fc, `SELECT count(*) FROM product p JOIN product_sku ps ON ps.product_id = p.id JOIN sku_price sp ON sp.sku_id = ps.sku_id
		WHERE p.id = 500 AND sp.price = 12.34`); n != 1 {
		t.Error("the source's product, sku and price were not copied with their ids")
	}
	if n := e.count(fc, `SELECT count(*) FROM shipping_method WHERE shipping_cost <> 9.99`); n != 0 {
		t.Error("shipping methods not copied")
	}
	if n := e.count(fc, `SELECT count(*) FROM order_configuration WHERE key = 'fork_marker'`); n != 1 {
		t.Error("order configuration not copied")
	}
	for _, table := range []string{"account", "member", "prospect", "customer_order", "pageview", "cart"} {
		if n := e.count(fc, "SELECT count(*) FROM "+table); n != 0 {
			t.Errorf("%s: %d rows copied into the fork", table, n)
		}
	}
	// Sequences moved past the copied ids.
	var id int64
	if err := fc.QueryRow(ctx, `INSERT INTO product (title, title_url, identifier) VALUES ('New', 'New', 'new') RETURNING id`).Scan(&id); err != nil {
		t.Fatalf("insert into the fork's catalog: %v", err)
	}
	if id <= 500 {
		t.Errorf("new product id %d, want past the copied 500", id)
	}
	// Forking a tenant that is not running is refused.
	if _, err := e.svc.Delete(ctx, "source", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "late", ForkOf: "source"}, "t"); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("fork of a deleted tenant: %v, want ErrConflict", err)
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "cycle", Domains: []string{"cycle.test"}}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		do     func() (registry.Tenant, error)
		status tenancy.Status // want, or "" for ErrConflict
	}{
		{"resume active", func() (registry.Tenant, error) { return e.svc.Resume(ctx, "cycle", "ops") }, ""},
		{"suspend", func() (registry.Tenant, error) { return e.svc.Suspend(ctx, "cycle", "ops") }, registry.StatusSuspended},
		{"suspend suspended", func() (registry.Tenant, error) { return e.svc.Suspend(ctx, "cycle", "ops") }, ""},
		{"retry suspended", func() (registry.Tenant, error) { return e.svc.Retry(ctx, "cycle", "ops") }, ""},
		{"resume", func() (registry.Tenant, error) { return e.svc.Resume(ctx, "cycle", "ops") }, registry.StatusActive},
		{"suspend again", func() (registry.Tenant, error) { return e.svc.Suspend(ctx, "cycle", "ops") }, registry.StatusSuspended},
		{"delete", func() (registry.Tenant, error) { return e.svc.Delete(ctx, "cycle", "ops") }, registry.StatusDeleted},
		{"delete deleted", func() (registry.Tenant, error) { return e.svc.Delete(ctx, "cycle", "ops") }, registry.StatusDeleted},
		{"resume deleted", func() (registry.Tenant, error) { return e.svc.Resume(ctx, "cycle", "ops") }, ""},
		{"suspend deleted", func() (registry.Tenant, error) { return e.svc.Suspend(ctx, "cycle", "ops") }, ""},
		{"ensure deleted", func() (registry.Tenant, error) {
			return e.svc.Ensure(ctx, provision.CreateRequest{Slug: "cycle"}, "ops")
		}, ""},
	}
	for _, s := range steps { // in order: each depends on the one before
		t.Run(s.name, func(t *testing.T) {
			got, err := s.do()
			if s.status == "" {
				if !errors.Is(err, registry.ErrConflict) {
					t.Fatalf("err %v, want ErrConflict", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != s.status {
				t.Errorf("status %s, want %s", got.Status, s.status)
			}
		})
	}
	if _, err := e.svc.Suspend(ctx, "nobody", "ops"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("suspend unknown: %v, want ErrNotFound", err)
	}

	// After delete: no database, no role, no secrets, domains free, the row
	// and the audit trail kept.
	admin := e.adminConn("")
	if n := e.count(admin, `SELECT count(*) FROM pg_database WHERE datname = $1`, tn.DBName); n != 0 {
		t.Error("database still there")
	}
	if n := e.count(admin, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, tn.DBRole); n != 0 {
		t.Error("role still there")
	}
	if vs, _ := e.store.Versions(ctx, tn.SecretsRef); len(vs) != 0 {
		t.Errorf("secret versions %v after delete", vs)
	}
	if n := e.count(e.pool, `SELECT count(*) FROM domains WHERE tenant_id = $1`, tn.ID); n != 0 {
		t.Error("domains not released")
	}
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "heir", Domains: []string{"cycle.test"}}, "ops"); err != nil {
		t.Errorf("a released domain cannot be taken: %v", err)
	}
	audit, err := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: "cycle"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	want := []string{"tenant.deleted", "tenant.delete", "tenant.suspend", "tenant.resume", "tenant.suspend", "tenant.activate", "tenant.create"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit %v, want %v", actions, want)
	}
}

func TestDomainsOriginsSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "one"}, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "two", Domains: []string{"two.test"}}, "ops"); err != nil {
		t.Fatal(err)
	}
	isInvalid := func(field string) func(error) bool {
		return func(err error) bool {
			var inv *registry.InvalidError
			return errors.As(err, &inv) && inv.Field == field
		}
	}
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	ok := func(err error) bool { return err == nil }
	cases := []struct {
		name string
		do   func() error
		want func(error) bool
	}{
		{"add domain", func() error { return e.svc.AddDomain(ctx, "one", "WWW.One.test", "ops") }, ok},
		{"add domain again", func() error { return e.svc.AddDomain(ctx, "one", "www.one.test", "ops") }, ok},
		{"add localhost", func() error { return e.svc.AddDomain(ctx, "one", "localhost", "ops") }, ok},
		{"add other's domain", func() error { return e.svc.AddDomain(ctx, "one", "two.test", "ops") }, is(registry.ErrConflict)},
		{"add domain with port", func() error { return e.svc.AddDomain(ctx, "one", "one.test:80", "ops") }, isInvalid("hostname")},
		{"add bad domain", func() error { return e.svc.AddDomain(ctx, "one", "-bad-.test", "ops") }, isInvalid("hostname")},
		{"add domain to unknown", func() error { return e.svc.AddDomain(ctx, "nobody", "x.test", "ops") }, is(registry.ErrNotFound)},
		{"remove default domain", func() error { return e.svc.RemoveDomain(ctx, "one", "one.example.test", "ops") }, is(registry.ErrConflict)},
		{"remove unknown domain", func() error { return e.svc.RemoveDomain(ctx, "one", "two.test", "ops") }, is(registry.ErrNotFound)},
		{"remove domain", func() error { return e.svc.RemoveDomain(ctx, "one", "localhost", "ops") }, ok},
		{"add origin", func() error { return e.svc.AddOrigin(ctx, "one", "HTTP://LocalHost:3000", "ops") }, ok},
		{"add origin with path", func() error { return e.svc.AddOrigin(ctx, "one", "http://localhost:3000/app", "ops") }, isInvalid("origin")},
		{"add origin bad port", func() error { return e.svc.AddOrigin(ctx, "one", "http://localhost:99999", "ops") }, isInvalid("origin")},
		{"add origin no scheme", func() error { return e.svc.AddOrigin(ctx, "one", "localhost:3000", "ops") }, isInvalid("origin")},
		{"remove unknown origin", func() error { return e.svc.RemoveOrigin(ctx, "one", "https://nope.test", "ops") }, is(registry.ErrNotFound)},
		{"add second origin", func() error { return e.svc.AddOrigin(ctx, "one", "https://one.test", "ops") }, ok},
		{"remove origin", func() error { return e.svc.RemoveOrigin(ctx, "one", "https://one.test", "ops") }, ok},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(); !c.want(err) {
				t.Errorf("unexpected result: %v", err)
			}
		})
	}
	tn, err := e.svc.Registry().Tenant(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"one.example.test", "www.one.test"}; !slices.Equal(tn.Domains, want) {
		t.Errorf("domains %v, want %v", tn.Domains, want)
	}
	if want := []string{"http://localhost:3000"}; !slices.Equal(tn.Origins, want) {
		t.Errorf("origins %v, want %v", tn.Origins, want)
	}

	got, err := e.svc.UpdateSettings(ctx, "one", provision.SettingsPatch{FromAddress: ptr("shop@one.test"), RateLimits: map[string]string{"login": "10/h"}}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	got, err = e.svc.UpdateSettings(ctx, "one", provision.SettingsPatch{FrontendOrigin: ptr("http://localhost:3000"), RateLimits: map[string]string{"chat": "off"}}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	want := directory.Settings{FrontendOrigin: "http://localhost:3000", FromAddress: "shop@one.test", RateLimits: map[string]string{"login": "10/h", "chat": "off"}}
	if got.Settings.FrontendOrigin != want.FrontendOrigin || got.Settings.FromAddress != want.FromAddress ||
		len(got.Settings.RateLimits) != 2 || got.Settings.RateLimits["login"] != "10/h" {
		t.Errorf("settings %+v, want %+v", got.Settings, want)
	}
	var inv *registry.InvalidError
	if _, err := e.svc.UpdateSettings(ctx, "one", provision.SettingsPatch{RateLimits: map[string]string{"login": "lots"}}, "ops"); !errors.As(err, &inv) {
		t.Errorf("bad rate limit: %v, want InvalidError", err)
	}

	// Every change above is in the audit log, by its actor.
	audit, err := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: "one", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, a := range audit {
		counts[a.Action]++
	}
	for action, n := range map[string]int{"domain.add": 3, "domain.remove": 1, "origin.add": 2, "origin.remove": 1, "settings.update": 2} {
		if counts[action] != n {
			t.Errorf("%d %s audit entries, want %d", counts[action], action, n)
		}
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *provision.Options) { o.DevStripeAPIBase = "http://127.0.0.1:12111" })
	ctx := context.Background()
	tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "vault"}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.svc.SecretsStatus(ctx, "vault")
	if err != nil {
		t.Fatal(err)
	}
	if !st.DBPassword || !st.SessionKey || !st.StripeSecretKey || !st.StripePublishableKey || st.SMTPPassword || st.Version != 1 {
		t.Errorf("status after create %+v (dev mode gives test Stripe keys)", st)
	}
	st, err = e.svc.SetSecrets(ctx, "vault", provision.SecretsInput{SMTPHost: ptr("smtp.vault.test"), SMTPPort: ptr(587), SMTPPassword: ptr("hunter2-smtp")}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if !st.SMTPHost || !st.SMTPPort || !st.SMTPPassword || st.Version != 2 {
		t.Errorf("status after set %+v", st)
	}
	// The same values again store nothing new.
	if st, err = e.svc.SetSecrets(ctx, "vault", provision.SecretsInput{SMTPPort: ptr(587)}, "ops"); err != nil || st.Version != 2 {
		t.Errorf("unchanged set: version %d, %v", st.Version, err)
	}
	var inv *registry.InvalidError
	if _, err := e.svc.SetSecrets(ctx, "vault", provision.SecretsInput{StripeWebhookSecret: ptr("nope")}, "ops"); !errors.As(err, &inv) || inv.Field != "secrets.stripe_webhook_secret" {
		t.Errorf("bad webhook secret: %v", err)
	} else if strings.Contains(err.Error(), "nope") {
		t.Error("the error quotes the value")
	}

	before, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}
	conn := e.tenantConnOf(tn) // a session opened before the rotation
	gen := func() time.Time {
		got, err := e.svc.Registry().Tenant(ctx, "vault")
		if err != nil {
			t.Fatal(err)
		}
		return got.UpdatedAt
	}
	genBefore := gen()
	if err := e.svc.RotateSecrets(ctx, "vault", "ops"); err != nil {
		t.Fatal(err)
	}
	// The data plane drops cached secrets when a tenant's generation moves.
	if !gen().After(genBefore) {
		t.Error("rotation left the tenant's updated_at (its generation) unchanged")
	}
	after, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}
	if after.DBPassword == before.DBPassword || after.SessionKey == before.SessionKey || after.SMTPPassword != "hunter2-smtp" {
		t.Error("rotation did not replace password and session key, or lost other values")
	}
	// The replaced key is kept, so what it signed or sealed still verifies.
	if len(after.PreviousSessionKeys) != 1 || after.PreviousSessionKeys[0] != before.SessionKey {
		t.Errorf("previous session keys after one rotation: %d kept, want the replaced one", len(after.PreviousSessionKeys))
	}
	if _, err := e.tenantConn(tn.DBName, tn.DBRole, before.DBPassword); err == nil {
		t.Error("the old password still works")
	}
	e.tenantConnOf(tn) // the new one does
	if err := conn.Ping(ctx); err != nil {
		t.Errorf("an open session died with the rotation: %v", err)
	}
	assertNoSecretsInAudit(t, e, before)
	assertNoSecretsInAudit(t, e, after)
}

// TestNotify listens on its own connection and sees tenant_changed for the
// tenant when its activation commits and when it is suspended.
func TestNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	listener, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN tenant_changed"); err != nil {
		t.Fatal(err)
	}
	// Just before activation, drop the notifications of the earlier steps.
	svc := e.with(func(o *provision.Options) {
		o.AfterStep = func(op, step string) error {
			if step == provision.StepMigrate {
				drain(listener.Conn())
			}
			return nil
		}
	})
	tn, err := svc.Create(ctx, provision.CreateRequest{Slug: "loud"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	waitNotify(t, listener.Conn(), tn.ID)
	drain(listener.Conn())
	if _, err := e.svc.Suspend(ctx, "loud", "t"); err != nil {
		t.Fatal(err)
	}
	waitNotify(t, listener.Conn(), tn.ID)
}

// drain discards the notifications already received.
func drain(conn *pgx.Conn) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := conn.WaitForNotification(ctx)
		cancel()
		if err != nil {
			return
		}
	}
}

// waitNotify waits for a tenant_changed notification naming tenant id.
func waitNotify(t *testing.T, conn *pgx.Conn, id int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("no tenant_changed for tenant %d: %v", id, err)
		}
		if n.Channel == "tenant_changed" && n.Payload == strconv.FormatInt(id, 10) {
			return
		}
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "patchy", DisplayName: "Patchy"}, "ops"); err != nil {
		t.Fatal(err)
	}
	isInvalid := func(field string) func(error) bool {
		return func(err error) bool {
			var inv *registry.InvalidError
			return errors.As(err, &inv) && inv.Field == field
		}
	}
	ok := func(err error) bool { return err == nil }
	cases := []struct {
		name        string
		slug        string
		patch       provision.TenantPatch
		want        func(error) bool
		name2, plan string // the tenant's name and plan afterwards
	}{
		{"name", "patchy", provision.TenantPatch{DisplayName: ptr(" Patchy Two ")}, ok, "Patchy Two", "standard"},
		{"plan", "patchy", provision.TenantPatch{Plan: ptr("pro")}, ok, "Patchy Two", "pro"},
		{"both with settings", "patchy", provision.TenantPatch{DisplayName: ptr("P3"), Plan: ptr("business"),
			Settings: &provision.SettingsPatch{FromAddress: ptr("shop@patchy.test")}}, ok, "P3", "business"},
		{"empty patch", "patchy", provision.TenantPatch{}, isInvalid(""), "P3", "business"},
		{"blank name", "patchy", provision.TenantPatch{DisplayName: ptr("   ")}, isInvalid("display_name"), "P3", "business"},
		{"long name", "patchy", provision.TenantPatch{DisplayName: ptr(strings.Repeat("n", 201))}, isInvalid("display_name"), "P3", "business"},
		{"unknown plan", "patchy", provision.TenantPatch{Plan: ptr("gold")}, isInvalid("plan"), "P3", "business"},
		{"bad plan", "patchy", provision.TenantPatch{Plan: ptr("Gold!")}, isInvalid("plan"), "P3", "business"},
		{"bad settings roll back the name", "patchy", provision.TenantPatch{DisplayName: ptr("Never"),
			Settings: &provision.SettingsPatch{RateLimits: map[string]string{"login": "lots"}}}, isInvalid("settings.rate_limits.login"), "P3", "business"},
		{"unknown tenant", "nobody", provision.TenantPatch{Plan: ptr("business")}, func(err error) bool { return errors.Is(err, registry.ErrNotFound) }, "P3", "business"},
	}
	for _, c := range cases { // in order: each starts from the one before
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.svc.Update(ctx, c.slug, c.patch, "ops"); !c.want(err) {
				t.Fatalf("unexpected result: %v", err)
			}
			tn, err := e.svc.Registry().Tenant(ctx, "patchy")
			if err != nil {
				t.Fatal(err)
			}
			if tn.DisplayName != c.name2 || tn.Plan != c.plan {
				t.Errorf("name %q plan %q, want %q %q", tn.DisplayName, tn.Plan, c.name2, c.plan)
			}
		})
	}
	tn, _ := e.svc.Registry().Tenant(ctx, "patchy")
	if tn.Settings.FromAddress != "shop@patchy.test" {
		t.Errorf("settings %+v", tn.Settings)
	}
	audit, err := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: "patchy"})
	if err != nil {
		t.Fatal(err)
	}
	var updates []registry.AuditEntry
	for _, a := range audit {
		if a.Action == "tenant.update" {
			updates = append(updates, a)
		}
	}
	if len(updates) != 3 {
		t.Fatalf("%d tenant.update entries, want 3", len(updates))
	}
	var before, after registry.Tenant
	if err := json.Unmarshal(updates[2].Before, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(updates[2].After, &after); err != nil {
		t.Fatal(err)
	}
	if before.DisplayName != "Patchy" || after.DisplayName != "Patchy Two" {
		t.Errorf("first update audit: name %q -> %q", before.DisplayName, after.DisplayName)
	}
	if _, err := e.svc.Delete(ctx, "patchy", "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Update(ctx, "patchy", provision.TenantPatch{Plan: ptr("free")}, "ops"); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("update of a deleted tenant: %v, want ErrConflict", err)
	}
}
