package admin_test

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestSettings: an owner changes the shop's settings through the API and
// the page. The change reaches the registry through the data plane's role
// (its only write there), the directory and CORS follow, both audit logs
// record it, staff cannot do it, bad fields are named, and the other
// tenant is untouched.
func TestSettings(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	staff := f.signIn(hostA, f.addStaff(owner, "staff"), staffPassword)
	staff.refused(403, "forbidden", "", "GET", api+"/settings", nil)
	staff.refused(403, "forbidden", "", "PUT", api+"/settings", map[string]string{"shop_name": "Taken over"})

	got := owner.must(200, "GET", api+"/settings", nil)
	if got["shop_name"] != f.a.DisplayName || got["frontend_origin"] != frontend {
		t.Fatalf("settings before = %s", owner.raw)
	}
	for _, tc := range []struct{ field, value string }{
		{"shop_name", ""}, {"shop_name", strings.Repeat("x", 201)}, {"frontend_origin", "ftp://files.example.com"},
		{"frontend_origin", "https://shop.example.com/path"}, {"frontend_origin", "https://*.example.com"},
		{"contact_email", "nobody"}, {"logo_url", "javascript:alert(1)"}, {"primary_color", "red"},
		{"accent_color", "#12345"}, {"tagline", "two\nlines"},
	} {
		in := map[string]string{"shop_name": "Shop A", tc.field: tc.value}
		code := "invalid"
		if tc.value == "" {
			code = "required"
		}
		owner.refused(400, code, tc.field, "PUT", api+"/settings", in)
	}

	const newOrigin = "https://www.shop-a.example"
	in := map[string]string{"shop_name": `Shop <A> & Co`, "frontend_origin": "HTTPS://WWW.Shop-A.example", "contact_email": "hello@shop-a.example",
		"contact_phone": "+44 20 7946 0000", "tagline": "Things, well made", "logo_url": "https://cdn.shop-a.example/logo.png",
		"primary_color": "#112233", "accent_color": "#aabbcc"}
	saved := owner.must(200, "PUT", api+"/settings", in)
	if saved["frontend_origin"] != newOrigin || saved["shop_name"] != in["shop_name"] {
		t.Fatalf("saved = %s", owner.raw)
	}
	if again := owner.must(200, "GET", api+"/settings", nil); again["primary_color"] != "#112233" || again["frontend_origin"] != newOrigin {
		t.Fatalf("read back = %s", owner.raw)
	}

	// The registry holds them; legal texts and the sender stay as they were.
	var name, from, brandName string
	var origins []string
	if err := f.reg.QueryRow(ctx, `SELECT display_name, settings->>'from_address', coalesce(settings#>>'{branding,shop_name}', ''),
  (SELECT array_agg(origin ORDER BY origin) FROM tenant_origins WHERE tenant_id = t.id) FROM tenants t WHERE id = $1`, f.a.ID).
		Scan(&name, &from, &brandName, &origins); err != nil {
		t.Fatal(err)
	}
	if name != in["shop_name"] || from != "Shop <owner@example.com>" || brandName != "" {
		t.Errorf("registry: name %q from %q branding.shop_name %q", name, from, brandName)
	}
	if !slices.Equal(origins, []string{newOrigin}) {
		t.Errorf("trusted origins %v, want the new frontend origin only (the replaced one no longer trusted)", origins)
	}
	if err := f.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.dir.Lookup(hostA); a.DisplayName != in["shop_name"] || a.Settings.Branding == nil || a.Settings.Branding.AccentColor != "#aabbcc" ||
		!a.AllowsOrigin(newOrigin) || a.AllowsOrigin(frontend) {
		t.Errorf("directory after the change: %+v %+v", a, a.Settings.Branding)
	}
	if b, _ := f.dir.Lookup(hostB); b.DisplayName != f.b.DisplayName || !b.AllowsOrigin(frontend) {
		t.Errorf("the other tenant changed: %+v", b)
	}

	// Both audit logs have it, naming who did it.
	var platformActor string
	if err := f.reg.QueryRow(ctx, `SELECT actor FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.settings_changed_in_back_office'`, f.a.ID).
		Scan(&platformActor); err != nil || !strings.Contains(platformActor, f.owner[f.a.ID]) {
		t.Errorf("platform audit actor %q: %v", platformActor, err)
	}
	audit := owner.must(200, "GET", api+"/audit?action=settings.updated", nil)
	if items := audit["items"].([]any); len(items) != 1 {
		t.Errorf("shop audit = %s", owner.raw)
	}

	// Clearing the frontend origin stops trusting it; the page shows the
	// form with the values, escaped, and a refused field marked.
	owner.must(200, "PUT", api+"/settings", map[string]string{"shop_name": "Shop A"})
	if err := f.reg.QueryRow(ctx, `SELECT coalesce(array_agg(origin), '{}') FROM tenant_origins WHERE tenant_id = $1`, f.a.ID).Scan(&origins); err != nil || len(origins) != 0 {
		t.Errorf("origins after clearing: %v %v", origins, err)
	}
	page := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	status, html := page.get("/admin/settings")
	m := csrfFieldRE.FindStringSubmatch(html)
	if status != 200 || m == nil || !strings.Contains(html, `value="Shop A"`) {
		t.Fatalf("settings page = %d %s", status, html)
	}
	if code, html := page.form("/admin/settings", "shop_name", "No token"); code != 403 {
		t.Errorf("form without its CSRF token: %d %s", code, html)
	}
	if code, html := page.form("/admin/settings", "csrf_token", m[1], "shop_name", "<script>x</script>", "primary_color", "blue"); code != 400 ||
		!strings.Contains(html, `id="primary_color" name="primary_color" pattern="#[0-9a-fA-F]{6}" value="blue" aria-invalid="true"`) ||
		!strings.Contains(html, "&lt;script&gt;x&lt;/script&gt;") || strings.Contains(html, "<script>x") {
		t.Errorf("refused form: %d\n%s", code, html)
	}
	if code, html := page.form("/admin/settings", "csrf_token", m[1], "shop_name", "Shop A again", "tagline", "New tagline"); code != 200 || !strings.Contains(html, "Saved.") {
		t.Errorf("saved form: %d\n%s", code, html)
	}
}
