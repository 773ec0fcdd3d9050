package admin

import (
	"io"
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// mountSitePages adds the site page (owners): the version served, the
// versions kept with a rollback each, the latest requests, and the upload.
func (a *App) mountSitePages(g fiber.Router) {
	g.Get("/site", a.pageGuard(ownerOnly), a.pageSite)
	g.Post("/site/deploys", a.pageGuard(ownerOnly), a.pageSiteDeploy)
	g.Post("/site/rollbacks", a.pageGuard(ownerOnly), a.pageSiteRollback)
}

// renderSite shows the site page with the outcome of an action (err, or
// notice when it was queued).
func (a *App) renderSite(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Site", "site")
	st, err := a.siteState(r)
	if err != nil {
		return a.render(c, "site", v, err)
	}
	a.queueStale(r, st)
	v.Data, v.Notice = st, notice
	markDone(c, v, actionErr)
	return a.render(c, "site", v, actionErr)
}

func (a *App) pageSite(c *fiber.Ctx) error { return a.renderSite(c, "", nil) }

// errUnconfirmed answers a page action sent without its confirmation box.
var errUnconfirmed = invalid("confirm", "tick the box to confirm")

func (a *App) pageSiteDeploy(c *fiber.Ctx) error {
	if formValue(c, "confirm") != "yes" {
		return a.renderSite(c, "", errUnconfirmed)
	}
	fh, err := c.FormFile("bundle")
	if err != nil {
		return a.renderSite(c, "", required("bundle"))
	}
	f, err := fh.Open()
	if err != nil {
		return a.renderSite(c, "", required("bundle"))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSiteBundle+1))
	if err != nil {
		return err
	}
	if err := checkBundle(b); err != nil {
		return a.renderSite(c, "", err)
	}
	q, err := a.requestSite(a.r(c), "deploy", b, 0)
	if err != nil {
		return a.renderSite(c, "", err)
	}
	return a.renderSite(c, "Deploy request "+strconv.FormatInt(q.ID, 10)+" queued; the site is served within a minute. Reload this page to see its status.", nil)
}

func (a *App) pageSiteRollback(c *fiber.Ctx) error {
	if formValue(c, "confirm") != "yes" {
		return a.renderSite(c, "", errUnconfirmed)
	}
	n, err := strconv.Atoi(formValue(c, "version"))
	if err != nil || n < 1 {
		return a.renderSite(c, "", invalid("version", "want the number of a kept version (1, 2, ...)"))
	}
	q, err := a.requestSite(a.r(c), "rollback", nil, n)
	if err != nil {
		return a.renderSite(c, "", err)
	}
	return a.renderSite(c, "Rollback to version "+strconv.Itoa(n)+" queued (request "+strconv.FormatInt(q.ID, 10)+"). Reload this page to see its status.", nil)
}
