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
