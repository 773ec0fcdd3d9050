package admin

import (
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// The people and CSV pages: lists with a search, a member's detail with
// deactivation behind a confirmation box, and import (upload, dry-run
// table, apply, result) with the export links.

var peoplePageNames = []string{"people-members", "people-member", "people-prospects", "people-chat", "people-addresses",
	"people-imports", "people-import"}

func (a *App) mountPeoplePages(g fiber.Router) {
	guard := a.pageGuard(anyStaff)
	g.Get("/members", guard, a.pageMembers)
	g.Get("/members/:id", guard, a.pageMember)
	g.Post("/members/:id/:action", guard, a.pageMemberAction)
	g.Get("/prospects", guard, a.pageProspects)
	g.Get("/chat-messages", guard, a.pageChat)
	g.Get("/shipping-addresses", guard, a.pageAddresses)
	g.Get("/imports", guard, a.pageImports)
	g.Post("/imports", guard, a.pageImportUpload)
	g.Get("/imports/:id", guard, a.pageImport)
	g.Post("/imports/:id/apply", guard, a.pageImportApply)
}

type listPage[T any] struct {
	Items []T
	Next  string
	Q     string
}

func (a *App) pageMembers(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Members", "people")
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "people-members", v, err)
	}
	d := &listPage[memberJSON]{Q: c.Query("q")}
	v.Data = d
	d.Items, d.Next, err = a.listMembers(r, p, d.Q)
	return a.renderOr(c, "people-members", v, err)
}

// renderOr renders a page, with err shown on it when it is a client error.
func (a *App) renderOr(c *fiber.Ctx, name string, v *view, err error) error {
	if err != nil {
		if _, ok := asAPIError(err); !ok {
			return err
		}
	}
	return a.render(c, name, v, err)
}

func (a *App) pageMember(c *fiber.Ctx) error { return a.memberPageWith(c, "", nil) }

func (a *App) memberPageWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Member", "people")
	id, err := pathID(c)
	if err != nil {
		return a.render(c, "done", v, err)
	}
	d, err := a.memberDetail(r, id)
	if err != nil {
		return a.renderOr(c, "done", v, err)
	}
	v.Title = d.FirstName + " " + d.LastName
	if d.FirstName == "" && d.LastName == "" {
		v.Title = d.Username
	}
	v.Data, v.Notice = d, notice
	return a.render(c, "people-member", v, actionErr)
}

func (a *App) pageMemberAction(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var active *bool
	notice := ""
	switch c.Params("action") {
	case "deactivate":
		f := false
		active, notice = &f, "The member is deactivated and signed out everywhere."
	case "reactivate":
		t := true
		active, notice = &t, "The member is active again."
	case "end-sessions":
		notice = "Every session of the member has ended."
	default:
		return errNotFound
	}
	if formValue(c, "confirm") != "yes" {
		return a.memberPageWith(c, "", errConfirm)
	}
	if _, err := a.setMemberActive(a.r(c), id, active); err != nil {
		if _, ok := asAPIError(err); !ok {
			return err
		}
		return a.memberPageWith(c, "", err)
	}
	return a.memberPageWith(c, notice, nil)
}

func (a *App) pageProspects(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Prospects", "people")
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "people-prospects", v, err)
	}
	d := &listPage[prospectJSON]{Q: c.Query("q")}
	v.Data = d
	d.Items, d.Next, err = a.listProspects(r, p, d.Q)
	return a.renderOr(c, "people-prospects", v, err)
}

func (a *App) pageChat(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Chat messages", "people")
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "people-chat", v, err)
	}
	d := &listPage[chatJSON]{}
	v.Data = d
	d.Items, d.Next, err = a.listChat(r, p)
	return a.renderOr(c, "people-chat", v, err)
}

func (a *App) pageAddresses(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Default shipping addresses", "people")
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "people-addresses", v, err)
	}
	d := &listPage[shippingAddressJSON]{}
	v.Data = d
	d.Items, d.Next, err = a.listAddresses(r, p)
	return a.renderOr(c, "people-addresses", v, err)
}

type importsPage struct {
	Jobs     []jobJSON
	Next     string
	Exports  []string
	LimitMiB int
}

func (a *App) importsPageWith(c *fiber.Ctx, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Import and export", "imports")
	d := &importsPage{Exports: ExportKinds, LimitMiB: a.maxImport >> 20}
	v.Data = d
	p, err := pageOf(c)
	if err == nil {
		d.Jobs, d.Next, err = a.listJobs(r, p)
	}
	if err != nil {
		return a.renderOr(c, "people-imports", v, err)
	}
	if actionErr != nil {
		v.Form["kind"] = formValue(c, "kind")
	}
	return a.render(c, "people-imports", v, actionErr)
}

func (a *App) pageImports(c *fiber.Ctx) error { return a.importsPageWith(c, nil) }

func (a *App) pageImportUpload(c *fiber.Ctx) error {
	kind, filename, content, err := a.uploadFrom(c)
	if err == nil {
		var j *jobJSON
		if j, err = a.upload(a.r(c), kind, filename, content); err == nil {
			return c.Redirect("/admin/imports/"+strconv.FormatInt(j.ID, 10), fiber.StatusSeeOther)
		}
	}
	if _, ok := asAPIError(err); !ok {
		return err
	}
	return a.importsPageWith(c, err)
}

type importPage struct {
	Job    *jobJSON
	Report *importReport
}

func (a *App) pageImport(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Import", "imports")
	id, err := pathID(c)
	if err != nil {
		return a.render(c, "done", v, err)
	}
	j, err := a.getJob(r, id)
	if err != nil {
		return a.renderOr(c, "done", v, err)
	}
	d := &importPage{Job: j}
	raw := j.DryRun
	v.Title = "Import " + strconv.FormatInt(j.ID, 10) + ": dry run"
	switch j.Status {
	case "done":
		raw, v.Title = j.Result, "Import "+strconv.FormatInt(j.ID, 10)+": applied"
		v.Notice = "Applied in one transaction. Applying it again changes nothing."
	case "queued":
		v.Title = "Import " + strconv.FormatInt(j.ID, 10) + ": applying"
		v.Notice = "Applying in the background. Reload this page to see the result."
	case "failed":
		v.Title = "Import " + strconv.FormatInt(j.ID, 10) + ": failed"
	}
	d.Report = &importReport{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, d.Report)
	}
	v.Data = d
	return a.render(c, "people-import", v, nil)
}

func (a *App) pageImportApply(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if _, err := a.apply(a.r(c), id); err != nil {
		return err
	}
	return c.Redirect("/admin/imports/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}
