package directory_test

import (
	"context"
	"testing"
	"time"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// The directory carries each tenant's plan limits, and follows a plan
// change and a change of the plan's own limits without a resync.
func TestTenantCarriesPlanLimits(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t, migrations.Platform)
	id := directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme"})
	d := directory.New(directory.Options{DB: db, BaseDomain: "swa.test", Resync: time.Hour, Log: quietLog()})
	running(t, d)
	eventually(t, "first load", func() bool { _, r := d.Lookup("acme.swa.test"); return r == directory.Found })

	// Tenants from before plans are on standard: unlimited.
	tn, _ := d.Lookup("acme.swa.test")
	if tn.Plan.Name != "standard" || tn.Plan.Products != nil || !directory.Allows(tn.Plan.Products, 1<<40) {
		t.Fatalf("default plan = %+v, want standard without limits", tn.Plan)
	}

	directorytest.SetPlan(t, db, id, "free")
	eventually(t, "plan change", func() bool { tn, _ := d.Lookup("acme.swa.test"); return tn.Plan.Name == "free" })
	tn, _ = d.Lookup("acme.swa.test")
	if tn.Plan.DisplayName != "Free" || tn.Plan.Products == nil || *tn.Plan.Products != 10 ||
		!directory.Allows(tn.Plan.Products, 9) || directory.Allows(tn.Plan.Products, 10) {
		t.Fatalf("free plan = %+v, want Free allowing 10 products", tn.Plan)
	}

	if _, err := db.Exec(context.Background(), `UPDATE plans SET products = 20 WHERE name = 'free'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "limit change", func() bool {
		tn, _ := d.Lookup("acme.swa.test")
		return tn.Plan.Products != nil && *tn.Plan.Products == 20
	})

	if _, err := db.Exec(context.Background(), `UPDATE tenants SET plan = 'no-such-plan' WHERE id = $1`, id); err == nil {
		t.Fatal("the registry took a plan it does not define")
	}
}
