package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/tenant/orders"
)

// People: the shop's members (with their account), prospects, chat
// messages and default shipping addresses. Owners and staff alike may read
// them and deactivate a member; every change is audited.

type memberJSON struct {
	ID                   int64      `json:"id"`
	AccountID            int64      `json:"account_id"`
	Username             string     `json:"username"`
	FirstName            string     `json:"first_name"`
	LastName             string     `json:"last_name"`
	Email                string     `json:"email"`
	Active               bool       `json:"active"`
	EmailVerified        bool       `json:"email_verified"`
	NewsletterSubscriber bool       `json:"newsletter_subscriber"`
	EmailUnsubscribed    bool       `json:"email_unsubscribed"`
	MbCd                 *string    `json:"mb_cd"`
	DateJoined           time.Time  `json:"date_joined"`
	LastLogin            *time.Time `json:"last_login"`
}

const memberColumns = `m.id, a.id, a.username, a.first_name, a.last_name, a.email, a.is_active, m.email_verified,
m.newsletter_subscriber, m.email_unsubscribed, m.mb_cd, a.date_joined, a.last_login`

func scanMember(row pgx.Row) (memberJSON, error) {
	var m memberJSON
	err := row.Scan(&m.ID, &m.AccountID, &m.Username, &m.FirstName, &m.LastName, &m.Email, &m.Active, &m.EmailVerified,
		&m.NewsletterSubscriber, &m.EmailUnsubscribed, &m.MbCd, &m.DateJoined, &m.LastLogin)
	return m, err
}

// likePattern is q as an ILIKE pattern matching q anywhere, its wildcards
// taken literally.
func likePattern(q string) string {
	q = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.TrimSpace(q))
	return "%" + q + "%"
}

// listMembers returns a page of members, newest first; q (when not empty)
// matches the name, address or username anywhere, ignoring case.
func (a *App) listMembers(r *req, p page, q string) ([]memberJSON, string, error) {
	if len(q) > 254 {
		return nil, "", invalid("q", "the search is too long (254 characters at most)")
	}
	var out []memberJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		rows, err := c.Query(r.ctx, `SELECT `+memberColumns+` FROM member m JOIN account a ON a.id = m.account_id
WHERE ($1 = 0 OR m.id < $1) AND ($2 = '' OR a.email ILIKE $3 OR a.username ILIKE $3 OR a.first_name ILIKE $3
  OR a.last_name ILIKE $3 OR (a.first_name || ' ' || a.last_name) ILIKE $3)
ORDER BY m.id DESC LIMIT $4`, p.after, strings.TrimSpace(q), likePattern(q), p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (memberJSON, error) { return scanMember(row) })
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list members: %w", err)
	}
	return pageTail(out, p, func(m memberJSON) int64 { return m.ID })
}

// pageTail cuts the look-ahead row off a page and makes its cursor.
func pageTail[T any](out []T, p page, id func(T) int64) ([]T, string, error) {
	if len(out) > p.limit {
		out = out[:p.limit]
		return out, encodeCursor(id(out[len(out)-1])), nil
	}
	return out, "", nil
}

type memberOrderJSON struct {
	ID         int64           `json:"id"`
	Identifier string          `json:"identifier"`
	Date       time.Time       `json:"order_date_time"`
	SalesTax   decimal.Decimal `json:"sales_tax"`
	Total      decimal.Decimal `json:"order_total"`
}

type shippingAddressJSON struct {
	ID           int64   `json:"id"`
	MemberID     *int64  `json:"member_id"`
	Name         *string `json:"name"`
	AddressLine1 *string `json:"address_line1"`
	City         *string `json:"city"`
	State        *string `json:"state"`
	Zip          *string `json:"zip"`
	Country      *string `json:"country"`
	CountryCode  *string `json:"country_code"`
}

type memberDetailJSON struct {
	memberJSON
	Orders          []memberOrderJSON    `json:"orders"`
	ChatMessages    []chatJSON           `json:"chat_messages"`
	ShippingAddress *shippingAddressJSON `json:"default_shipping_address"`
}

func queryMember(ctx context.Context, c *pgxpool.Conn, id int64) (*memberJSON, error) {
	m, err := scanMember(c.QueryRow(ctx, `SELECT `+memberColumns+` FROM member m JOIN account a ON a.id = m.account_id WHERE m.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// memberDetail is a member with their orders (the order read model's
// history), chat messages and default shipping address.
func (a *App) memberDetail(r *req, id int64) (*memberDetailJSON, error) {
	var d *memberDetailJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		m, err := queryMember(r.ctx, c, id)
		if err != nil || m == nil {
			return err
		}
		d = &memberDetailJSON{memberJSON: *m, Orders: []memberOrderJSON{}}
		sums, err := orders.ForMember(r.ctx, c, id)
		if err != nil {
			return err
		}
		for _, s := range sums {
			d.Orders = append(d.Orders, memberOrderJSON{s.ID, s.Identifier, s.OrderDateTime, s.SalesTax, s.OrderTotal})
		}
		if d.ChatMessages, err = queryChat(r.ctx, c, page{limit: maxLimit}, id); err != nil {
			return err
		}
		addrs, err := queryAddresses(r.ctx, c, page{limit: 1}, id)
		if err != nil {
			return err
		}
		if len(addrs) > 0 {
			d.ShippingAddress = &addrs[0]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("member detail: %w", err)
	}
	if d == nil {
		return nil, errNotFound
	}
	return d, nil
}

type prospectJSON struct {
	ID                int64      `json:"id"`
	Email             *string    `json:"email"`
	FirstName         *string    `json:"first_name"`
	LastName          *string    `json:"last_name"`
	Phone             *string    `json:"phone"`
	EmailUnsubscribed bool       `json:"email_unsubscribed"`
	PrCd              *string    `json:"pr_cd"`
	ProspectComment   *string    `json:"prospect_comment"`
	SwaComment        *string    `json:"swa_comment"`
	Created           time.Time  `json:"created_date_time"`
	Converted         *time.Time `json:"converted_date_time"`
}

const prospectColumns = `id, email, first_name, last_name, phone, email_unsubscribed, pr_cd, prospect_comment, swa_comment,
created_date_time, converted_date_time`

func scanProspect(row pgx.Row) (prospectJSON, error) {
	var p prospectJSON
	err := row.Scan(&p.ID, &p.Email, &p.FirstName, &p.LastName, &p.Phone, &p.EmailUnsubscribed, &p.PrCd, &p.ProspectComment,
		&p.SwaComment, &p.Created, &p.Converted)
	return p, err
}

// listProspects returns a page of prospects, newest first, optionally
// matching q in the name or address.
func (a *App) listProspects(r *req, p page, q string) ([]prospectJSON, string, error) {
	if len(q) > 254 {
		return nil, "", invalid("q", "the search is too long (254 characters at most)")
	}
	var out []prospectJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		rows, err := c.Query(r.ctx, `SELECT `+prospectColumns+` FROM prospect
WHERE ($1 = 0 OR id < $1) AND ($2 = '' OR email ILIKE $3 OR first_name ILIKE $3 OR last_name ILIKE $3)
ORDER BY id DESC LIMIT $4`, p.after, strings.TrimSpace(q), likePattern(q), p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prospectJSON, error) { return scanProspect(row) })
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list prospects: %w", err)
	}
	return pageTail(out, p, func(v prospectJSON) int64 { return v.ID })
}

type chatJSON struct {
	ID         int64     `json:"id"`
	MemberID   *int64    `json:"member_id"`
	ProspectID *int64    `json:"prospect_id"`
	Name       *string   `json:"name"`
	Email      *string   `json:"email_address"`
	Message    *string   `json:"message"`
	Created    time.Time `json:"created_date_time"`
}

// queryChat returns chat messages newest first; memberID > 0 keeps one
// member's.
func queryChat(ctx context.Context, c *pgxpool.Conn, p page, memberID int64) ([]chatJSON, error) {
	rows, err := c.Query(ctx, `SELECT id, member_id, prospect_id, name, email_address, message, created_date_time
FROM chat_message WHERE ($1 = 0 OR id < $1) AND ($2 = 0 OR member_id = $2)
ORDER BY id DESC LIMIT $3`, p.after, memberID, p.limit+1)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (chatJSON, error) {
		var m chatJSON
		err := row.Scan(&m.ID, &m.MemberID, &m.ProspectID, &m.Name, &m.Email, &m.Message, &m.Created)
		return m, err
	})
}

func (a *App) listChat(r *req, p page) ([]chatJSON, string, error) {
	var out []chatJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var err error
		out, err = queryChat(r.ctx, c, p, 0)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list chat messages: %w", err)
	}
	return pageTail(out, p, func(v chatJSON) int64 { return v.ID })
}

// queryAddresses returns default shipping addresses, newest first, with
// the member using each; memberID > 0 keeps one member's.
func queryAddresses(ctx context.Context, c *pgxpool.Conn, p page, memberID int64) ([]shippingAddressJSON, error) {
	rows, err := c.Query(ctx, `SELECT d.id, m.id, d.name, d.address_line1, d.city, d.state, d.zip, d.country, d.country_code
FROM default_shipping_address d LEFT JOIN member m ON m.default_shipping_address_id = d.id
WHERE ($1 = 0 OR d.id < $1) AND ($2 = 0 OR m.id = $2) ORDER BY d.id DESC LIMIT $3`, p.after, memberID, p.limit+1)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (shippingAddressJSON, error) {
		var v shippingAddressJSON
		err := row.Scan(&v.ID, &v.MemberID, &v.Name, &v.AddressLine1, &v.City, &v.State, &v.Zip, &v.Country, &v.CountryCode)
		return v, err
	})
}

func (a *App) listAddresses(r *req, p page) ([]shippingAddressJSON, string, error) {
	var out []shippingAddressJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var err error
		out, err = queryAddresses(r.ctx, c, p, 0)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list addresses: %w", err)
	}
	return pageTail(out, p, func(v shippingAddressJSON) int64 { return v.ID })
}

// setMemberActive (de)activates a member's account, audited in the same
// transaction, then ends every session of theirs. The member app refuses
// the session of an inactive account on its next request anyway, so a
// session missed here (Redis unreachable) cannot outlive the change.
// Ending sessions without deactivating (active nil) is audited too.
func (a *App) setMemberActive(r *req, id int64, active *bool) (*memberJSON, error) {
	var after *memberJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		var accountID int64
		var was bool
		err := tx.QueryRow(r.ctx, `SELECT a.id, a.is_active FROM member m JOIN account a ON a.id = m.account_id
WHERE m.id = $1 FOR UPDATE OF a`, id).Scan(&accountID, &was)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		action := "member.sessions_ended"
		var before, now any
		if active != nil {
			if _, err := tx.Exec(r.ctx, `UPDATE account SET is_active = $2 WHERE id = $1`, accountID, *active); err != nil {
				return err
			}
			action = "member.reactivated"
			if !*active {
				action = "member.deactivated"
			}
			before, now = map[string]bool{"active": was}, map[string]bool{"active": *active}
		}
		if err := r.audit(tx, auditEntry{Action: action, TargetType: "member", TargetID: id, Before: before, After: now}); err != nil {
			return err
		}
		m, err := scanMember(tx.QueryRow(r.ctx, `SELECT `+memberColumns+` FROM member m JOIN account a ON a.id = m.account_id WHERE m.id = $1`, id))
		after = &m
		return err
	})
	if err != nil {
		if _, ok := asAPIError(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("member active: %w", err)
	}
	if active == nil || !*active {
		if a.sessions == nil {
			return nil, errors.New("admin: Options.Sessions is needed to end member sessions")
		}
		if err := a.sessions.DestroyAllForUser(r.ctx, r.tenant.ID, after.AccountID); err != nil {
			if active == nil {
				return nil, err
			}
			// Deactivated: the member app refuses the sessions regardless.
			a.log.Warn("ending a deactivated member's sessions", "tenant", r.tenant.Slug, "member", id, "err", err)
		}
	}
	return after, nil
}

func (a *App) apiMemberList(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	items, next, err := a.listMembers(a.r(c), p, c.Query("q"))
	if err != nil {
		return err
	}
	return c.JSON(listJSON(items, next))
}

func (a *App) apiMemberGet(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	d, err := a.memberDetail(a.r(c), id)
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (a *App) apiMemberActive(active bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c)
		if err != nil {
			return err
		}
		m, err := a.setMemberActive(a.r(c), id, &active)
		if err != nil {
			return err
		}
		return c.JSON(m)
	}
}

func (a *App) apiMemberEndSessions(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if _, err := a.setMemberActive(a.r(c), id, nil); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func listHandler[T any](list func(r *req, p page) ([]T, string, error), a *App) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		items, next, err := list(a.r(c), p)
		if err != nil {
			return err
		}
		return c.JSON(listJSON(items, next))
	}
}

func (a *App) apiProspectList(c *fiber.Ctx) error {
	return listHandler(func(r *req, p page) ([]prospectJSON, string, error) { return a.listProspects(r, p, c.Query("q")) }, a)(c)
}

// peopleRoutes are the people, export and import routes; owners and staff
// alike may use them.
func (a *App) peopleRoutes() []route {
	return []route{
		{"GET", "/members", anyStaff, nil, a.apiMemberList},
		{"GET", "/members/:id", anyStaff, nil, a.apiMemberGet},
		{"POST", "/members/:id/deactivate", anyStaff, nil, a.apiMemberActive(false)},
		{"POST", "/members/:id/reactivate", anyStaff, nil, a.apiMemberActive(true)},
		{"DELETE", "/members/:id/sessions", anyStaff, nil, a.apiMemberEndSessions},
		{"GET", "/prospects", anyStaff, nil, a.apiProspectList},
		{"GET", "/chat-messages", anyStaff, nil, listHandler(a.listChat, a)},
		{"GET", "/shipping-addresses", anyStaff, nil, listHandler(a.listAddresses, a)},
		{"GET", "/exports/:kind", anyStaff, nil, a.apiExport},
		{"GET", "/imports", anyStaff, nil, a.apiImportList},
		{"POST", "/imports", anyStaff, nil, a.apiImportUpload},
		{"GET", "/imports/:id", anyStaff, nil, a.apiImportGet},
		{"POST", "/imports/:id/dry-run", anyStaff, nil, a.apiImportDryRun},
		{"POST", "/imports/:id/apply", anyStaff, nil, a.apiImportApply},
	}
}
