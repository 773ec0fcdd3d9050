package account

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/orders"
)

// orderHistory is U5's orders_data: a member's orders newest first, keyed
// "1", "2", … in that order, each with upstream's members in upstream's
// order; an empty object when there are none.
type orderHistory []orders.Summary

// MarshalJSON writes the history in order (a map would sort "10" before "2").
func (h orderHistory) MarshalJSON() ([]byte, error) {
	type entry struct {
		OrderID       int64  `json:"order_id"`
		Identifier    string `json:"identifier"`
		OrderDateTime string `json:"order_date_time"`
		SalesTax      string `json:"sales_tax_amt"`
		OrderTotal    string `json:"order_total"`
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, o := range h {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := json.Marshal(entry{o.ID, o.Identifier, isoTime(o.OrderDateTime), o.SalesTax.StringFixed(2), o.OrderTotal.StringFixed(2)})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, `"%d":`, i+1)
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// notAuthenticated is the JSON-flag style's answer for anonymous callers.
func notAuthenticated(c *fiber.Ctx, key string) error {
	return reply(c, fiber.Map{key: "user_not_authenticated"})
}

// U5: everything the account pages show.
func (a *App) accountContent(c *fiber.Ctx) error {
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil {
		return err
	}
	if m == nil {
		return reply(c, fiber.Map{"account_content": fiber.Map{"authenticated": "false"}})
	}
	var agreed *time.Time
	var history orderHistory
	err = a.conn(r, func(conn *pgxpool.Conn) error {
		if err := conn.QueryRow(r.ctx, `SELECT max(agreed_date_time) FROM terms_of_use_agreement WHERE member_id = $1`,
			m.MemberID).Scan(&agreed); err != nil {
			return fmt.Errorf("terms agreed: %w", err)
		}
		history, err = orders.ForMember(r.ctx, conn, m.MemberID)
		return err
	})
	if err != nil {
		return err
	}
	pending := false
	if !m.EmailVerified && m.VerificationSigned != nil && *m.VerificationSigned != "" {
		_, err := r.signer.CheckVerificationCode(*m.VerificationSigned)
		pending = err == nil
	}
	return reply(c, fiber.Map{"account_content": fiber.Map{
		"authenticated": "true",
		"personal_data": fiber.Map{
			"username": m.Username, "first_name": m.FirstName, "last_name": m.LastName,
			"newsletter_subscriber": m.NewsletterSubscriber, "email_unsubscribed": m.EmailUnsubscribed,
			"joined_date_time": isoTime(m.DateJoined), "last_login_date_time": isoTimePtr(m.LastLogin),
			"terms_of_use_agreed_date_time": isoTimePtr(agreed),
		},
		"email_data": fiber.Map{"email_address": m.Email, "email_verified": m.EmailVerified,
			"verification_request_sent_within_24_hours": pending},
		"orders_data": history,
	}})
}

// U7: mail a new verification code.
func (a *App) verifyEmailAddress(c *fiber.Ctx) error {
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil || m == nil {
		return orNotAuthenticated(c, err, "verify_email_address")
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		code, err := newVerification(r.ctx, tx, r.signer, m.MemberID)
		if err != nil {
			return err
		}
		return r.queue(tx, kindVerification, []string{mailbox(m.FirstName+" "+m.LastName, m.Email)}, emailData{
			FirstName: m.FirstName, LastName: m.LastName, Username: m.Username,
			Link: link(origin(r.tenant), "/account/", "email_verification_code", code)})
	})
	if err != nil {
		return err
	}
	return reply(c, fiber.Map{"verify_email_address": "verification_email_sent"})
}

func orNotAuthenticated(c *fiber.Ctx, err error, key string) error {
	if err != nil {
		return err
	}
	return notAuthenticated(c, key)
}

// U8: the code from the mailed link.
func (a *App) verifyEmailAddressResponse(c *fiber.Ctx) error {
	const key = "verify_email_address_response"
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil || m == nil {
		return orNotAuthenticated(c, err, key)
	}
	f, err := fields(c, "email_verification_code")
	if err != nil {
		return fail(c, err)
	}
	str, err := r.signer.CheckVerificationCode(f["email_verification_code"])
	if err != nil {
		return reply(c, fiber.Map{key: "signature-invalid"})
	}
	outcome := "code-doesnt-match"
	err = a.tx(r, func(tx pgx.Tx) error {
		tag, err := tx.Exec(r.ctx, `UPDATE member SET email_verified = true, email_verification_string = NULL,
email_verification_string_signed = NULL WHERE id = $1 AND email_verification_string = $2`, m.MemberID, str)
		if err == nil && tag.RowsAffected() == 1 {
			outcome = "success"
		}
		return err
	})
	if err != nil {
		return err
	}
	return reply(c, fiber.Map{key: outcome})
}

// U12: names and address.
func (a *App) updateMyInformation(c *fiber.Ctx) error {
	const key = "update_my_information"
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil || m == nil {
		return orNotAuthenticated(c, err, key)
	}
	f, err := fields(c, "firstname", "lastname", "email_address")
	if err != nil {
		return fail(c, err)
	}
	errs := map[string]FieldResult{
		"firstname":     ValidateName(f["firstname"], nameMaxFirst),
		"lastname":      ValidateName(f["lastname"], nameMaxLast),
		"email-address": ValidateEmail(f["email_address"]),
	}
	if !allOK(errs) {
		return reply(c, fiber.Map{key: "errors", "errors": errs})
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE account SET first_name = $2, last_name = $3, email = $4 WHERE id = $1`,
			m.AccountID, f["firstname"], f["lastname"], f["email_address"]); err != nil {
			return err
		}
		if f["email_address"] == m.Email {
			return nil
		}
		if _, err := tx.Exec(r.ctx, `UPDATE member SET email_verified = false WHERE id = $1`, m.MemberID); err != nil {
			return err
		}
		code, err := newVerification(r.ctx, tx, r.signer, m.MemberID)
		if err != nil {
			return err
		}
		// One message to the new and the old address (E6).
		return r.queue(tx, kindEmailChanged, []string{mailbox(f["firstname"]+" "+f["lastname"], f["email_address"]), m.Email},
			emailData{FirstName: f["firstname"], LastName: f["lastname"], Username: m.Username, OldEmail: m.Email,
				NewEmail: f["email_address"], Link: link(origin(r.tenant), "/account/", "email_verification_code", code)})
	})
	if err != nil {
		return err
	}
	return reply(c, fiber.Map{key: "success"})
}

// U13: newsletter and unsubscribe flags, with optional reasons.
func (a *App) updateCommunicationPreferences(c *fiber.Ctx) error {
	const key = "update_communication_preferences"
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil || m == nil {
		return orNotAuthenticated(c, err, key)
	}
	newsletter, ok1 := postValue(c, "newsletter")
	unsubscribe, ok2 := postValue(c, "email_unsubscribe")
	if c.Method() != fiber.MethodPost || !ok1 || !ok2 {
		return reply(c, fiber.Map{key: "errors", "errors": fiber.Map{"data_missing": "Required data was missing from the request."}})
	}
	if newsletter == "true" && unsubscribe == "true" {
		return reply(c, fiber.Map{key: "errors", "errors": fiber.Map{"invalid_data": "The request included an invalid data combination."}})
	}
	f, err := fields(c, "no_longer_want_to_receive", "never_signed_up", "inappropriate", "spam", "other")
	if err != nil {
		return fail(c, err)
	}
	unsubscribed := unsubscribe == "true"
	err = a.tx(r, func(tx pgx.Tx) error {
		if unsubscribed != m.EmailUnsubscribed {
			str, token := newUnsubscribe(r.signer)
			if _, err := tx.Exec(r.ctx, `UPDATE member SET email_unsubscribe_string = $2, email_unsubscribe_string_signed = $3 WHERE id = $1`,
				m.MemberID, str, token); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(r.ctx, `UPDATE member SET newsletter_subscriber = $2, email_unsubscribed = $3 WHERE id = $1`,
			m.MemberID, newsletter == "true", unsubscribed); err != nil {
			return err
		}
		return insertReasons(r, tx, m.MemberID, 0, f)
	})
	if err != nil {
		return err
	}
	return reply(c, fiber.Map{key: "success"})
}

// insertReasons records why someone unsubscribed, when they said anything.
func insertReasons(r *req, tx pgx.Tx, memberID, prospectID int64, f map[string]string) error {
	flags := []bool{f["no_longer_want_to_receive"] == "true", f["never_signed_up"] == "true", f["inappropriate"] == "true", f["spam"] == "true"}
	if !flags[0] && !flags[1] && !flags[2] && !flags[3] && f["other"] == "" {
		return nil
	}
	var mid, pid *int64
	if memberID > 0 {
		mid = &memberID
	}
	if prospectID > 0 {
		pid = &prospectID
	}
	other := []rune(f["other"])
	if len(other) > 5000 {
		other = other[:5000]
	}
	_, err := tx.Exec(r.ctx, `INSERT INTO email_unsubscribe_reason (member_id, prospect_id, no_longer_want_to_receive, never_signed_up,
inappropriate, spam, other, created_date_time) VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8)`,
		mid, pid, flags[0], flags[1], flags[2], flags[3], string(other), r.a.now())
	if err != nil {
		return fmt.Errorf("unsubscribe reasons: %w", err)
	}
	return nil
}

// U14: change the password; every other session of the member ends, this
// one is signed in again.
func (a *App) changeMyPassword(c *fiber.Ctx) error {
	const key = "change_my_password"
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil || m == nil {
		return orNotAuthenticated(c, err, key)
	}
	f, err := fields(c, "current_password", "new_password", "confirm_new_password")
	if err != nil {
		return fail(c, err)
	}
	ok, err := a.hasher.Verify(m.PasswordHash, f["current_password"])
	if err != nil && !errors.Is(err, ErrUnknownHash) {
		return err
	}
	if !ok {
		return reply(c, fiber.Map{key: "errors", "errors": fiber.Map{"current-password": FieldResult{errCurrentPassword}}})
	}
	if f["new_password"] == f["current_password"] {
		return reply(c, fiber.Map{key: "errors", "errors": fiber.Map{"password": FieldResult{errSameAsCurrent}}})
	}
	res := ValidatePassword(f["new_password"], f["confirm_new_password"])
	if res.OK() {
		res = PasswordRules(f["new_password"], m.passwordUser())
	}
	if !res.OK() {
		return reply(c, fiber.Map{key: "errors", "errors": fiber.Map{"password": res}})
	}
	hash, err := a.hasher.Hash(f["new_password"])
	if err != nil {
		return err
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		if err := setPassword(r.ctx, tx, m.AccountID, hash); err != nil {
			return err
		}
		return r.queue(tx, kindPasswordUpdated, []string{mailbox(m.FirstName+" "+m.LastName, m.Email)},
			emailData{FirstName: m.FirstName, LastName: m.LastName, Username: m.Username})
	})
	if err != nil {
		return err
	}
	if err := a.endSessions(r, m.AccountID); err != nil {
		return err
	}
	m.PasswordHash = hash
	if err := a.logIn(r, m, sessions.Get(c).Persistent()); err != nil {
		return err
	}
	return reply(c, fiber.Map{key: "success"})
}

// endSessions signs the account out everywhere. The sessions also carry a
// hash of the old password hash, so one missed here is refused on its next
// request all the same.
func (a *App) endSessions(r *req, accountID int64) error {
	if err := a.sessions.DestroyAllForUser(r.ctx, r.tenant.ID, accountID); err != nil {
		a.log.Warn("ending sessions after a password change", "tenant", r.tenant.Slug, "err", err)
	}
	return nil
}
