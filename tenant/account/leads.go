package account

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
)

// U20: a chat message, linked to the member it comes from (signed in, or
// by address), else to a prospect, created when new; the site owner gets a
// notice (E8).
func (a *App) putChatMessage(c *fiber.Ctx) error {
	const key = "put_chat_message"
	f, err := fields(c, "name", "email_address", "message")
	if err != nil {
		return fail(c, err)
	}
	errs := map[string]FieldResult{
		"name":          ValidateName(f["name"], chatNameMax),
		"email_address": ValidateEmail(f["email_address"]),
		"message":       ValidateChatMessage(f["message"]),
	}
	if !allOK(errs) {
		return reply(c, fiber.Map{key: "validation_error", "errors": errs})
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil {
		return err
	}
	now := a.now()
	err = a.tx(r, func(tx pgx.Tx) error {
		var memberID, prospectID *int64
		if m != nil {
			memberID = &m.MemberID
		} else {
			// Several members may share an address (§12 Q30): the oldest wins.
			var id int64
			err := tx.QueryRow(r.ctx, `SELECT m.id FROM member m JOIN account a ON a.id = m.account_id
WHERE a.email = $1 ORDER BY a.id LIMIT 1`, f["email_address"]).Scan(&id)
			switch {
			case err == nil:
				memberID = &id
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			default:
				id, _, err := ensureProspect(r, tx, f["email_address"], "Captured from chat message submission", "")
				if err != nil {
					return err
				}
				prospectID = &id
			}
		}
		if _, err := tx.Exec(r.ctx, `INSERT INTO chat_message (member_id, prospect_id, name, email_address, message, created_date_time)
VALUES ($1, $2, $3, $4, $5, $6)`, memberID, prospectID, f["name"], f["email_address"], f["message"], now); err != nil {
			return fmt.Errorf("chat message: %w", err)
		}
		owner := a.fromAddress(r.tenant)
		return r.a.queueMail(r.ctx, tx, r.tenant, kindChatNotification, chatTemplate, []string{owner},
			emailData{When: now.UTC().Format("2006-01-02 15:04:05.000000+00:00")})
	})
	if err != nil {
		return err
	}
	return reply(c, fiber.Map{key: "true"})
}

// ensureProspect returns the prospect with this address, creating it (with
// the comments given, unsubscribed, with a token and a pr_cd) when there is
// none; created says which.
func ensureProspect(r *req, tx pgx.Tx, email, swaComment, prospectComment string) (id int64, created bool, err error) {
	str, token := newUnsubscribe(r.signer)
	err = tx.QueryRow(r.ctx, `INSERT INTO prospect (email, email_unsubscribed, email_unsubscribe_string, email_unsubscribe_string_signed,
pr_cd, swa_comment, prospect_comment, created_date_time)
VALUES ($1, true, $2, $3, $4, $5, NULLIF($6, ''), $7)
ON CONFLICT (email) DO NOTHING RETURNING id`, email, str, token, RandomString(20), swaComment, prospectComment, r.a.now()).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("prospect: %w", err)
	}
	if err := tx.QueryRow(r.ctx, `SELECT id FROM prospect WHERE email = $1`, email).Scan(&id); err != nil {
		return 0, false, fmt.Errorf("prospect: %w", err)
	}
	return id, false, nil
}

// U21: a PythonABot sign-up becomes a prospect; a known prospect address
// is a duplicate.
func (a *App) notifyMe(c *fiber.Ctx) error {
	const key = "pythonabot_notify_me"
	f, err := fields(c, "email_address", "how_excited")
	if err != nil {
		return fail(c, err)
	}
	errs := map[string]FieldResult{
		"email_address": ValidateEmail(f["email_address"]),
		"how_excited":   ValidateHowExcited(f["how_excited"]),
	}
	if !allOK(errs) {
		return reply(c, fiber.Map{key: "validation_error", "errors": errs})
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	var created bool
	err = a.tx(r, func(tx pgx.Tx) error {
		_, created, err = ensureProspect(r, tx, f["email_address"],
			"This prospect would like to be notified when PythonABot is ready to be purchased.",
			f["how_excited"]+" on a scale of 1-5 for how excited they are")
		return err
	})
	if err != nil {
		return err
	}
	if !created {
		return reply(c, fiber.Map{key: "duplicate_prospect", "errors": fiber.Map{
			"email_address": FieldResult{errDuplicateProspect}, "how_excited": FieldResult(nil)}})
	}
	return reply(c, fiber.Map{key: "success"})
}
