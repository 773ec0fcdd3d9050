package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// onEmailPlan puts tenant id on a plan of its own limited to emails a month.
func (f *fixture) onEmailPlan(id int64, display string, emails int64) {
	f.t.Helper()
	ctx := context.Background()
	name := pgtest.RandomName("mail")
	if _, err := f.reg.Exec(ctx, `INSERT INTO plans (name, display_name, emails_per_month) VALUES ($1, $2, $3)`,
		name, display, emails); err != nil {
		f.t.Fatal(err)
	}
	directorytest.SetPlan(f.t, f.reg, id, name)
	if err := f.dir.Refresh(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// A campaign send that would pass the plan's emails_per_month (this
// month's outbox plus the recipients pending) is refused, 403 plan-limit
// naming the plan, and leaves the campaign unsent; with room it starts.
func TestCampaignRefusedOverEmailQuota(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	tag := pgtest.RandomName("eq")
	for i := range 3 {
		f.exec(f.a, `INSERT INTO prospect (email, first_name, pr_cd, email_unsubscribe_string, email_unsubscribe_string_signed)
VALUES ($1, 'Pat', $2, $3, $4)`, fmt.Sprintf("%s-%d@example.com", tag, i), fmt.Sprintf("PQ%d", i), tag+fmt.Sprint(i), "tok"+tag+fmt.Sprint(i))
	}
	created := owner.must(201, "POST", api+"/campaigns", map[string]string{"subject": "News " + tag, "type": "prospect",
		"body_text": "Hi {recipient_first_name}"})
	id := fmt.Sprint(created["id"])
	sent := int64(f.count(f.a, `SELECT count(*) FROM email_outbox`))

	f.onEmailPlan(f.a.ID, "Quiet", sent+2)
	out := owner.refused(403, "plan-limit", "", "POST", api+"/campaigns/"+id+"/send", map[string]any{})
	if d := out["detail"].(string); !strings.Contains(d, fmt.Sprintf("Quiet plan allows %d emails a month", sent+2)) {
		t.Errorf("detail = %q", d)
	}
	if n := f.count(f.a, `SELECT count(*) FROM campaign_recipient`); n != 0 {
		t.Errorf("%d recipients taken by a refused send", n)
	}
	if got := owner.must(200, "GET", api+"/campaigns/"+id, nil); got["send_state"] != "idle" {
		t.Errorf("refused campaign = %s", owner.raw)
	}

	f.onEmailPlan(f.a.ID, "Roomy", sent+3)
	if got := owner.must(202, "POST", api+"/campaigns/"+id+"/send", map[string]any{}); got["send_state"] != "sending" {
		t.Errorf("send with room = %s", owner.raw)
	}
}

// A tenant flagged over its plan's monthly orders sees it on the
// dashboard, in the API and on the page; another tenant does not.
func TestDashboardShowsOverOrderQuota(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	if fig := owner.must(200, "GET", api+"/dashboard", nil); fig["over_plan_orders"] != nil {
		t.Fatalf("notice before any flag: %s", owner.raw)
	}
	directorytest.SetPlan(t, f.reg, f.a.ID, "free")
	var flagged bool
	if err := f.reg.QueryRow(ctx, `SELECT dataplane_flag_quota($1, 'orders_per_month', date_trunc('month', now() AT TIME ZONE 'UTC')::date)`,
		f.a.ID).Scan(&flagged); err != nil || !flagged {
		t.Fatalf("flag: %v %v", flagged, err)
	}
	fig := owner.must(200, "GET", api+"/dashboard", nil)
	notice, _ := fig["over_plan_orders"].(map[string]any)
	if notice == nil || notice["plan"] != "Free" || notice["limit"] != float64(100) {
		t.Errorf("dashboard = %s", owner.raw)
	}
	status, html := owner.get("/admin/")
	if status != 200 || !strings.Contains(html, `id="over-plan-orders"`) || !strings.Contains(html, "over the plan's monthly orders") {
		t.Errorf("dashboard page = %d, lacks the notice", status)
	}
	other := f.signIn(hostB, f.owner[f.b.ID], ownerPassword)
	if fig := other.must(200, "GET", api+"/dashboard", nil); fig["over_plan_orders"] != nil {
		t.Errorf("other tenant sees the notice: %s", other.raw)
	}
}
