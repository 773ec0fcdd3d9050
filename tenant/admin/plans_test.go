package admin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// onPlan puts tenant id on a plan of its own (name, display name, limits)
// and has the directory read it, as NOTIFY would.
func (f *fixture) onPlan(id int64, name, display string, products, seats int64) {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.reg.Exec(ctx, `INSERT INTO plans (name, display_name, products, staff_seats) VALUES ($1, $2, $3, $4)`,
		name, display, products, seats); err != nil {
		f.t.Fatal(err)
	}
	directorytest.SetPlan(f.t, f.reg, id, name)
	if err := f.dir.Refresh(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// At the plan's product limit the next create is refused, by the API and
// the page, with the plan's name; the other tenant is not limited.
func TestProductLimitOfPlan(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	var have int64
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT count(*) FROM product`).Scan(&have); err != nil {
		t.Fatal(err)
	}
	f.onPlan(f.a.ID, pgtest.RandomName("tiny"), "Tiny", have+1, 10)
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	owner.must(201, "POST", api+"/products", map[string]any{"title": "Lamp", "title_url": "Lamp"})
	out := owner.refused(403, "plan-limit", "", "POST", api+"/products", map[string]any{"title": "Lamp 2", "title_url": "Lamp2"})
	if d := out["detail"].(string); !strings.Contains(d, "Tiny plan allows") || !strings.Contains(d, "products") {
		t.Errorf("detail = %q, want the plan named", d)
	}
	// A draft counts too: archived products can be restored.
	owner.refused(403, "plan-limit", "", "POST", api+"/products", map[string]any{"title": "Draft", "title_url": "Draft", "archived": true})

	status, html := owner.get("/admin/products")
	m := csrfFieldRE.FindStringSubmatch(html)
	if status != 200 || m == nil {
		t.Fatalf("products page = %d", status)
	}
	status, html = owner.form("/admin/products", "csrf_token", m[1], "title", "Lamp 3", "title_url", "Lamp3")
	if status != 403 || !strings.Contains(html, `role="alert"`) || !strings.Contains(html, "Tiny plan allows") {
		t.Errorf("page create over the limit = %d %s", status, html)
	}
	var after int64
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT count(*) FROM product`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != have+1 {
		t.Errorf("products = %d, want %d", after, have+1)
	}

	other := f.signIn(hostB, f.owner[f.b.ID], ownerPassword)
	other.must(201, "POST", api+"/products", map[string]any{"title": "Lamp", "title_url": "Lamp"})
	other.must(201, "POST", api+"/products", map[string]any{"title": "Lamp 2", "title_url": "Lamp2"})
}

// Seats are active staff and open invitations: with the owner and one
// invitation on a two-seat plan, the next invitation is refused.
func TestStaffSeatLimitOfPlan(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.onPlan(f.a.ID, pgtest.RandomName("duo"), "Duo", 100, 2)
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	f.invite(owner, pgtest.RandomName("s")+"@example.com", "staff")
	out := owner.refused(403, "plan-limit", "", "POST", api+"/staff/invitations",
		map[string]string{"email": pgtest.RandomName("s") + "@example.com", "role": "staff"})
	if d := out["detail"].(string); !strings.Contains(d, "Duo plan allows 2 staff seats") {
		t.Errorf("detail = %q", d)
	}
}
