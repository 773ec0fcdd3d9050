package admin

import (
	"cmp"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/tenant/campaigns"
)

// campaignRoutes are the e-mail campaigns (tenant/campaigns): written and
// previewed here, sent by the campaign worker.
func (a *App) campaignRoutes() []route {
	return []route{
		{"GET", "/campaigns", anyStaff, nil, a.apiCampaignList},
		{"POST", "/campaigns", anyStaff, nil, a.apiCampaignCreate},
		{"GET", "/campaigns/:id", anyStaff, nil, a.apiCampaignGet},
		{"PUT", "/campaigns/:id", anyStaff, nil, a.apiCampaignUpdate},
		{"GET", "/campaigns/:id/preview", anyStaff, nil, a.apiCampaignPreview},
		{"POST", "/campaigns/:id/draft", anyStaff, nil, a.apiCampaignDraft},
		{"POST", "/campaigns/:id/send", anyStaff, nil, a.apiCampaignSend},
		{"POST", "/campaigns/:id/stop", anyStaff, nil, a.apiCampaignStop},
	}
}

type campaignIn struct {
	Subject      string     `json:"subject"`
	From         string     `json:"from"`
	Bcc          string     `json:"bcc"`
	Type         string     `json:"type"`
	BodyText     string     `json:"body_text"`
	BodyHTML     string     `json:"body_html"`
	VerifiedOnly bool       `json:"verified_only"`
	JoinedAfter  *time.Time `json:"joined_after"`
}

type campaignJSON struct {
	ID           int64      `json:"id"`
	Subject      string     `json:"subject"`
	From         string     `json:"from"`
	Bcc          string     `json:"bcc"`
	Type         string     `json:"type"`
	BodyText     string     `json:"body_text"`
	BodyHTML     string     `json:"body_html"`
	EmCd         string     `json:"em_cd"`
	Status       string     `json:"status"`
	SendState    string     `json:"send_state"`
	SendAfter    *time.Time `json:"send_after"`
	VerifiedOnly bool       `json:"verified_only"`
	JoinedAfter  *time.Time `json:"joined_after"`
	StartedAt    *time.Time `json:"send_started_at"`
	FinishedAt   *time.Time `json:"send_finished_at"`
	Recipients   int        `json:"recipients"`
	Sent         int        `json:"sent"`
	Skipped      int        `json:"skipped"`
	Pending      int        `json:"pending"`
	Delivered    int        `json:"delivered"`
	Failed       int        `json:"failed"`
	Bounced      int        `json:"bounced"`
}

func toCampaignJSON(c *campaigns.Campaign) campaignJSON {
	return campaignJSON{ID: c.ID, Subject: c.Subject, From: c.From, Bcc: c.Bcc, Type: c.Type.String(),
		BodyText: c.Text, BodyHTML: c.HTML, EmCd: c.EmCd, Status: c.Status.String(), SendState: c.SendState,
		SendAfter: c.SendAfter, VerifiedOnly: c.VerifiedOnly, JoinedAfter: c.JoinedAfter,
		StartedAt: c.StartedAt, FinishedAt: c.FinishedAt, Recipients: c.Pending + c.SentCount + c.Skipped,
		Sent: c.SentCount, Skipped: c.Skipped, Pending: c.Pending, Delivered: c.Delivered, Failed: c.Failed, Bounced: c.Bounced}
}

// input checks the request's fields; the From defaults to the tenant's.
func (a *App) campaignInput(r *req, in campaignIn) (campaigns.Input, error) {
	typ, ok := campaigns.ParseType(in.Type)
	if !ok {
		return campaigns.Input{}, invalid("type", "type is member or prospect")
	}
	from := strings.TrimSpace(in.From)
	if from == "" {
		from = cmp.Or(r.tenant.Settings.FromAddress, a.from)
	}
	out := campaigns.Input{Subject: strings.TrimSpace(in.Subject), From: from, Bcc: strings.TrimSpace(in.Bcc),
		Type: typ, Text: in.BodyText, HTML: in.BodyHTML, Filters: campaigns.Filters{VerifiedOnly: in.VerifiedOnly, JoinedAfter: in.JoinedAfter}}
	return out, campaignError(out.Check())
}

// campaignError maps the domain's errors to the API's.
func campaignError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, campaigns.ErrNotFound):
		return errNotFound
	case errors.Is(err, campaigns.ErrInvalid):
		// The message is the domain's: "invalid campaign: <field>: <why>".
		detail := strings.TrimPrefix(err.Error(), campaigns.ErrInvalid.Error()+": ")
		field, _, _ := strings.Cut(detail, ":")
		if strings.Contains(field, " ") {
			field = ""
		}
		return invalid(field, detail)
	case errors.Is(err, campaigns.ErrState):
		return &apiError{Status: fiber.StatusConflict, Code: "conflict",
			Detail: strings.TrimPrefix(err.Error(), campaigns.ErrState.Error()+": ")}
	}
	return err
}

func (a *App) apiCampaignList(c *fiber.Ctx) error {
	r := a.r(c)
	var list []*campaigns.Campaign
	err := a.conn(r, func(conn *pgxpool.Conn) (err error) {
		list, err = campaigns.List(r.ctx, conn)
		return err
	})
	if err != nil {
		return err
	}
	out := make([]campaignJSON, 0, len(list))
	for _, cp := range list {
		out = append(out, toCampaignJSON(cp))
	}
	return c.JSON(fiber.Map{"campaigns": out})
}

// loadCampaign answers the campaign named by the path.
func (a *App) loadCampaign(r *req, id int64) (campaignJSON, error) {
	var cp *campaigns.Campaign
	err := a.conn(r, func(conn *pgxpool.Conn) (err error) {
		cp, err = campaigns.Get(r.ctx, conn, id)
		return err
	})
	if err != nil {
		return campaignJSON{}, campaignError(err)
	}
	return toCampaignJSON(cp), nil
}

func (a *App) apiCampaignGet(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	out, err := a.loadCampaign(a.r(c), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (a *App) apiCampaignCreate(c *fiber.Ctx) error { return a.saveCampaign(c, 0) }

func (a *App) apiCampaignUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	return a.saveCampaign(c, id)
}

// saveCampaign answers a create (id 0) or replace of a campaign.
func (a *App) saveCampaign(c *fiber.Ctx, id int64) error {
	r := a.r(c)
	var in campaignIn
	if err := body(c, &in); err != nil {
		return err
	}
	created := id == 0
	id, err := a.storeCampaign(r, id, in)
	if err != nil {
		return err
	}
	out, err := a.loadCampaign(r, id)
	if err != nil {
		return err
	}
	if created {
		c.Status(fiber.StatusCreated)
	}
	return c.JSON(out)
}

// storeCampaign creates (id 0) or replaces a campaign, audited, and
// returns its id.
func (a *App) storeCampaign(r *req, id int64, in campaignIn) (int64, error) {
	cin, err := a.campaignInput(r, in)
	if err != nil {
		return 0, err
	}
	action := "campaign.update"
	err = a.tx(r, func(tx pgx.Tx) (err error) {
		if id == 0 {
			action = "campaign.create"
			id, err = campaigns.Create(r.ctx, tx, cin)
		} else {
			err = campaigns.Update(r.ctx, tx, id, cin)
		}
		if err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: action, TargetType: "campaign", TargetID: id,
			After: map[string]string{"subject": cin.Subject, "type": cin.Type.String()}})
	})
	return id, campaignError(err)
}

// campaignPreview is a campaign rendered for one recipient.
type campaignPreview struct {
	MemberID   int64             `json:"member_id"`
	ProspectID int64             `json:"prospect_id"`
	To         string            `json:"to"`
	From       string            `json:"from"`
	Subject    string            `json:"subject"`
	BodyText   string            `json:"body_text"`
	BodyHTML   string            `json:"body_html"`
	Headers    map[string]string `json:"headers"`
}

// apiCampaignPreview renders a campaign for member_id or prospect_id (as
// its type says), or for the first of its segment when neither is given.
func (a *App) apiCampaignPreview(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	out, err := a.previewCampaign(a.r(c), id, func(param string) string { return c.Query(param) })
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// previewCampaign renders campaign id for the recipient arg names (its
// "member_id" or "prospect_id"; empty: the first of the segment).
func (a *App) previewCampaign(r *req, id int64, arg func(param string) string) (*campaignPreview, error) {
	var out *campaignPreview
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		cp, err := campaigns.Get(r.ctx, conn, id)
		if err != nil {
			return err
		}
		param := "member_id"
		if cp.Type == campaigns.Prospect {
			param = "prospect_id"
		}
		var rc campaigns.Recipient
		if v := arg(param); v != "" {
			pid, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || pid < 1 {
				return invalid(param, param+" is a positive integer")
			}
			if rc, err = campaigns.FindRecipient(r.ctx, conn, cp.Type, pid); errors.Is(err, campaigns.ErrNotFound) {
				return invalid(param, "no such "+cp.Type.String())
			}
		} else {
			var list []campaigns.Recipient
			list, _, err = campaigns.Segment(r.ctx, conn, cp.Type, cp.Filters, 1)
			if err == nil && len(list) == 0 {
				return invalid(param, "nobody is in the segment: name a "+param)
			}
			if err == nil {
				rc = list[0]
			}
		}
		if err != nil {
			return err
		}
		m, err := campaigns.Compose(cp, rc, campaigns.TenantLinks(r.tenant), nil)
		if err != nil {
			return err
		}
		out = &campaignPreview{MemberID: rc.MemberID, ProspectID: rc.ProspectID, To: m.To[0], From: m.From,
			Subject: m.Subject, BodyText: m.Text, BodyHTML: m.HTML, Headers: m.Headers}
		return nil
	})
	return out, campaignError(err)
}

// apiCampaignDraft mails the signed-in staff member a copy marked DRAFT
// with the list of who would receive it.
func (a *App) apiCampaignDraft(c *fiber.Ctx) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	n, err := a.sendDraft(r, id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"to": r.who.staff.Email, "recipients": n})
}

// sendDraft queues the DRAFT copy of campaign id to the signed-in staff
// member and returns how many would receive the campaign.
func (a *App) sendDraft(r *req, id int64) (int, error) {
	var n int
	err := a.tx(r, func(tx pgx.Tx) error {
		cp, err := campaigns.Get(r.ctx, tx, id)
		if err != nil {
			return err
		}
		if n, err = campaigns.QueueDraft(r.ctx, tx, cp, r.who.staff.Name, r.who.staff.Email, campaigns.TenantLinks(r.tenant)); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "campaign.draft", TargetType: "campaign", TargetID: id,
			After: map[string]any{"to": r.who.staff.Email, "recipients": n}})
	})
	return n, campaignError(err)
}

// apiCampaignSend starts (or resumes) sending to the segment, now or at
// the body's "at".
func (a *App) apiCampaignSend(c *fiber.Ctx) error {
	var in struct {
		At *time.Time `json:"at"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	return a.campaignAction(c, "campaign.send", in.At)
}

// apiCampaignStop pauses a campaign being sent; send resumes it.
func (a *App) apiCampaignStop(c *fiber.Ctx) error { return a.campaignAction(c, "campaign.stop", nil) }

func (a *App) campaignAction(c *fiber.Ctx, action string, at *time.Time) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := a.campaignDo(r, id, action, at); err != nil {
		return err
	}
	out, err := a.loadCampaign(r, id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(out)
}

// campaignDo sends (campaign.send, from at when given) or stops
// (campaign.stop) campaign id, audited.
func (a *App) campaignDo(r *req, id int64, action string, at *time.Time) error {
	err := a.tx(r, func(tx pgx.Tx) error {
		var err error
		var after any
		if action == "campaign.send" {
			var when time.Time
			if at != nil {
				when, after = *at, *at
			}
			if _, err = campaigns.Schedule(r.ctx, tx, id, when); err == nil {
				err = checkEmailQuota(r.ctx, tx, r.tenant.Plan)
			}
		} else {
			err = campaigns.Stop(r.ctx, tx, id)
		}
		if err != nil {
			return err
		}
		var detail any
		if after != nil {
			detail = map[string]any{"at": after}
		}
		return r.audit(tx, auditEntry{Action: action, TargetType: "campaign", TargetID: id, After: detail})
	})
	return campaignError(err)
}
