package account

import (
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// U18: has the member agreed to the newest Terms of Use? The only endpoint
// that redirects anonymous callers (to /login on the API host, §12 Q31).
func (a *App) termsCheck(c *fiber.Ctx) error {
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil {
		return err
	}
	if m == nil {
		return c.Redirect("/login?next=/user/terms-of-use-agree-check", fiber.StatusFound)
	}
	var (
		version int
		note    *string
		agreed  bool
	)
	err = a.conn(r, func(conn *pgxpool.Conn) error {
		var id int64
		id, version, note, err = latestTerms(r.ctx, conn)
		if err != nil {
			return err
		}
		return conn.QueryRow(r.ctx, `SELECT EXISTS (SELECT 1 FROM terms_of_use_agreement WHERE member_id = $1 AND terms_of_use_version_id = $2)`,
			m.MemberID, id).Scan(&agreed)
	})
	if err != nil {
		return err
	}
	if agreed {
		return reply(c, fiber.Map{"terms_of_use_agree_check": true})
	}
	return reply(c, fiber.Map{"terms_of_use_agree_check": false, "version": version, "version_note": note})
}

// U19: agree to the newest Terms of Use; version is echoed as posted
// (a string, §12 Q29).
func (a *App) termsAgree(c *fiber.Ctx) error {
	const key = "terms_of_use_agree"
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil || m == nil {
		return orNotAuthenticated(c, err, key)
	}
	posted, ok := postValue(c, "version")
	if !ok || c.Method() != fiber.MethodPost {
		return reply(c, fiber.Map{key: "error", "errors": fiber.Map{"error": "version-required"}})
	}
	outcome := func(code string) error {
		if code == "success" {
			return reply(c, fiber.Map{key: "success", "version": posted})
		}
		return reply(c, fiber.Map{key: "error", "errors": fiber.Map{"error": code}, "version": posted})
	}
	// The column is an integer: a number outside its range names no row.
	v, err := strconv.ParseInt(posted, 10, 32)
	if err != nil {
		return outcome("version-not-found")
	}
	code := "success"
	err = a.tx(r, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(r.ctx, `SELECT id FROM terms_of_use_version WHERE version = $1 ORDER BY id DESC LIMIT 1`, int32(v)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			code = "version-not-found"
			return nil
		}
		if err != nil {
			return err
		}
		latestID, _, _, err := latestTerms(r.ctx, tx)
		if err != nil {
			return err
		}
		if id != latestID {
			code = "version-provided-not-most-recent"
			return nil
		}
		tag, err := tx.Exec(r.ctx, `INSERT INTO terms_of_use_agreement (member_id, terms_of_use_version_id, agreed_date_time)
VALUES ($1, $2, $3) ON CONFLICT (member_id, terms_of_use_version_id) DO NOTHING`, m.MemberID, id, a.now())
		if err == nil && tag.RowsAffected() == 0 {
			code = "version-already-agreed"
		}
		return err
	})
	if err != nil {
		return err
	}
	return outcome(code)
}
