package admin

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	outbox "github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/tenant/account"
)

func (a *App) listStaff(r *req, p page) ([]staffJSON, string, error) {
	var out []staffJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		rows, err := c.Query(r.ctx, `SELECT `+staffColumns+` WHERE id > $1 ORDER BY id LIMIT $2`, p.after, p.limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			s, err := scanStaff(rows)
			if err != nil {
				return err
			}
			out = append(out, s.public())
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", fmt.Errorf("list staff: %w", err)
	}
	return pageTail(out, p, func(x staffJSON) int64 { return x.ID })
}

// staffChange is a PATCH of a staff member: nil fields stay.
type staffChange struct {
	Role   *string `json:"role"`
	Active *bool   `json:"active"`
}

// updateStaff changes a role or deactivates (or reactivates) a staff
// member. The tenant always keeps one active owner. A deactivated member's
// sessions end at once and their tokens stop working.
func (a *App) updateStaff(r *req, id int64, ch staffChange) (*staffJSON, error) {
	if ch.Role == nil && ch.Active == nil {
		return nil, invalid("role", "send role or active")
	}
	if ch.Role != nil && !validRole(*ch.Role) {
		return nil, invalid("role", "role is owner or staff")
	}
	var out staffJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		// Owners are locked in id order, so two owners demoting each other
		// at once cannot both succeed.
		if _, err := tx.Exec(r.ctx, `SELECT id FROM staff WHERE role = 'owner' AND is_active ORDER BY id FOR UPDATE`); err != nil {
			return err
		}
		// The caller was an owner when the request began; a demotion
		// committed since then wins.
		var stillOwner bool
		if err := tx.QueryRow(r.ctx, `SELECT EXISTS (SELECT 1 FROM staff WHERE id = $1 AND role = 'owner' AND is_active)`,
			r.who.staff.ID).Scan(&stillOwner); err != nil {
			return err
		}
		if !stillOwner {
			return errForbidden
		}
		s, err := scanStaff(tx.QueryRow(r.ctx, `SELECT `+staffColumns+` WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if s == nil {
			return errNotFound
		}
		before := map[string]any{"role": s.Role, "active": s.Active}
		role, active := s.Role, s.Active
		if ch.Role != nil {
			role = *ch.Role
		}
		if ch.Active != nil {
			active = *ch.Active
		}
		if s.Role == RoleOwner && s.Active && (role != RoleOwner || !active) {
			var owners int
			if err := tx.QueryRow(r.ctx, `SELECT count(*) FROM staff WHERE role = 'owner' AND is_active`).Scan(&owners); err != nil {
				return err
			}
			if owners <= 1 {
				field := "role"
				if !active {
					field = "active"
				}
				return &apiError{Status: fiber.StatusConflict, Code: "last-owner", Detail: "the shop must keep one active owner", Field: field}
			}
		}
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET role = $2, is_active = $3, updated_at = now() WHERE id = $1`, id, role, active); err != nil {
			return err
		}
		s.Role, s.Active = role, active
		out = s.public()
		return r.audit(tx, auditEntry{Action: "staff.updated", TargetType: "staff", TargetID: id,
			Before: before, After: map[string]any{"role": role, "active": active}})
	})
	if err != nil {
		return nil, err
	}
	if !out.Active {
		if err := a.endAllSessions(r.ctx, r.tenant.ID, id); err != nil {
			return nil, err
		}
	}
	return &out, nil
}

type invitationJSON struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	InvitedBy *int64    `json:"invited_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// invite records an invitation and mails its link (the token is in the
// mail only). An address that is already staff is refused.
func (a *App) invite(r *req, email, role string) (*invitationJSON, error) {
	email = strings.TrimSpace(email)
	if res := account.ValidateEmail(email); !res.OK() {
		return nil, invalid("email", res[0].Description)
	}
	if !validRole(role) {
		return nil, invalid("role", "role is owner or staff")
	}
	tok, digest := newToken("")
	now := a.now()
	out := &invitationJSON{Email: email, Role: role, InvitedBy: &r.who.staff.ID, CreatedAt: now, ExpiresAt: now.Add(InvitationTTL)}
	link := adminURL(r, "/admin/accept-invitation", "token", tok)
	err := a.tx(r, func(tx pgx.Tx) error {
		existing, err := staffByEmail(r.ctx, tx, email)
		if err != nil {
			return err
		}
		if existing != nil {
			return &apiError{Status: fiber.StatusConflict, Code: "already-staff", Detail: "this address already belongs to a staff member", Field: "email"}
		}
		// A seat is an active staff member or an invitation still open.
		if err := checkLimit(r.ctx, tx, r.tenant.Plan, r.tenant.Plan.StaffSeats, "staff seats", `SELECT
  (SELECT count(*) FROM staff WHERE is_active)
+ (SELECT count(*) FROM staff_invitation WHERE accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now())`); err != nil {
			return err
		}
		if err := tx.QueryRow(r.ctx, `INSERT INTO staff_invitation (email, role, token_hash, invited_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, email, role, digest, r.who.staff.ID, now, out.ExpiresAt).Scan(&out.ID); err != nil {
			return err
		}
		if err := a.queueMail(r, tx, email, mailInvitation, mailData{Link: link, Role: role, Inviter: r.who.staff.Email}); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "invitation.created", TargetType: "staff_invitation", TargetID: out.ID,
			After: map[string]any{"email": email, "role": role, "expires_at": out.ExpiresAt}})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (a *App) listInvitations(r *req, p page) ([]invitationJSON, string, error) {
	var out []invitationJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		rows, err := c.Query(r.ctx, `SELECT id, email, role, invited_by, created_at, expires_at FROM staff_invitation
WHERE accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 AND id > $2 ORDER BY id LIMIT $3`, a.now(), p.after, p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (invitationJSON, error) {
			var i invitationJSON
			err := row.Scan(&i.ID, &i.Email, &i.Role, &i.InvitedBy, &i.CreatedAt, &i.ExpiresAt)
			return i, err
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list invitations: %w", err)
	}
	return pageTail(out, p, func(x invitationJSON) int64 { return x.ID })
}

func (a *App) revokeInvitation(r *req, id int64) error {
	return a.tx(r, func(tx pgx.Tx) error {
		var email string
		err := tx.QueryRow(r.ctx, `UPDATE staff_invitation SET revoked_at = $2 WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
RETURNING email`, id, a.now()).Scan(&email)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "invitation.revoked", TargetType: "staff_invitation", TargetID: id,
			Before: map[string]any{"email": email}})
	})
}

// acceptInvitation creates the invited staff member with a password. The
// invitation is claimed by the same UPDATE that checks it, so it works once.
func (a *App) acceptInvitation(r *req, token, name, password, confirm string) (*staffJSON, error) {
	if token == "" {
		return nil, required("token")
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, required("name")
	}
	if utf8.RuneCountInString(name) > 200 {
		return nil, invalid("name", "name is longer than 200 characters")
	}
	hashOf := func(email string) (string, error) {
		if ae := checkPassword(password, confirm, email, name); ae != nil {
			return "", ae
		}
		return a.hasher.Hash(password)
	}
	// The address is needed for the password rules: read it first, then
	// claim the invitation in the transaction.
	var email string
	err := a.conn(r, func(c *pgxpool.Conn) error {
		err := c.QueryRow(r.ctx, `SELECT email FROM staff_invitation WHERE token_hash = $1`, tokenDigest(token)).Scan(&email)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLinkToken
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	hash, err := hashOf(email)
	if err != nil {
		return nil, err
	}
	var out staffJSON
	err = a.tx(r, func(tx pgx.Tx) error {
		var invID int64
		var role string
		err := tx.QueryRow(r.ctx, `UPDATE staff_invitation SET accepted_at = $2
WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 RETURNING id, role`,
			tokenDigest(token), a.now()).Scan(&invID, &role)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLinkToken
		}
		if err != nil {
			return err
		}
		s, err := scanStaff(tx.QueryRow(r.ctx, `INSERT INTO staff (email, name, password_hash, role) VALUES ($1, $2, $3, $4)
RETURNING `+strings.TrimSuffix(staffColumns, " FROM staff"), email, name, hash, role))
		if isUniqueViolation(err) {
			return &apiError{Status: fiber.StatusConflict, Code: "already-staff", Detail: "this address already belongs to a staff member", Field: "token"}
		}
		if err != nil {
			return err
		}
		out = s.public()
		return writeAudit(r.ctx, tx, auditEntry{StaffID: s.ID, Actor: s.Email, Action: "invitation.accepted",
			TargetType: "staff", TargetID: s.ID, After: map[string]any{"email": email, "name": name, "role": role, "invitation_id": invID},
			ClientIP: r.clientIP, RequestID: r.requestID})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// forgotPassword mails a reset link to an active staff member. The answer
// is the same whether or not the address is one.
func (a *App) forgotPassword(r *req, email string) error {
	email = strings.TrimSpace(email)
	if email == "" {
		return required("email")
	}
	tok, digest := newToken("")
	link := adminURL(r, "/admin/reset-password", "token", tok)
	return a.tx(r, func(tx pgx.Tx) error {
		s, err := staffByEmail(r.ctx, tx, email)
		if err != nil || s == nil || !s.Active {
			return err
		}
		var id int64
		if err := tx.QueryRow(r.ctx, `INSERT INTO staff_password_reset (staff_id, token_hash, expires_at) VALUES ($1, $2, $3) RETURNING id`,
			s.ID, digest, a.now().Add(ResetTTL)).Scan(&id); err != nil {
			return err
		}
		if err := a.queueMail(r, tx, s.Email, mailReset, mailData{Link: link, Name: s.Name}); err != nil {
			return err
		}
		return writeAudit(r.ctx, tx, auditEntry{StaffID: s.ID, Actor: s.Email, Action: "password.reset_requested",
			TargetType: "staff", TargetID: s.ID, ClientIP: r.clientIP, RequestID: r.requestID})
	})
}

// resetPassword sets a new password with a reset link's token, once.
func (a *App) resetPassword(r *req, token, password, confirm string) error {
	if token == "" {
		return required("token")
	}
	var s *staffRow
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var staffID int64
		err := c.QueryRow(r.ctx, `SELECT staff_id FROM staff_password_reset WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2`,
			tokenDigest(token), a.now()).Scan(&staffID)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLinkToken
		}
		if err != nil {
			return err
		}
		s, err = staffByID(r.ctx, c, staffID)
		return err
	})
	if err != nil {
		return err
	}
	if s == nil || !s.Active {
		return errLinkToken
	}
	if ae := checkPassword(password, confirm, s.Email, s.Name); ae != nil {
		return ae
	}
	hash, err := a.hasher.Hash(password)
	if err != nil {
		return err
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		tag, err := tx.Exec(r.ctx, `UPDATE staff_password_reset SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2`,
			tokenDigest(token), a.now())
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errLinkToken
		}
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET password_hash = $2, failed_logins = 0, locked_until = NULL, updated_at = now() WHERE id = $1`,
			s.ID, hash); err != nil {
			return err
		}
		return writeAudit(r.ctx, tx, auditEntry{StaffID: s.ID, Actor: s.Email, Action: "password.reset",
			TargetType: "staff", TargetID: s.ID, ClientIP: r.clientIP, RequestID: r.requestID})
	})
	if err != nil {
		return err
	}
	return a.endAllSessions(r.ctx, r.tenant.ID, s.ID)
}

// adminURL is a link to a back-office page on the host the request came to.
func adminURL(r *req, path, name, value string) string {
	return ownOrigin(r.c) + path + "?" + name + "=" + url.QueryEscape(value)
}

// Mails.
const (
	mailInvitation = "staff_invitation"
	mailReset      = "staff_password_reset"
)

type mailData struct {
	Site, Link, Role, Inviter, Name string
}

var mailTemplates = map[string]struct {
	subject, text string
	html          *htmltemplate.Template
}{
	mailInvitation: {"You are invited to the {{.Site}} back office",
		"{{.Inviter}} invites you to the {{.Site}} back office as {{.Role}}.\r\n\r\nChoose your password here (the link works once, for 72 hours):\r\n{{.Link}}\r\n",
		htmltemplate.Must(htmltemplate.New("i").Parse(`<p>{{.Inviter}} invites you to the {{.Site}} back office as {{.Role}}.</p><p><a href="{{.Link}}">Choose your password</a> (the link works once, for 72 hours).</p>`))},
	mailReset: {"Reset your {{.Site}} back-office password",
		"Someone asked to reset the password of your {{.Site}} back-office account.\r\n\r\nChoose a new one here (the link works once, for 1 hour):\r\n{{.Link}}\r\n\r\nIf it was not you, ignore this mail.\r\n",
		htmltemplate.Must(htmltemplate.New("r").Parse(`<p>Someone asked to reset the password of your {{.Site}} back-office account.</p><p><a href="{{.Link}}">Choose a new one</a> (the link works once, for 1 hour).</p><p>If it was not you, ignore this mail.</p>`))},
}

// queueMail writes a mail to the tenant's outbox in tx; the mail worker
// sends it after commit.
func (a *App) queueMail(r *req, tx pgx.Tx, to, kind string, d mailData) error {
	d.Site = r.tenant.DisplayName
	if d.Site == "" {
		d.Site = r.tenant.Slug
	}
	tpl := mailTemplates[kind]
	var html strings.Builder
	if err := tpl.html.Execute(&html, d); err != nil {
		return err
	}
	repl := strings.NewReplacer("{{.Site}}", d.Site, "{{.Inviter}}", d.Inviter, "{{.Role}}", d.Role, "{{.Link}}", d.Link)
	from := r.tenant.Settings.FromAddress
	if from == "" {
		from = a.from
	}
	return outbox.Enqueue(r.ctx, tx, outbox.Message{
		Kind: kind, From: from, To: []string{(&mail.Address{Address: to}).String()},
		Subject: repl.Replace(tpl.subject), Text: repl.Replace(tpl.text), HTML: html.String(),
	})
}

func (a *App) apiStaffList(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	items, next, err := a.listStaff(a.r(c), p)
	if err != nil {
		return err
	}
	return c.JSON(listJSON(items, next))
}

func (a *App) apiStaffUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var ch staffChange
	if err := body(c, &ch); err != nil {
		return err
	}
	s, err := a.updateStaff(a.r(c), id, ch)
	if err != nil {
		return err
	}
	return c.JSON(s)
}

func (a *App) apiInvitationList(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	items, next, err := a.listInvitations(a.r(c), p)
	if err != nil {
		return err
	}
	return c.JSON(listJSON(items, next))
}

func (a *App) apiInvite(c *fiber.Ctx) error {
	var b struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	inv, err := a.invite(a.r(c), b.Email, b.Role)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(inv)
}

func (a *App) apiInvitationRevoke(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := a.revokeInvitation(a.r(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (a *App) apiAcceptInvitation(c *fiber.Ctx) error {
	var b struct {
		Token    string `json:"token"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	s, err := a.acceptInvitation(a.r(c), b.Token, b.Name, b.Password, b.Password)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(s)
}

func (a *App) apiForgotPassword(c *fiber.Ctx) error {
	var b struct {
		Email string `json:"email"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	if err := a.forgotPassword(a.r(c), b.Email); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"detail": "if the address is a staff member's, a reset link is on its way"})
}

func (a *App) apiResetPassword(c *fiber.Ctx) error {
	var b struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	if err := a.resetPassword(a.r(c), b.Token, b.Password, b.Password); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
