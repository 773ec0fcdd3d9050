package admin_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/platform/pgtest"
)

var csrfFieldRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// get fetches a page and returns its status and HTML.
func (c *client) get(path string) (int, string) {
	c.t.Helper()
	status, _ := c.do("GET", path, nil)
	return status, c.raw
}

func TestPagesSignInAndEscaping(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	b := f.client(hostA)

	status, _ := b.get("/admin/")
	if status != http.StatusSeeOther || b.last.Header.Get("Location") != "/admin/sign-in" {
		t.Fatalf("dashboard signed out = %d %s", status, b.last.Header.Get("Location"))
	}
	if status, _ = b.get("/admin"); status != http.StatusMovedPermanently || b.last.Header.Get("Location") != "/admin/" {
		t.Fatalf("/admin = %d %s", status, b.last.Header.Get("Location"))
	}
	// Only /admin and below are the back office's.
	if status, _ = b.get("/administrator"); status != 404 || b.last.Header.Get("Content-Security-Policy") != "" {
		t.Fatalf("/administrator = %d, CSP %q", status, b.last.Header.Get("Content-Security-Policy"))
	}
	status, html := b.get("/admin/sign-in")
	if status != 200 || !strings.Contains(html, `<label for="email">`) {
		t.Fatalf("sign-in page = %d %s", status, html)
	}
	csp := b.last.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "style-src 'self'") {
		t.Fatalf("CSP = %q", csp)
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "style=") {
		t.Fatal("a page carries inline script or style")
	}
	if status, css := b.get("/admin/static/admin.css"); status != 200 || !strings.Contains(css, ":focus-visible") ||
		!strings.HasPrefix(b.last.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("stylesheet = %d %q", status, b.last.Header.Get("Content-Type"))
	}

	// A wrong password shows the one refusal on the page, with the status.
	status, html = b.form("/admin/sign-in", "email", f.owner[f.a.ID], "password", "wrong")
	if status != 401 || !strings.Contains(html, `role="alert"`) || !strings.Contains(html, "The address or password is wrong") {
		t.Fatalf("wrong password page = %d %s", status, html)
	}
	status, _ = b.form("/admin/sign-in", "email", f.owner[f.a.ID], "password", ownerPassword)
	if status != http.StatusSeeOther || b.last.Header.Get("Location") != "/admin/" {
		t.Fatalf("sign-in = %d %s", status, b.last.Header.Get("Location"))
	}
	status, html = b.get("/admin/staff")
	m := csrfFieldRE.FindStringSubmatch(html)
	if status != 200 || m == nil {
		t.Fatalf("staff page = %d %s", status, html)
	}
	tok := m[1]

	// A form without the session's token is refused and changes nothing.
	email := pgtest.RandomName("page") + "@example.com"
	status, html = b.form("/admin/staff/invite", "email", email, "role", "staff")
	if status != 403 || !strings.Contains(html, "CSRF token") {
		t.Fatalf("invite without token = %d %s", status, html)
	}
	// With it, the invitation goes out.
	status, html = b.form("/admin/staff/invite", "csrf_token", tok, "email", email, "role", "staff")
	if status != 200 || !strings.Contains(html, "Invitation sent to "+email) {
		t.Fatalf("invite = %d %s", status, html)
	}
	// A destructive action needs its confirmation box.
	status, html = b.form("/admin/staff/1", "csrf_token", tok, "action", "deactivate")
	if status != 400 || !strings.Contains(html, "Tick the box") {
		t.Fatalf("unconfirmed deactivation = %d %s", status, html)
	}

	// Markup in a name is shown as text, not run.
	inviteTok := linkToken(t, f.deliver(email, 1)[0])
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	anon := f.client(hostA)
	status, html = anon.form("/admin/accept-invitation", "token", inviteTok, "name", evil, "password", staffPassword, "confirm_password", staffPassword)
	if status != 200 || !strings.Contains(html, "Your account is ready") {
		t.Fatalf("accept = %d %s", status, html)
	}
	status, html = b.get("/admin/staff")
	if status != 200 || strings.Contains(html, "<script>alert") || strings.Contains(html, "<img src=x") ||
		!strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("staff page does not escape the name:\n%s", html)
	}
	status, html = b.get("/admin/audit")
	if status != 200 || strings.Contains(html, "<script>alert") || !strings.Contains(html, "invitation.accepted") {
		t.Fatalf("audit page = %d\n%s", status, html)
	}

	// API tokens from the security page: shown once, then revoked with a
	// confirmation; the token works in between.
	status, html = b.form("/admin/security/tokens", "csrf_token", tok, "name", "stock sync")
	m = regexp.MustCompile(`New token: <code class="secret">(swa_staff_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(html)
	if status != 200 || m == nil {
		t.Fatalf("token created = %d %s", status, html)
	}
	bot := f.client(hostA)
	bot.bearer = m[1]
	bot.must(200, "GET", api+"/me", nil)
	if _, html = b.get("/admin/security"); strings.Contains(html, m[1]) || !strings.Contains(html, "stock sync") {
		t.Fatalf("security page shows the token again, or not its name:\n%s", html)
	}
	id := regexp.MustCompile(`/admin/security/tokens/(\d+)/revoke`).FindStringSubmatch(html)
	if status, _ = b.form("/admin/security/tokens/"+id[1]+"/revoke", "csrf_token", tok); status != 400 {
		t.Fatalf("unconfirmed revoke = %d", status)
	}
	if status, html = b.form("/admin/security/tokens/"+id[1]+"/revoke", "csrf_token", tok, "confirm", "yes"); status != 200 || !strings.Contains(html, "Token revoked.") {
		t.Fatalf("revoke = %d %s", status, html)
	}
	bot.refused(401, "token-invalid", "", "GET", api+"/me", nil)

	// A password change from the page keeps this session, with a new token.
	newPass := "Paged-Pass-2026!"
	status, html = b.form("/admin/security/password", "csrf_token", tok, "current_password", ownerPassword,
		"new_password", newPass, "confirm_password", "mismatch")
	if status != 400 || !strings.Contains(html, "match") {
		t.Fatalf("mismatched confirmation = %d %s", status, html)
	}
	status, html = b.form("/admin/security/password", "csrf_token", tok, "current_password", ownerPassword,
		"new_password", newPass, "confirm_password", newPass)
	if status != 200 || !strings.Contains(html, "Password changed") {
		t.Fatalf("password change = %d %s", status, html)
	}
	m = csrfFieldRE.FindStringSubmatch(html)
	if m == nil || m[1] == tok {
		t.Fatal("the session's token did not change with the password")
	}
	if status, _ = b.get("/admin/staff"); status != 200 {
		t.Fatalf("after the change = %d", status)
	}

	// Staff do not see the audit page or the owner's forms.
	staff := f.client(hostA)
	staff.form("/admin/sign-in", "email", email, "password", staffPassword)
	if status, _ = staff.get("/admin/audit"); status != 403 {
		t.Fatalf("audit page for staff = %d", status)
	}
	if status, html = staff.get("/admin/staff"); status != 200 || strings.Contains(html, "/admin/staff/invite") || strings.Contains(html, "Deactivate") {
		t.Fatalf("staff page for staff = %d %s", status, html)
	}
	// Signing out ends the session.
	m = csrfFieldRE.FindStringSubmatch(html)
	if status, _ = staff.form("/admin/sign-out", "csrf_token", m[1]); status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", status)
	}
	if status, _ = staff.get("/admin/staff"); status != http.StatusSeeOther {
		t.Fatalf("after sign-out = %d", status)
	}
}

// TestDashboardWeight: the dashboard is HTML and one stylesheet, no script,
// within a budget of 16 KiB; the figure is logged for the record.
func TestDashboardWeight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	status, html := owner.get("/admin/")
	if status != 200 {
		t.Fatalf("dashboard = %d", status)
	}
	status, css := owner.get("/admin/static/admin.css")
	if status != 200 {
		t.Fatalf("stylesheet = %d", status)
	}
	if strings.Contains(html, "<script") || strings.Count(html, `rel="stylesheet"`) != 1 {
		t.Errorf("the dashboard loads more than its stylesheet:\n%s", html)
	}
	total := len(html) + len(css)
	t.Logf("dashboard: %d B HTML + %d B CSS + 0 B JS = %d B", len(html), len(css), total)
	if total > 16<<10 {
		t.Errorf("dashboard weighs %d B, over the 16 KiB budget", total)
	}
}
