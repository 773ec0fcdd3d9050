package admin

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/tenant/campaigns"
)

// The campaign pages: the list with each send's counts and a form for a
// new campaign; a campaign's page to edit it, preview it for a recipient,
// mail the DRAFT copy to oneself, send it (confirmed) or stop it, and its
// send log.

func (a *App) mountCampaignPages(g fiber.Router) {
	guard := a.pageGuard(anyStaff)
	g.Get("/campaigns", guard, a.pageCampaigns)
	g.Post("/campaigns", guard, a.pageCampaignCreate)
	g.Get("/campaigns/:id", guard, a.pageCampaign)
	g.Post("/campaigns/:id", guard, a.pageCampaignUpdate)
	g.Post("/campaigns/:id/draft", guard, a.pageCampaignDraft)
	g.Post("/campaigns/:id/send", guard, a.pageCampaignSend)
	g.Post("/campaigns/:id/stop", guard, a.pageCampaignStop)
}

var campaignFields = []string{"subject", "from", "bcc", "type", "body_text", "body_html", "verified_only", "joined_after"}

func campaignForm(c *fiber.Ctx) (campaignIn, error) {
	in := campaignIn{Subject: c.FormValue("subject"), From: c.FormValue("from"), Bcc: c.FormValue("bcc"),
		Type: c.FormValue("type"), BodyText: c.FormValue("body_text"), BodyHTML: c.FormValue("body_html"),
		VerifiedOnly: c.FormValue("verified_only") == "yes"}
	var err error
	in.JoinedAfter, err = formTime(c, "joined_after")
	return in, err
}

func (a *App) pageCampaigns(c *fiber.Ctx) error { return a.campaignsWith(c, "", nil) }

func (a *App) campaignsWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Campaigns", "campaigns")
	v.Notice = notice
	var list []*campaigns.Campaign
	err := a.conn(r, func(conn *pgxpool.Conn) (err error) {
		list, err = campaigns.List(r.ctx, conn)
		return err
	})
	if err != nil {
		return err
	}
	items := make([]campaignJSON, 0, len(list))
	for _, cp := range list {
		items = append(items, toCampaignJSON(cp))
	}
	v.Data = items
	if actionErr != nil {
		keepForm(c, v, campaignFields...)
	} else {
		v.Form["type"] = "member"
	}
	return a.render(c, "campaigns", v, actionErr)
}

func (a *App) pageCampaignCreate(c *fiber.Ctx) error {
	in, err := campaignForm(c)
	var id int64
	if err == nil {
		id, err = a.storeCampaign(a.r(c), 0, in)
	}
	if err != nil {
		return a.campaignsWith(c, "", err)
	}
	return c.Redirect("/admin/campaigns/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}

type campaignPage struct {
	campaignJSON
	Preview      *campaignPreview
	PreviewError string
	Scheduled    string // when a send set for later starts; "" for none
}

func (a *App) pageCampaign(c *fiber.Ctx) error { return a.campaignWith(c, "", nil) }

func (a *App) campaignWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return a.render(c, "done", a.view(r, "Not found", "campaigns"), err)
	}
	cp, err := a.loadCampaign(r, id)
	if err != nil {
		if _, ok := asAPIError(err); ok {
			return a.render(c, "done", a.view(r, "Not found", "campaigns"), err)
		}
		return err
	}
	v := a.view(r, cp.Subject, "campaigns")
	v.Notice = notice
	markDone(c, v, actionErr)
	d := &campaignPage{campaignJSON: cp}
	if cp.SendState == "sending" && cp.SendAfter != nil && cp.SendAfter.After(a.now()) {
		d.Scheduled = cp.SendAfter.UTC().Format("2006-01-02 15:04 UTC")
	}
	// The preview is for the recipient asked for, else the first of the
	// segment; a campaign nobody would receive says so instead.
	if d.Preview, err = a.previewCampaign(r, id, func(param string) string { return c.Query(param) }); err != nil {
		ae, ok := asAPIError(err)
		if !ok {
			return err
		}
		d.PreviewError = sentence(ae.Detail)
	}
	v.Data = d
	if actionErr != nil && c.Path() == "/admin/campaigns/"+strconv.FormatInt(id, 10) {
		keepForm(c, v, campaignFields...)
	} else {
		for k, val := range map[string]string{"subject": cp.Subject, "from": cp.From, "bcc": cp.Bcc, "type": cp.Type,
			"body_text": cp.BodyText, "body_html": cp.BodyHTML} {
			v.Form[k] = val
		}
		if cp.VerifiedOnly {
			v.Form["verified_only"] = "yes"
		}
		if cp.JoinedAfter != nil {
			v.Form["joined_after"] = cp.JoinedAfter.UTC().Format("2006-01-02T15:04")
		}
	}
	return a.render(c, "campaign", v, actionErr)
}

func (a *App) pageCampaignUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	in, err := campaignForm(c)
	if err == nil {
		_, err = a.storeCampaign(a.r(c), id, in)
	}
	if err != nil {
		return a.campaignWith(c, "", err)
	}
	return a.campaignWith(c, "Campaign saved.", nil)
}

func (a *App) pageCampaignDraft(c *fiber.Ctx) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	n, err := a.sendDraft(r, id)
	if err != nil {
		return a.campaignWith(c, "", err)
	}
	return a.campaignWith(c, "The DRAFT copy is on its way to "+r.who.staff.Email+", with the "+strconv.Itoa(n)+" addresses that would receive it.", nil)
}

func (a *App) pageCampaignSend(c *fiber.Ctx) error {
	if c.FormValue("confirm") != "yes" {
		return a.campaignWith(c, "", &apiError{Status: fiber.StatusBadRequest, Code: "confirm", Field: "confirm", Detail: "tick the box to confirm"})
	}
	at, err := formTime(c, "at")
	if err != nil {
		return a.campaignWith(c, "", err)
	}
	notice := "Sending: the counts below move as the mails go out."
	if at != nil && at.After(a.now()) {
		notice = "Scheduled for " + at.UTC().Format("2006-01-02 15:04 UTC") + "."
	}
	return a.campaignStep(c, "campaign.send", at, notice)
}

func (a *App) pageCampaignStop(c *fiber.Ctx) error {
	return a.campaignStep(c, "campaign.stop", nil, "Stopped. Send again to resume where it stopped; nobody is mailed twice.")
}

func (a *App) campaignStep(c *fiber.Ctx, action string, at *time.Time, notice string) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := a.campaignDo(a.r(c), id, action, at); err != nil {
		return a.campaignWith(c, "", err)
	}
	return a.campaignWith(c, notice, nil)
}
