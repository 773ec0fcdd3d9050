package admin

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/tenant/account"
)

// Ads: the original's ad records (Google AdWords and Facebook ads with
// their headlines and descriptions) and the ad_cd code each carries in its
// landing URL, which the link events count (the insight dashboard shows
// them per code). Codes are drawn as upstream's: 20 ASCII letters and
// digits, unique.

type adJSON struct {
	ID             int64  `json:"id"`
	Code           string `json:"ad_cd"`
	Type           string `json:"ad_type"`
	Status         string `json:"ad_status"`
	CampaignID     string `json:"campaignid"`
	AdGroupID      string `json:"adgroupid"`
	AdID           string `json:"adid"`
	FinalURL       string `json:"final_url"`
	FinalURLSuffix string `json:"final_url_suffix"`
	Headline1      string `json:"headline_1"`
	Headline2      string `json:"headline_2"`
	Headline3      string `json:"headline_3"`
	Description1   string `json:"description_1"`
	Description2   string `json:"description_2"`
}

// adIn is an ad in a request: type, status and any text field; a create
// needs a type (a status defaults to Draft).
type adIn struct {
	Type           *string `json:"ad_type"`
	Status         *string `json:"ad_status"`
	CampaignID     *string `json:"campaignid"`
	AdGroupID      *string `json:"adgroupid"`
	AdID           *string `json:"adid"`
	FinalURL       *string `json:"final_url"`
	FinalURLSuffix *string `json:"final_url_suffix"`
	Headline1      *string `json:"headline_1"`
	Headline2      *string `json:"headline_2"`
	Headline3      *string `json:"headline_3"`
	Description1   *string `json:"description_1"`
	Description2   *string `json:"description_2"`
}

const adSelect = `SELECT a.id, coalesce(a.ad_cd, ''), t.title, s.title, coalesce(a.campaignid, ''), coalesce(a.adgroupid, ''), coalesce(a.adid, ''),
coalesce(a.final_url, ''), coalesce(a.final_url_suffix, ''), coalesce(a.headline_1, ''), coalesce(a.headline_2, ''), coalesce(a.headline_3, ''),
coalesce(a.description_1, ''), coalesce(a.description_2, '')
FROM ad a JOIN ad_type t ON t.id = a.ad_type_id JOIN ad_status s ON s.id = a.ad_status_id`

// check trims and checks the text fields against their columns' lengths
// (the original's: headlines 30, descriptions 90, the rest 100).
func (in *adIn) check() error {
	for _, f := range []struct {
		name string
		v    *string
		max  int
	}{{"campaignid", in.CampaignID, 100}, {"adgroupid", in.AdGroupID, 100}, {"adid", in.AdID, 100}, {"final_url", in.FinalURL, 100},
		{"final_url_suffix", in.FinalURLSuffix, 100}, {"headline_1", in.Headline1, 30}, {"headline_2", in.Headline2, 30},
		{"headline_3", in.Headline3, 30}, {"description_1", in.Description1, 90}, {"description_2", in.Description2, 90}} {
		if f.v == nil {
			continue
		}
		v, err := text(f.name, *f.v, false, f.max)
		if err != nil {
			return err
		}
		*f.v = v
	}
	if in.FinalURL != nil && *in.FinalURL != "" {
		if u, err := url.Parse(*in.FinalURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return invalid("final_url", "final_url is an http or https URL")
		}
	}
	return nil
}

// refID resolves a type or status title (case-insensitive) to its id.
func refID(r *req, tx pgx.Tx, table, field, title string) (int64, error) {
	var id int64
	err := tx.QueryRow(r.ctx, `SELECT id FROM `+table+` WHERE lower(title) = lower($1) ORDER BY id LIMIT 1`, strings.TrimSpace(title)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		var titles string
		_ = tx.QueryRow(r.ctx, `SELECT string_agg(title, ', ' ORDER BY id) FROM `+table).Scan(&titles)
		return 0, invalid(field, field+" is one of "+titles)
	}
	return id, err
}

func loadAd(r *req, q querier, id int64) (*adJSON, error) {
	rows, err := q.Query(r.ctx, adSelect+` WHERE a.id = $1`, id)
	if err != nil {
		return nil, err
	}
	ad, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[adJSON])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return &ad, err
}

// saveAd creates (id 0) or changes an ad, with its audit row.
func (a *App) saveAd(r *req, id int64, in adIn) (*adJSON, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	if id == 0 && in.Type == nil {
		return nil, required("ad_type")
	}
	var out *adJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		var before *adJSON
		if id != 0 {
			var err error
			if _, err = tx.Exec(r.ctx, `SELECT 1 FROM ad WHERE id = $1 FOR UPDATE`, id); err != nil {
				return err
			}
			if before, err = loadAd(r, tx, id); err != nil {
				return err
			}
			if before == nil {
				return errNotFound
			}
		}
		var typeID, statusID *int64
		for _, ref := range []struct {
			table, field string
			v            *string
			dst          **int64
		}{{"ad_type", "ad_type", in.Type, &typeID}, {"ad_status", "ad_status", in.Status, &statusID}} {
			if ref.v == nil {
				continue
			}
			n, err := refID(r, tx, ref.table, ref.field, *ref.v)
			if err != nil {
				return err
			}
			*ref.dst = &n
		}
		if id == 0 {
			// A drawn code that is taken is drawn again.
			for try := 0; ; try++ {
				err := tx.QueryRow(r.ctx, `INSERT INTO ad (ad_cd, ad_type_id, ad_status_id) VALUES ($1, $2, coalesce($3, (SELECT min(id) FROM ad_status)))
ON CONFLICT (ad_cd) DO NOTHING RETURNING id`, account.RandomString(20), *typeID, statusID).Scan(&id)
				if err == nil {
					break
				}
				if !errors.Is(err, pgx.ErrNoRows) || try > 5 {
					return fmt.Errorf("create ad: %w", err)
				}
			}
		}
		if _, err := tx.Exec(r.ctx, `UPDATE ad SET ad_type_id = coalesce($2, ad_type_id), ad_status_id = coalesce($3, ad_status_id),
campaignid = coalesce($4, campaignid), adgroupid = coalesce($5, adgroupid), adid = coalesce($6, adid), final_url = coalesce($7, final_url),
final_url_suffix = coalesce($8, final_url_suffix), headline_1 = coalesce($9, headline_1), headline_2 = coalesce($10, headline_2),
headline_3 = coalesce($11, headline_3), description_1 = coalesce($12, description_1), description_2 = coalesce($13, description_2) WHERE id = $1`,
			id, typeID, statusID, in.CampaignID, in.AdGroupID, in.AdID, in.FinalURL, in.FinalURLSuffix, in.Headline1, in.Headline2, in.Headline3,
			in.Description1, in.Description2); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "22001" {
				return invalid("", "a field is longer than its column")
			}
			return fmt.Errorf("save ad: %w", err)
		}
		var err error
		if out, err = loadAd(r, tx, id); err != nil {
			return err
		}
		action := "ad.updated"
		if before == nil {
			action = "ad.created"
		}
		return r.audit(tx, auditEntry{Action: action, TargetType: "ad", TargetID: id, Before: nilIfNone(before), After: out})
	})
	return out, err
}

func (a *App) listAds(r *req, p page) ([]adJSON, string, error) {
	var out []adJSON
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(r.ctx, adSelect+` WHERE ($1 = 0 OR a.id > $1) ORDER BY a.id LIMIT $2`, p.after, p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[adJSON])
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("ads: %w", err)
	}
	out, next, _ := pageTail(out, p, func(x adJSON) int64 { return x.ID })
	return out, next, nil
}

func (a *App) apiAdList(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	out, next, err := a.listAds(a.r(c), p)
	if err != nil {
		return err
	}
	return c.JSON(listJSON(out, next))
}

func (a *App) apiAdCreate(c *fiber.Ctx) error {
	var in adIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.saveAd(a.r(c), 0, in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (a *App) apiAdUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in adIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.saveAd(a.r(c), id, in)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// The ads page: the list with each ad's tracking link, a status change per
// ad, and a form for a new one.

type adsPage struct {
	Items    []adJSON
	Next     string
	Frontend string // where tracking links point
	Statuses []string
}

var adStatuses = []string{"Draft", "Ready", "Running", "Stopped"}

func (a *App) pageAds(c *fiber.Ctx) error { return a.adsWith(c, "", nil) }

func (a *App) adsWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Ads", "ads")
	d := &adsPage{Frontend: strings.TrimRight(r.tenant.Settings.FrontendOrigin, "/"), Statuses: adStatuses}
	if d.Frontend == "" {
		d.Frontend = ownOrigin(c)
	}
	v.Data, v.Notice = d, notice
	markDone(c, v, actionErr)
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "ads", v, err)
	}
	if d.Items, d.Next, err = a.listAds(r, p); err != nil {
		return err
	}
	if actionErr != nil {
		keepForm(c, v, "ad_type", "campaignid", "final_url", "headline_1", "headline_2", "description_1")
	}
	return a.render(c, "ads", v, actionErr)
}

func (a *App) pageAdCreate(c *fiber.Ctx) error {
	in := adIn{Type: formText(c, "ad_type"), CampaignID: formText(c, "campaignid"), FinalURL: formText(c, "final_url"),
		Headline1: formText(c, "headline_1"), Headline2: formText(c, "headline_2"), Description1: formText(c, "description_1")}
	ad, err := a.saveAd(a.r(c), 0, in)
	if err != nil {
		return a.adsWith(c, "", err)
	}
	return a.adsWith(c, "Ad created with code "+ad.Code+".", nil)
}

func (a *App) pageAdStatus(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ad, err := a.saveAd(a.r(c), id, adIn{Status: formText(c, "ad_status")})
	if err != nil {
		return a.adsWith(c, "", err)
	}
	return a.adsWith(c, "Ad "+ad.Code+" is now "+ad.Status+".", nil)
}
