package account

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
)

// recipient is a member or a prospect found by its public unsubscribe token.
type recipient struct {
	memberID, prospectID int64
	email                string
	unsubscribed         bool
	str                  *string
}

// tokenParam reads token (member) or pr_token (prospect); token wins.
// GET reads the query (raw, unencoded in the client's links), POST the body.
func tokenParam(c *fiber.Ctx) (token string, prospect, ok bool) {
	get := func(name string) (string, bool) {
		if c.Method() == fiber.MethodGet {
			args := c.Context().QueryArgs()
			return text(args.Peek(name)), args.Has(name)
		}
		return postValue(c, name)
	}
	if v, ok := get("token"); ok && v != "" {
		return v, false, true
	}
	if v, ok := get("pr_token"); ok && v != "" {
		return v, true, true
	}
	return "", false, false
}

// findRecipient looks a token up and checks it still verifies: the
// contract's error codes, or "" when found and intact.
func findRecipient(r *req, tx pgx.Tx, token string, prospect bool, lock bool) (*recipient, string, error) {
	q := `SELECT m.id, 0::bigint, a.email, m.email_unsubscribed, m.email_unsubscribe_string
FROM member m JOIN account a ON a.id = m.account_id WHERE m.email_unsubscribe_string_signed = $1`
	if prospect {
		q = `SELECT 0::bigint, id, coalesce(email, ''), email_unsubscribed, email_unsubscribe_string
FROM prospect WHERE email_unsubscribe_string_signed = $1`
	}
	if lock {
		q += ` FOR UPDATE`
	}
	var rc recipient
	err := tx.QueryRow(r.ctx, q, token).Scan(&rc.memberID, &rc.prospectID, &rc.email, &rc.unsubscribed, &rc.str)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "member-not-found", nil
	}
	if err != nil {
		return nil, "", err
	}
	if rc.str == nil || !r.signer.CheckUnsubscribeToken(*rc.str, token) {
		return &rc, "token-altered", nil
	}
	return &rc, "", nil
}

// maskEmail keeps the first four characters of the local part.
func maskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok {
		domain = ""
	}
	rs := []rune(local)
	for i := 4; i < len(rs); i++ {
		rs[i] = '*'
	}
	if !ok {
		return string(rs)
	}
	return string(rs) + "@" + domain
}

func unsubscribeError(c *fiber.Ctx, key, code string) error {
	return reply(c, fiber.Map{key: "error", "errors": fiber.Map{"error": code}})
}

// U15: whose address a token unsubscribes (masked); no side effects.
func (a *App) unsubscribeLookup(c *fiber.Ctx) error {
	const key = "email_unsubscribe_lookup"
	token, prospect, ok := tokenParam(c)
	if !ok || c.Method() != fiber.MethodGet {
		return unsubscribeError(c, key, "token-required")
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	var rc *recipient
	var code string
	err = a.tx(r, func(tx pgx.Tx) error {
		rc, code, err = findRecipient(r, tx, token, prospect, false)
		return err
	})
	if err != nil {
		return err
	}
	if code == "" && rc.unsubscribed {
		code = "email-address-already-unsubscribed"
	}
	if code != "" {
		return unsubscribeError(c, key, code)
	}
	return reply(c, fiber.Map{key: "success", "email_address": maskEmail(rc.email)})
}

// U16: unsubscribe, and hand out a new token (the old link stops working).
func (a *App) unsubscribeConfirm(c *fiber.Ctx) error {
	const key = "email_unsubscribe_confirm"
	token, prospect, ok := tokenParam(c)
	if !ok {
		return unsubscribeError(c, key, "token-required")
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	var rc *recipient
	var code, newToken string
	err = a.tx(r, func(tx pgx.Tx) error {
		rc, code, err = findRecipient(r, tx, token, prospect, true)
		if err != nil || code != "" {
			return err
		}
		if rc.unsubscribed {
			code = "email-address-already-unsubscribed"
			return nil
		}
		newToken, err = unsubscribe(r, tx, rc, prospect)
		return err
	})
	if err != nil {
		return err
	}
	if code != "" {
		return unsubscribeError(c, key, code)
	}
	return reply(c, fiber.Map{key: "success", "email_address": maskEmail(rc.email), "token": newToken})
}

// U17: why they left; recorded for any valid token.
func (a *App) unsubscribeWhy(c *fiber.Ctx) error {
	const key = "email_unsubscribe_why"
	token, prospect, ok := tokenParam(c)
	if !ok {
		return unsubscribeError(c, key, "token-required")
	}
	f, err := fields(c, "no_longer_want_to_receive", "never_signed_up", "inappropriate", "spam", "other")
	if err != nil {
		return fail(c, err)
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	var code string
	err = a.tx(r, func(tx pgx.Tx) error {
		var rc *recipient
		rc, code, err = findRecipient(r, tx, token, prospect, false)
		if err != nil || code != "" {
			return err
		}
		return insertReasonsAlways(r, tx, rc.memberID, rc.prospectID, f)
	})
	if err != nil {
		return err
	}
	if code != "" {
		return unsubscribeError(c, key, code)
	}
	return reply(c, fiber.Map{key: "success"})
}

// insertReasonsAlways records a reasons row even with nothing ticked.
func insertReasonsAlways(r *req, tx pgx.Tx, memberID, prospectID int64, f map[string]string) error {
	if f["no_longer_want_to_receive"] == "true" || f["never_signed_up"] == "true" || f["inappropriate"] == "true" ||
		f["spam"] == "true" || f["other"] != "" {
		return insertReasons(r, tx, memberID, prospectID, f)
	}
	var mid, pid *int64
	if memberID > 0 {
		mid = &memberID
	}
	if prospectID > 0 {
		pid = &prospectID
	}
	_, err := tx.Exec(r.ctx, `INSERT INTO email_unsubscribe_reason (member_id, prospect_id, created_date_time) VALUES ($1, $2, $3)`,
		mid, pid, r.a.now())
	return err
}

// unsubscribe marks rc unsubscribed and gives it a new token (the old link
// stops working), which it returns.
func unsubscribe(r *req, tx pgx.Tx, rc *recipient, prospect bool) (string, error) {
	str, newToken := newUnsubscribe(r.signer)
	var err error
	if prospect {
		_, err = tx.Exec(r.ctx, `UPDATE prospect SET email_unsubscribed = true, email_unsubscribe_string = $2,
email_unsubscribe_string_signed = $3 WHERE id = $1`, rc.prospectID, str, newToken)
	} else {
		_, err = tx.Exec(r.ctx, `UPDATE member SET email_unsubscribed = true, newsletter_subscriber = false,
email_unsubscribe_string = $2, email_unsubscribe_string_signed = $3 WHERE id = $1`, rc.memberID, str, newToken)
	}
	return newToken, err
}
