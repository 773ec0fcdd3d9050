package admin

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/platform/sites"
)

// An owner deploys the shop's own site, or serves a kept version again,
// from the back office. The data plane may only read the registry's sites
// tables: the request (and a deploy's bundle) is kept in the tenant's
// database (site_deploy_request), and the registry's
// backoffice_queue_site_request tells the control plane, whose worker
// carries it out and writes the outcome back to the request's row.

// MaxSiteBundle is the largest bundle the back office takes: the
// platform's bundle limit.
const MaxSiteBundle = sites.DefaultBundleBytes

// MaxSiteBody is the body limit of a bundle upload: the bundle and, on the
// page, the multipart envelope around it.
const MaxSiteBody = int(MaxSiteBundle) + 64<<10

// siteRequestsShown is how many of the latest requests the site answer lists.
const siteRequestsShown = 20

// siteVersion is a kept version of the site, as the registry has it.
type siteVersion struct {
	Number    int       `json:"number"`
	Ready     bool      `json:"ready"`
	Current   bool      `json:"current"`
	Files     int       `json:"files"`
	Bytes     int64     `json:"bytes"`
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"created_at"`
}

// siteRequest is a deploy or rollback asked for in the back office.
type siteRequest struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	SHA256     string     `json:"sha256,omitempty"`
	Version    *int       `json:"version,omitempty"`
	StaffID    *int64     `json:"staff_id"`
	Status     string     `json:"status"`
	Result     *int       `json:"result"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// siteState is the site page's and GET /site's answer.
type siteState struct {
	CurrentVersion *int          `json:"current_version"`
	Versions       []siteVersion `json:"versions"`
	Requests       []siteRequest `json:"requests"`
}

func (a *App) siteState(r *req) (*siteState, error) {
	if a.registry == nil {
		return nil, errNoRegistry
	}
	st := &siteState{Versions: []siteVersion{}, Requests: []siteRequest{}}
	var raw []byte
	err := a.registry.QueryRow(r.ctx, `SELECT coalesce(json_agg(json_build_object('number', v.number,
		'ready', v.status = 'ready', 'current', v.id IS NOT DISTINCT FROM s.current_version, 'files', v.files,
		'bytes', v.bytes, 'actor', v.actor, 'created_at', v.created_at) ORDER BY v.number DESC), '[]')
		FROM site_versions v LEFT JOIN sites s ON s.tenant_id = v.tenant_id WHERE v.tenant_id = $1`, r.tenant.ID).Scan(&raw)
	if err != nil {
		return nil, fmt.Errorf("site: %w", err)
	}
	if err := json.Unmarshal(raw, &st.Versions); err != nil {
		return nil, fmt.Errorf("site: %w", err)
	}
	for _, v := range st.Versions {
		if v.Current {
			n := v.Number
			st.CurrentVersion = &n
		}
	}
	err = a.tx(r, func(c pgx.Tx) error {
		rows, err := c.Query(r.ctx, `SELECT id, kind, coalesce(encode(sha256, 'hex'), ''), version, staff_id, status, result,
			error, created_at, finished_at FROM site_deploy_request ORDER BY id DESC LIMIT $1`, siteRequestsShown)
		if err != nil {
			return err
		}
		st.Requests, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (siteRequest, error) {
			var q siteRequest
			err := row.Scan(&q.ID, &q.Kind, &q.SHA256, &q.Version, &q.StaffID, &q.Status, &q.Result, &q.Error, &q.CreatedAt, &q.FinishedAt)
			return q, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("site: %w", err)
	}
	return st, nil
}

// requestSite records a deploy (bundle) or rollback (version) with its
// audit entry, then queues it in the registry. The two databases share no
// transaction: a request whose queuing failed is marked failed; one left
// queued by a crash between the two is queued again by the next site
// answer (queueStale), the registry's function taking a request twice as
// once.
func (a *App) requestSite(r *req, kind string, bundle []byte, version int) (*siteRequest, error) {
	if a.registry == nil {
		return nil, errNoRegistry
	}
	q := siteRequest{Kind: kind, Status: "queued", StaffID: &r.who.staff.ID}
	var sum, data, ver any
	if kind == "deploy" {
		s := sha256.Sum256(bundle)
		sum, data = s[:], bundle
		q.SHA256 = fmt.Sprintf("%x", s)
	} else {
		ver, q.Version = version, &version
	}
	err := a.tx(r, func(tx pgx.Tx) error {
		if err := tx.QueryRow(r.ctx, `INSERT INTO site_deploy_request (kind, bundle, sha256, version, staff_id)
			VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at`, kind, data, sum, ver, r.who.staff.ID).Scan(&q.ID, &q.CreatedAt); err != nil {
			return err
		}
		after := map[string]any{"kind": kind, "request": q.ID}
		if kind == "deploy" {
			after["sha256"], after["bytes"] = q.SHA256, len(bundle)
		} else {
			after["version"] = version
		}
		return r.audit(tx, auditEntry{Action: "site." + kind + "_requested", TargetType: "site_deploy_request", TargetID: q.ID, After: after})
	})
	if err != nil {
		return nil, err
	}
	if err := a.queueSite(r, q.ID); err != nil {
		a.log.Error("site request: queue", "request", q.ID, "err", err)
		_ = a.tx(r, func(tx pgx.Tx) error {
			_, err := tx.Exec(r.ctx, `UPDATE site_deploy_request SET status = 'failed', error = $2, bundle = NULL, finished_at = now()
				WHERE id = $1 AND status = 'queued'`, q.ID, "the request could not be queued; try again")
			return err
		})
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, &apiError{Status: fiber.StatusServiceUnavailable, Code: "unavailable", Detail: "the request could not be queued; try again"}
	}
	return &q, nil
}

func (a *App) queueSite(r *req, id int64) error {
	_, err := a.registry.Exec(r.ctx, `SELECT backoffice_queue_site_request($1, $2)`, r.tenant.ID, id)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "P0002" {
		return &apiError{Status: fiber.StatusConflict, Code: "tenant-not-serving", Detail: "the shop is being changed by the platform; try again later"}
	}
	return err
}

// queueStale queues again the requests queued over a minute ago and not
// finished (the back office stopped between recording and queuing one).
func (a *App) queueStale(r *req, st *siteState) {
	for _, q := range st.Requests {
		if q.Status == "queued" && a.now().Sub(q.CreatedAt) > time.Minute {
			if err := a.queueSite(r, q.ID); err != nil {
				a.log.Warn("site request: queue again", "request", q.ID, "err", err)
			}
		}
	}
}

// checkBundle refuses an upload that is empty, over the limit or no gzip
// stream; the control plane checks the rest (sites.ReadBundle) and the
// request records its reason.
func checkBundle(b []byte) error {
	switch {
	case len(b) == 0:
		return required("bundle")
	case int64(len(b)) > MaxSiteBundle:
		return &apiError{Status: fiber.StatusRequestEntityTooLarge, Code: "too-large", Field: "bundle",
			Detail: fmt.Sprintf("the bundle is over the limit of %d MiB", MaxSiteBundle>>20)}
	case len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b:
		return invalid("bundle", "the bundle is a .tar.gz")
	}
	return nil
}

func (a *App) apiSiteGet(c *fiber.Ctx) error {
	r := a.r(c)
	st, err := a.siteState(r)
	if err != nil {
		return err
	}
	a.queueStale(r, st)
	return c.JSON(st)
}

// apiSiteDeploy takes the .tar.gz in the body and answers 202 with the
// queued request.
func (a *App) apiSiteDeploy(c *fiber.Ctx) error {
	b := c.Body()
	if err := checkBundle(b); err != nil {
		return err
	}
	q, err := a.requestSite(a.r(c), "deploy", b, 0)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(q)
}

func (a *App) apiSiteRollback(c *fiber.Ctx) error {
	var in struct {
		Version int `json:"version"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	if in.Version < 1 {
		return invalid("version", "want the number of a kept version (1, 2, ...)")
	}
	q, err := a.requestSite(a.r(c), "rollback", nil, in.Version)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(q)
}
