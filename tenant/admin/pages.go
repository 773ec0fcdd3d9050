package admin

import (
	"embed"
	"html/template"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/account"
)

// The pages are server-rendered with html/template (contextual escaping
// everywhere) and need no script; the stylesheet is a file, so the CSP has
// no 'unsafe-inline'. Destructive forms carry a required confirmation
// checkbox that the server checks too.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/admin.css
var stylesheet []byte

var pageNames = append([]string{"sign-in", "totp", "accept", "forgot", "reset", "dashboard", "staff", "security", "audit", "settings", "site", "domains", "rules", "discount", "insight", "ads", "campaigns", "campaign", "done",
	"products", "product", "orders", "order"},
	peoplePageNames...)

var pageTemplates = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"when": func(t any) string {
			switch v := t.(type) {
			case time.Time:
				return v.UTC().Format("2006-01-02 15:04 UTC")
			case *time.Time:
				if v != nil {
					return v.UTC().Format("2006-01-02 15:04 UTC")
				}
			}
			return "never"
		},
		"str":    func(b []byte) string { return string(b) },
		"money":  moneyText,
		"newKey": func() string { return account.RandomString(20) },
	}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/discount-fields.html", "templates/campaign-fields.html"))
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		out[n] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+n+".html"))
	}
	return out
}()

// view is what every page template gets.
type view struct {
	Title      string
	Site       string
	Nav        string
	Who        *staffJSON
	Owner      bool
	CSRF       string
	Error      string
	ErrorField string
	Notice     string
	Form       map[string]string // values to show again after an error
	Data       any
}

func (a *App) view(r *req, title, nav string) *view {
	v := &view{Title: title, Site: r.tenant.DisplayName, Nav: nav, Form: map[string]string{}}
	if v.Site == "" {
		v.Site = r.tenant.Slug
	}
	if r.who != nil && r.who.sess != nil {
		v.CSRF = r.who.sess.CSRF
		if r.who.signedIn() {
			s := r.who.staff.public()
			v.Who, v.Owner = &s, s.Role == RoleOwner
		}
	}
	return v
}

// render writes a page; a client error shows on the page with its status.
func (a *App) render(c *fiber.Ctx, name string, v *view, err error) error {
	status := fiber.StatusOK
	if err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		status, v.Error, v.ErrorField = ae.Status, sentence(ae.Detail), ae.Field
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return pageTemplates[name].ExecuteTemplate(c.Response().BodyWriter(), "layout.html", v)
}

// sentence capitalises an API detail for a page.
func sentence(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func (a *App) mountPages(g fiber.Router) {
	g.Get("/static/admin.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.Send(stylesheet)
	})
	keys := map[string]ratelimit.KeyFunc{"admin_login": ratelimit.ByClientIP, "admin_login_account": bodyEmail,
		"admin_reset": ratelimit.ByClientIP, "admin_link": ratelimit.ByClientIP}
	lim := func(names ...string) []fiber.Handler {
		var hs []fiber.Handler
		for _, n := range names {
			if a.limiter != nil {
				hs = append(hs, a.limiter.Handler(n, keys[n]))
			}
		}
		return hs
	}
	post := func(path string, acc access, limits []fiber.Handler, h fiber.Handler) {
		g.Post(path, append(limits, a.pageGuard(acc), h)...)
	}
	g.Get("", func(c *fiber.Ctx) error { return c.Redirect("/admin/", fiber.StatusMovedPermanently) })
	g.Get("/", a.pageGuard(anyStaff), a.pageDashboard)
	g.Get("/sign-in", a.pageSignIn)
	post("/sign-in", public, lim("admin_login", "admin_login_account"), a.pageSignInPost)
	g.Get("/sign-in/totp", a.pageGuard(totpStage), a.pageTOTP)
	post("/sign-in/totp", totpStage, lim("admin_login"), a.pageTOTPPost)
	post("/sign-out", sessionOnly, nil, a.pageSignOut)
	g.Get("/accept-invitation", a.pageAccept)
	post("/accept-invitation", public, lim("admin_link"), a.pageAcceptPost)
	g.Get("/forgot-password", a.pageForgot)
	post("/forgot-password", public, lim("admin_reset"), a.pageForgotPost)
	g.Get("/reset-password", a.pageReset)
	post("/reset-password", public, lim("admin_link"), a.pageResetPost)
	g.Get("/staff", a.pageGuard(anyStaff), a.pageStaff)
	post("/staff/invite", ownerOnly, nil, a.pageInvite)
	post("/staff/invitations/:id/revoke", ownerOnly, nil, a.pageRevokeInvitation)
	post("/staff/:id", ownerOnly, nil, a.pageStaffUpdate)
	g.Get("/security", a.pageGuard(sessionOnly), a.pageSecurity)
	post("/security/totp", sessionOnly, nil, a.pageTOTPEnrol)
	post("/security/totp/confirm", sessionOnly, nil, a.pageTOTPConfirm)
	post("/security/totp/disable", sessionOnly, nil, a.pageTOTPDisable)
	post("/security/password", sessionOnly, nil, a.pagePassword)
	post("/security/tokens", sessionOnly, nil, a.pageTokenCreate)
	post("/security/tokens/:id/revoke", sessionOnly, nil, a.pageTokenRevoke)
	g.Get("/audit", a.pageGuard(ownerOnly), a.pageAudit)
	g.Get("/insight", a.pageGuard(anyStaff), a.pageInsight)
	g.Get("/ads", a.pageGuard(anyStaff), a.pageAds)
	post("/ads", anyStaff, nil, a.pageAdCreate)
	post("/ads/:id/status", anyStaff, nil, a.pageAdStatus)
	g.Get("/settings", a.pageGuard(ownerOnly), a.pageSettings)
	post("/settings", ownerOnly, nil, a.pageSettingsPost)
	a.mountPeoplePages(g)
	a.mountSitePages(g)
	a.mountDomainPages(g)
	a.mountOrderPages(g)
	a.mountCatalogPages(g)
	a.mountCampaignPages(g)
}

// pageGuard is guard for pages: a signed-out visitor is sent to sign in
// instead of getting a JSON error; a forbidden page says so.
func (a *App) pageGuard(acc access) fiber.Handler {
	api := a.guard(acc)
	return func(c *fiber.Ctx) error {
		err := api(c)
		if ae, ok := asAPIError(err); ok {
			if ae == errUnauthenticated || ae == errSessionOnl {
				return c.Redirect("/admin/sign-in", fiber.StatusSeeOther)
			}
			r := a.r(c)
			return a.render(c, "done", a.view(r, "Not allowed", ""), ae)
		}
		return err
	}
}

func formValue(c *fiber.Ctx, name string) string { return c.FormValue(name) }

func (a *App) pageSignIn(c *fiber.Ctx) error {
	r := a.r(c)
	if r.who.signedIn() {
		return c.Redirect("/admin/", fiber.StatusSeeOther)
	}
	return a.render(c, "sign-in", a.view(r, "Sign in", ""), nil)
}

func (a *App) pageSignInPost(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Sign in", "")
	v.Form["email"] = formValue(c, "email")
	sess, err := a.signIn(r, formValue(c, "email"), formValue(c, "password"))
	if err != nil {
		return a.render(c, "sign-in", v, err)
	}
	if sess.Stage == stageTOTP {
		return c.Redirect("/admin/sign-in/totp", fiber.StatusSeeOther)
	}
	return c.Redirect("/admin/", fiber.StatusSeeOther)
}

func (a *App) pageTOTP(c *fiber.Ctx) error {
	r := a.r(c)
	return a.render(c, "totp", a.view(r, "Second factor", ""), nil)
}

func (a *App) pageTOTPPost(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Second factor", "")
	if _, err := a.signInTOTP(r, formValue(c, "code"), formValue(c, "recovery_code")); err != nil {
		return a.render(c, "totp", v, err)
	}
	return c.Redirect("/admin/", fiber.StatusSeeOther)
}

func (a *App) pageSignOut(c *fiber.Ctx) error {
	if err := a.signOut(a.r(c)); err != nil {
		return err
	}
	return c.Redirect("/admin/sign-in", fiber.StatusSeeOther)
}

func (a *App) pageDashboard(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Dashboard", "home")
	fig, err := a.figures(r)
	if err != nil {
		return err
	}
	v.Data = fig
	return a.render(c, "dashboard", v, nil)
}

func (a *App) pageAccept(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Join the back office", "")
	v.Form["token"] = c.Query("token")
	return a.render(c, "accept", v, nil)
}

func (a *App) pageAcceptPost(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Join the back office", "")
	v.Form["token"], v.Form["name"] = formValue(c, "token"), formValue(c, "name")
	if _, err := a.acceptInvitation(r, formValue(c, "token"), formValue(c, "name"), formValue(c, "password"), formValue(c, "confirm_password")); err != nil {
		return a.render(c, "accept", v, err)
	}
	v = a.view(r, "Welcome", "")
	v.Notice = "Your account is ready. Sign in with your address and the password you chose."
	return a.render(c, "done", v, nil)
}

func (a *App) pageForgot(c *fiber.Ctx) error {
	return a.render(c, "forgot", a.view(a.r(c), "Forgot password", ""), nil)
}

func (a *App) pageForgotPost(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Forgot password", "")
	if err := a.forgotPassword(r, formValue(c, "email")); err != nil {
		return a.render(c, "forgot", v, err)
	}
	v.Notice = "If the address belongs to a staff member, a reset link is on its way. It works once, for one hour."
	return a.render(c, "done", v, nil)
}

func (a *App) pageReset(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Choose a new password", "")
	v.Form["token"] = c.Query("token")
	return a.render(c, "reset", v, nil)
}

func (a *App) pageResetPost(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Choose a new password", "")
	v.Form["token"] = formValue(c, "token")
	if err := a.resetPassword(r, formValue(c, "token"), formValue(c, "password"), formValue(c, "confirm_password")); err != nil {
		return a.render(c, "reset", v, err)
	}
	v.Notice = "Your password is changed and every session of yours has ended. Sign in with the new password."
	return a.render(c, "done", v, nil)
}

type staffPage struct {
	Staff       []staffJSON
	Invitations []invitationJSON
	Next        string
}

func (a *App) staffPageData(c *fiber.Ctx, r *req) (*staffPage, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	d := &staffPage{}
	if d.Staff, d.Next, err = a.listStaff(r, p); err != nil {
		return nil, err
	}
	if r.who.staff.Role == RoleOwner {
		if d.Invitations, _, err = a.listInvitations(r, page{limit: maxLimit}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (a *App) pageStaff(c *fiber.Ctx) error {
	return a.staffPageWith(c, "", nil)
}

// staffPageWith renders the staff page after an action: its notice, or
// its error.
func (a *App) staffPageWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Staff", "staff")
	d, err := a.staffPageData(c, r)
	if err != nil {
		return a.render(c, "staff", v, err)
	}
	v.Data, v.Notice = d, notice
	if actionErr != nil {
		v.Form["email"], v.Form["role"] = formValue(c, "email"), formValue(c, "role")
	}
	return a.render(c, "staff", v, actionErr)
}

func (a *App) pageInvite(c *fiber.Ctx) error {
	inv, err := a.invite(a.r(c), formValue(c, "email"), formValue(c, "role"))
	if err != nil {
		return a.staffPageWith(c, "", err)
	}
	return a.staffPageWith(c, "Invitation sent to "+inv.Email+".", nil)
}

var errConfirm = &apiError{Status: fiber.StatusBadRequest, Code: "confirmation-required", Detail: "tick the box to confirm", Field: "confirm"}

func (a *App) pageRevokeInvitation(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if formValue(c, "confirm") != "yes" {
		return a.staffPageWith(c, "", errConfirm)
	}
	if err := a.revokeInvitation(a.r(c), id); err != nil {
		return a.staffPageWith(c, "", err)
	}
	return a.staffPageWith(c, "Invitation revoked.", nil)
}

func (a *App) pageStaffUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var ch staffChange
	switch formValue(c, "action") {
	case "role":
		role := formValue(c, "role")
		ch.Role = &role
	case "deactivate", "activate":
		if formValue(c, "confirm") != "yes" {
			return a.staffPageWith(c, "", errConfirm)
		}
		active := formValue(c, "action") == "activate"
		ch.Active = &active
	default:
		return a.staffPageWith(c, "", invalid("action", "unknown action"))
	}
	s, err := a.updateStaff(a.r(c), id, ch)
	if err != nil {
		return a.staffPageWith(c, "", err)
	}
	return a.staffPageWith(c, "Saved "+s.Email+".", nil)
}

type securityPage struct {
	TOTPEnabled   bool
	Enrol         map[string]any // while enrolling: secret, QR
	RecoveryCodes []string
	Tokens        []tokenJSON
	NewToken      string // the token just created, shown this once
}

// security is the security page's data, with the signed-in staff
// member's own API tokens.
func (a *App) security(r *req) (*securityPage, error) {
	d := &securityPage{TOTPEnabled: r.who.staff.TOTPEnabled}
	toks, _, err := a.listTokens(r, page{limit: maxLimit})
	for _, t := range toks {
		if t.StaffID == r.who.staff.ID && t.RevokedAt == nil {
			d.Tokens = append(d.Tokens, t)
		}
	}
	return d, err
}

// securityPage renders the security page after an action: its data read
// afresh, adjusted by fill, with the action's notice or error.
func (a *App) securityView(c *fiber.Ctx, notice string, actionErr error, fill func(*securityPage)) error {
	r := a.r(c)
	v := a.view(r, "Security", "security")
	d, err := a.security(r)
	if err != nil {
		return err
	}
	if fill != nil {
		fill(d)
	}
	v.Data = d
	if actionErr == nil {
		v.Notice = notice
	}
	return a.render(c, "security", v, actionErr)
}

func (a *App) pageSecurity(c *fiber.Ctx) error { return a.securityView(c, "", nil, nil) }

func (a *App) pageTokenCreate(c *fiber.Ctx) error {
	tok, err := a.createToken(a.r(c), formValue(c, "name"))
	if err != nil {
		return a.securityView(c, "", err, nil)
	}
	return a.securityView(c, "Token "+tok.Name+" created. Copy it now: it is shown this once.", nil,
		func(d *securityPage) { d.NewToken = tok.Token })
}

func (a *App) pageTokenRevoke(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if formValue(c, "confirm") != "yes" {
		return a.securityView(c, "", errConfirm, nil)
	}
	return a.securityView(c, "Token revoked.", a.revokeToken(a.r(c), id), nil)
}

func (a *App) pageTOTPEnrol(c *fiber.Ctx) error {
	out, err := a.enrolTOTP(a.r(c))
	return a.securityView(c, "", err, func(d *securityPage) {
		if err == nil {
			d.Enrol = out
			// The data: URL is ours (a PNG we just encoded); html/template
			// would otherwise refuse it in src.
			d.Enrol["qr"] = template.URL(out["qr_png"].(string))
		}
	})
}

func (a *App) pageTOTPConfirm(c *fiber.Ctx) error {
	codes, err := a.confirmTOTP(a.r(c), formValue(c, "code"))
	return a.securityView(c, "The second factor is on. Keep the recovery codes below somewhere safe: they are shown this once.", err,
		func(d *securityPage) {
			if err == nil {
				d.TOTPEnabled, d.RecoveryCodes = true, codes
			}
		})
}

func (a *App) pageTOTPDisable(c *fiber.Ctx) error {
	if formValue(c, "confirm") != "yes" {
		return a.securityView(c, "", errConfirm, nil)
	}
	err := a.disableTOTP(a.r(c), formValue(c, "password"))
	return a.securityView(c, "The second factor is off.", err, func(d *securityPage) {
		if err == nil {
			d.TOTPEnabled = false
		}
	})
}

func (a *App) pagePassword(c *fiber.Ctx) error {
	err := a.changePassword(a.r(c), formValue(c, "current_password"), formValue(c, "new_password"), formValue(c, "confirm_password"))
	return a.securityView(c, "Password changed; your other sessions have ended.", err, nil)
}

type auditPage struct {
	Entries []auditJSON
	Next    string
	Action  string
}

func (a *App) pageAudit(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Audit log", "audit")
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "audit", v, err)
	}
	d := &auditPage{Action: c.Query("action")}
	d.Entries, d.Next, err = a.listAudit(r, p, d.Action)
	if err != nil {
		return err
	}
	v.Data = d
	return a.render(c, "audit", v, nil)
}
