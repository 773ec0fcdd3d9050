package admin_test

import (
	"context"
	"strings"
	"testing"
)

// TestDomains: an owner adds a domain of the shop's own through the API; it
// is stored pending with a TXT challenge and answers as an unknown host
// (the platform's 404) until verified, then serves the shop; staff may not
// see or change domains, another tenant's owner sees none of them and
// cannot remove them but may claim a pending name too; names under the
// platform's domain, bad names, verified names of another shop and the
// default domain are refused; both audit logs record it; the
// page shows the record, needs its CSRF token and removes with a
// confirmation.
func TestDomains(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	staff := f.signIn(hostA, f.addStaff(owner, "staff"), staffPassword)
	ownerB := f.signIn(hostB, f.owner[f.b.ID], ownerPassword)
	const host = "shop.a-widgets.test"

	staff.refused(403, "forbidden", "", "GET", api+"/domains", nil)
	staff.refused(403, "forbidden", "", "POST", api+"/domains", map[string]string{"hostname": host})
	for _, tc := range []struct{ hostname, code string }{
		{"", "required"}, {"http://shop.example.com/", "invalid"}, {"localhost", "invalid"}, {"10.0.0.1", "invalid"},
		{"evil.example.invalid", "invalid"}, {"example.invalid", "invalid"}, {"a b.example.com", "invalid"},
	} {
		owner.refused(400, tc.code, "hostname", "POST", api+"/domains", map[string]string{"hostname": tc.hostname})
	}

	added := owner.must(201, "POST", api+"/domains", map[string]string{"hostname": "Shop.A-Widgets.test."})
	ch, _ := added["challenge"].(map[string]any)
	if added["hostname"] != host || added["status"] != "pending" || ch == nil || ch["type"] != "TXT" ||
		ch["name"] != "_swa-challenge."+host || !strings.HasPrefix(ch["value"].(string), "swa-verify=") || len(ch["value"].(string)) < 40 {
		t.Fatalf("added = %s", owner.raw)
	}
	// Adding it again changes nothing (same token).
	if again := owner.must(201, "POST", api+"/domains", map[string]string{"hostname": host}); again["challenge"].(map[string]any)["value"] != ch["value"] {
		t.Errorf("adding again changed the token: %s", owner.raw)
	}
	owner.refused(409, "domain-in-use", "hostname", "DELETE", api+"/domains/"+hostA, nil)
	// A pending claim holds no name: another shop may claim it too, with a
	// token of its own (the one whose record the domain serves verifies),
	// and removes only its own claim.
	ownerB.refused(404, "not-found", "", "DELETE", api+"/domains/"+host, nil)
	claimB := ownerB.must(201, "POST", api+"/domains", map[string]string{"hostname": host})
	if chB, _ := claimB["challenge"].(map[string]any); claimB["status"] != "pending" || chB == nil || chB["value"] == ch["value"] {
		t.Fatalf("the other shop's claim = %s", ownerB.raw)
	}
	if listB := ownerB.must(200, "GET", api+"/domains", nil)["domains"].([]any); len(listB) != 2 {
		t.Errorf("the other shop's domains with its claim = %s", ownerB.raw)
	}
	ownerB.must(204, "DELETE", api+"/domains/"+host, nil)

	list := owner.must(200, "GET", api+"/domains", nil)["domains"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["hostname"] != hostA || list[0].(map[string]any)["default"] != true ||
		list[1].(map[string]any)["status"] != "pending" {
		t.Fatalf("domains = %s", owner.raw)
	}
	if listB := ownerB.must(200, "GET", api+"/domains", nil)["domains"].([]any); len(listB) != 1 || listB[0].(map[string]any)["hostname"] != hostB {
		t.Errorf("the other shop's domains = %s", ownerB.raw)
	}

	// Pending: the hostname is the platform's unknown host, not the shop.
	if err := f.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	visitor := f.client(host)
	if code, _ := visitor.do("GET", api+"/me", nil); code != 404 {
		t.Errorf("a pending domain answered %d, want the platform's 404", code)
	}
	// Verified (as the control plane's checker records it), it serves the shop.
	if _, err := f.reg.Exec(ctx, `UPDATE domains SET status = 'verified' WHERE hostname = $1 AND tenant_id = $2`, host, f.a.ID); err != nil {
		t.Fatal(err)
	}
	// A verified name is held: another shop's claim is refused.
	ownerB.refused(409, "domain-taken", "hostname", "POST", api+"/domains", map[string]string{"hostname": host})
	if err := f.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if code, out := visitor.do("GET", api+"/me", nil); code != 401 {
		t.Errorf("a verified domain answered %d %v, want the shop's 401", code, out)
	}

	// Both audit logs have the addition.
	var platformActor string
	if err := f.reg.QueryRow(ctx, `SELECT actor FROM audit_log WHERE tenant_id = $1 AND action = 'domain.added_in_back_office'`, f.a.ID).
		Scan(&platformActor); err != nil || !strings.Contains(platformActor, f.owner[f.a.ID]) {
		t.Errorf("platform audit actor %q: %v", platformActor, err)
	}
	if items := owner.must(200, "GET", api+"/audit?action=domain.added", nil)["items"].([]any); len(items) != 2 {
		t.Errorf("shop audit = %s", owner.raw)
	}

	// The page: the record shown, CSRF required, removal confirmed.
	page := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	status, html := page.get("/admin/domains")
	m := csrfFieldRE.FindStringSubmatch(html)
	if status != 200 || m == nil || !strings.Contains(html, "_swa-challenge."+host) || !strings.Contains(html, ch["value"].(string)) {
		t.Fatalf("domains page = %d %s", status, html)
	}
	if code, _ := page.form("/admin/domains", "hostname", "www.a-widgets.test"); code != 403 {
		t.Errorf("form without its CSRF token: %d", code)
	}
	if code, html := page.form("/admin/domains", "csrf_token", m[1], "hostname", "<b>x</b>"); code != 400 ||
		strings.Contains(html, "<b>x</b>") || !strings.Contains(html, `aria-invalid="true"`) {
		t.Errorf("refused form: %d\n%s", code, html)
	}
	if code, html := page.form("/admin/domains", "csrf_token", m[1], "hostname", "www.a-widgets.test"); code != 200 ||
		!strings.Contains(html, "_swa-challenge.www.a-widgets.test") {
		t.Errorf("added by form: %d\n%s", code, html)
	}
	if code, _ := page.form("/admin/domains/remove", "csrf_token", m[1], "hostname", host); code != 400 {
		t.Errorf("removal without confirmation: %d", code)
	}
	if code, html := page.form("/admin/domains/remove", "csrf_token", m[1], "hostname", host, "confirm", "yes"); code != 200 || !strings.Contains(html, "removed") {
		t.Errorf("removed by form: %d\n%s", code, html)
	}
	if err := f.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := visitor.do("GET", api+"/me", nil); code != 404 {
		t.Errorf("a removed domain answered %d, want the platform's 404", code)
	}
	staff.refused(403, "forbidden", "", "DELETE", api+"/domains/www.a-widgets.test", nil)
	owner.must(204, "DELETE", api+"/domains/www.a-widgets.test", nil)
	owner.refused(404, "not-found", "", "DELETE", api+"/domains/www.a-widgets.test", nil)
}
