package directory_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/tenancy"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Every status a tenant can have routes as its tenancy class says: a new
// status is answered by the class it was given, never by accident.
func TestEveryStatusRoutesByItsClass(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Platform)
	want := map[tenancy.Routing]directory.Result{
		tenancy.Serve: directory.Found, tenancy.Unavailable: directory.Suspended, tenancy.Gone: directory.Gone,
	}
	for _, st := range tenancy.Statuses() {
		directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "s-" + string(st), Status: st})
	}
	d := directory.New(directory.Options{DB: db, BaseDomain: "swa.test", Log: quietLog()})
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, st := range tenancy.Statuses() {
		res, ok := want[st.Routing()]
		if !ok {
			t.Errorf("status %q is routed as %v, which platform/directory/directory.go (resultOf) has no result for", st, st.Routing())
			continue
		}
		tn, got := d.Lookup("s-" + string(st) + ".swa.test")
		if got != res || tn == nil || tn.Status != st || tn.Serving() != (res == directory.Found) {
			t.Errorf("status %q: Lookup = %v (tenant %+v), want %v", st, got, tn, res)
		}
	}
	// A status this binary does not know (written by a newer control plane)
	// is refused, not served.
	if got := directory.ResultOf("no-such-status"); got != directory.Gone {
		t.Errorf("unknown status: result %v, want gone", got)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Platform)
	srv := directorytest.AddServer(t, db, "main", "db.internal", 6543)
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme", Server: srv,
		Domains: []string{"shop.acme.test", "www.acme.test"}, Origins: []string{"https://www.acme.test"},
		Settings: directory.Settings{CookieDomain: ".acme.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "sleepy", Status: "suspended", Domains: []string{"sleepy.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "gone", Status: "deleted", Domains: []string{"gone.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "going", Status: "deleting"})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "newbie", Status: "provisioning"})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "broken", Status: "failed"})
	// A custom domain that looks like another tenant's slug host wins.
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "squatter", Domains: []string{"acme2.swa.test"}})
	directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme2"})

	d := directory.New(directory.Options{DB: db, BaseDomain: "SWA.test", Log: quietLog()})
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host   string
		slug   string
		result directory.Result
	}{
		{"shop.acme.test", "acme", directory.Found},
		{"www.acme.test", "acme", directory.Found},
		{"SHOP.Acme.TEST", "acme", directory.Found},
		{"shop.acme.test:8443", "acme", directory.Found},
		{"shop.acme.test.", "acme", directory.Found},
		{"acme.swa.test", "acme", directory.Found},
		{"acme.swa.test:8000", "acme", directory.Found},
		{"ACME.SWA.TEST", "acme", directory.Found},
		{"acme2.swa.test", "squatter", directory.Found},
		{"sleepy.test", "sleepy", directory.Suspended},
		{"sleepy.swa.test", "sleepy", directory.Suspended},
		{"gone.test", "gone", directory.Gone},
		{"going.swa.test", "going", directory.Gone},
		{"newbie.swa.test", "newbie", directory.Gone},
		{"broken.swa.test", "broken", directory.Gone},
		{"nobody.swa.test", "", directory.Unknown},
		{"x.acme.swa.test", "", directory.Unknown},
		{"swa.test", "", directory.Unknown},
		{".swa.test", "", directory.Unknown},
		{"acme.test", "", directory.Unknown},
		{"acme", "", directory.Unknown},
		{"", "", directory.Unknown},
		{"[::1]:8000", "", directory.Unknown},
		{"127.0.0.1", "", directory.Unknown},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			tn, res := d.Lookup(tc.host)
			if res != tc.result {
				t.Fatalf("Lookup(%q) result = %v, want %v", tc.host, res, tc.result)
			}
			slug := ""
			if tn != nil {
				slug = tn.Slug
			}
			if slug != tc.slug {
				t.Fatalf("Lookup(%q) tenant = %q, want %q", tc.host, slug, tc.slug)
			}
		})
	}

	acme := d.BySlug("acme")
	if acme == nil || d.ByID(acme.ID) != acme {
		t.Fatalf("BySlug/ByID disagree: %+v", acme)
	}
	want := []string{"shop.acme.test", "www.acme.test", "acme.swa.test"}
	if fmt.Sprint(acme.Hosts) != fmt.Sprint(want) {
		t.Errorf("Hosts = %v, want %v (default first, slug host last)", acme.Hosts, want)
	}
	if acme.DBHost != "db.internal" || acme.DBPort != 6543 || acme.DBName != "t_acme" || acme.DBRole != "t_acme" ||
		acme.SecretsRef != "swa/tenants/acme" || acme.Settings.CookieDomain != ".acme.test" || acme.Generation == 0 {
		t.Errorf("tenant fields not loaded: %+v", acme)
	}
	if !acme.AllowsOrigin("https://www.acme.test") || acme.AllowsOrigin("https://evil.test") {
		t.Errorf("AllowsOrigin wrong for %v", acme.Origins)
	}
	if n := len(d.All()); n != 8 {
		t.Errorf("All() has %d tenants, want 8", n)
	}
}

// running starts Run and stops it at cleanup.
func running(t *testing.T, d *directory.Directory) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// eventually polls cond until it holds or 5 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type recorder struct {
	mu      sync.Mutex
	changes []string
}

func (r *recorder) record(old, new *directory.Tenant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	describe := func(t *directory.Tenant) string {
		if t == nil {
			return "nil"
		}
		return t.Slug + "/" + string(t.Status)
	}
	r.changes = append(r.changes, describe(old)+"->"+describe(new))
}

func (r *recorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.changes {
		if c == s {
			return true
		}
	}
	return false
}

func TestRefreshOnNotify(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Platform)
	id := directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme", Domains: []string{"acme.test"}})
	// A long resync: only notifications can explain a quick change.
	d := directory.New(directory.Options{DB: db, BaseDomain: "swa.test", Resync: time.Hour, Log: quietLog()})
	var rec recorder
	d.OnChange(rec.record)
	running(t, d)
	eventually(t, "first load", func() bool { _, r := d.Lookup("acme.test"); return r == directory.Found })

	before, _ := d.Lookup("acme.test")
	directorytest.SetStatus(t, db, id, "suspended")
	eventually(t, "suspension", func() bool { _, r := d.Lookup("acme.test"); return r == directory.Suspended })
	after, _ := d.Lookup("acme.test")
	if after.Generation == before.Generation {
		t.Errorf("generation did not change on update")
	}
	if !rec.has("acme/active->acme/suspended") {
		t.Errorf("OnChange calls = %v", rec.changes)
	}

	// Domains and origins notify too.
	if _, err := db.Exec(context.Background(), `INSERT INTO domains (hostname, tenant_id) VALUES ('new.acme.test', $1)`, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new domain", func() bool { tn, _ := d.Lookup("new.acme.test"); return tn != nil && tn.ID == id })

	// A new tenant appears, a removed one disappears.
	id2 := directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "beta"})
	eventually(t, "new tenant", func() bool { _, r := d.Lookup("beta.swa.test"); return r == directory.Found })
	if _, err := db.Exec(context.Background(), `DELETE FROM tenants WHERE id = $1`, id2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "removed tenant", func() bool { _, r := d.Lookup("beta.swa.test"); return r == directory.Unknown })
	if !rec.has("nil->beta/active") || !rec.has("beta/active->nil") {
		t.Errorf("OnChange calls = %v", rec.changes)
	}
}

func TestServesLastSnapshotWhileRegistryDown(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Platform)
	var name string
	if err := db.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	id := directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme"})

	// The directory gets a pool of its own so the test can still write.
	readPool, err := pgxpool.New(context.Background(), pgtest.WithDatabase(pgtest.AdminURL(t), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(readPool.Close)
	d := directory.New(directory.Options{DB: readPool, BaseDomain: "swa.test", Resync: 50 * time.Millisecond, Log: quietLog()})
	running(t, d)
	eventually(t, "first load", func() bool { _, r := d.Lookup("acme.swa.test"); return r == directory.Found })

	admin, err := pgx.Connect(context.Background(), pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	// Take the registry away: no new connections, existing ones killed.
	exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false")
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true") })
	exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "' AND pid <> pg_backend_pid()")

	time.Sleep(100 * time.Millisecond) // a reload in flight dies with its connection
	loaded := d.LoadedAt()
	time.Sleep(500 * time.Millisecond) // several failed resyncs and reconnects
	if tn, r := d.Lookup("acme.swa.test"); r != directory.Found || tn.ID != id {
		t.Fatalf("while the registry is down Lookup = %v, %v; want the last snapshot", tn, r)
	}
	if !d.LoadedAt().Equal(loaded) {
		t.Fatalf("snapshot reloaded while the registry was down")
	}

	// Back up: the directory reconnects and sees changes made meanwhile.
	exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true")
	db.Reset() // its connections were killed too
	directorytest.SetStatus(t, db, id, "suspended")
	eventually(t, "reconnect", func() bool { _, r := d.Lookup("acme.swa.test"); return r == directory.Suspended })
}
